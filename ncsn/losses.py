"""Denoising score matching over a set of noise levels (Song & Ermon 2019, Eq. 5-6; Vincent 2011).

For data x, a level i drawn uniformly from {0 … L-1} and z ~ N(0, I), the perturbed point is
x̃ = x + σ_i z, whose conditional score is ∇ log q(x̃ | x) = -(x̃ - x)/σ_i² = -z/σ_i. The per-example
loss, weighted by λ(σ_i) = σ_i², is::

    ℓ(x) = ½ λ(σ_i) ‖s_θ(x̃, i) + z/σ_i‖² = ½ ‖σ_i s_θ(x̃, i) + z‖²

summed over all dimensions of x. With λ(σ) = σ² every level contributes O(D/2) at the optimum
(``D`` = number of dimensions), so the levels are balanced.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def dsm_loss(score_fn: ScoreFn, x: tf.Tensor, sigma_levels: tf.Tensor, sigma_index: tf.Tensor,
             noise: tf.Tensor) -> tf.Tensor:
    """Per-example σ²-weighted denoising score matching loss.

    Args:
        score_fn: ``(x̃ [B, ...], sigma_index [B]) -> score [B, ...]``.
        x: clean data ``[B, ...]`` in model input units.
        sigma_levels: ``[L]`` noise stds σ_1 > … > σ_L.
        sigma_index: int32 ``[B]`` level of each example.
        noise: ``[B, ...]`` standard normal draws z (same shape as ``x``).
    Returns:
        ``[B]`` float32 losses ½ ‖σ s(x + σ z, i) + z‖² (sum over the non-batch dimensions).
    """
    sigma = tf.reshape(tf.gather(sigma_levels, sigma_index), [-1] + [1] * (len(x.shape) - 1))
    perturbed = x + sigma * noise
    residual = sigma * score_fn(perturbed, sigma_index) + noise
    return 0.5 * tf.reduce_sum(tf.square(residual), axis=tf.range(1, tf.rank(x)))


def random_dsm_loss(score_fn: ScoreFn, x: tf.Tensor, sigma_levels: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """:func:`dsm_loss` with levels ~ U{0 … L-1} and z ~ N(0, I) drawn statelessly from ``seed`` (int32 [2]).

    Returns ``[B]`` per-example losses.
    """
    batch = tf.shape(x)[0]
    level_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    sigma_index = tf.random.stateless_uniform([batch], level_seed, minval=0, maxval=tf.shape(sigma_levels)[0],
                                              dtype=tf.int32)
    noise = tf.random.stateless_normal(tf.shape(x), noise_seed)
    return dsm_loss(score_fn, x, sigma_levels, sigma_index, noise)
