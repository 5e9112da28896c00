"""Annealed Langevin dynamics driven by the exact score of a known 2-D Gaussian mixture."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ncsn.config import NCSNConfig, SamplerConfig
from ncsn.model import ScoreNetwork
from ncsn.sampling import AnnealedLangevin, draw_samples
from ncsn.sigmas import geometric_sigmas, max_pairwise_distance

WEIGHTS = np.array([0.2, 0.3, 0.5], np.float32)
MEANS = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], np.float32)
COVARIANCES = np.array([[[0.3, 0.1], [0.1, 0.2]],
                        [[0.2, -0.05], [-0.05, 0.1]],
                        [[0.15, 0.0], [0.0, 0.3]]], np.float32)


def mixture_score(sigma_levels: np.ndarray, calls: list | None = None):
    """∇_x log Σ_k w_k N(x; μ_k, Σ_k + σ_i² I) for x [B, 2] and level indices [B]."""
    sigma_levels = tf.constant(sigma_levels)

    def score(x, sigma_index):
        if calls is not None:
            calls.append(1)      # counts Python executions (= traces), not steps
        variance = tf.square(tf.gather(sigma_levels, sigma_index))[:, None, None, None]
        covariance = COVARIANCES[None] + variance * np.eye(2, dtype=np.float32)      # [B, K, 2, 2]
        precision = tf.linalg.inv(covariance)
        offset = x[:, None, :] - MEANS[None]                                        # [B, K, 2]
        precision_offset = tf.einsum("bkij,bkj->bki", precision, offset)
        log_density = (tf.math.log(WEIGHTS)[None] - 0.5 * tf.einsum("bki,bki->bk", offset, precision_offset)
                       - 0.5 * tf.linalg.logdet(covariance))
        responsibility = tf.nn.softmax(log_density, axis=1)
        return -tf.einsum("bk,bki->bi", responsibility, precision_offset)

    return score


def mixture_fit_errors(samples: np.ndarray) -> tuple[float, float, float]:
    """Largest errors of the weights, means and covariance entries, each sample assigned to its nearest mean."""
    assigned = np.argmin(((samples[:, None] - MEANS[None]) ** 2).sum(-1), axis=1)
    members = [samples[assigned == k] for k in range(len(WEIGHTS))]
    weight_error = max(abs(len(m) / len(samples) - w) for m, w in zip(members, WEIGHTS))
    mean_error = max(np.abs(m.mean(axis=0) - mu).max() for m, mu in zip(members, MEANS))
    covariance_error = max(np.abs(np.cov(m.T) - c).max() for m, c in zip(members, COVARIANCES))
    return weight_error, mean_error, covariance_error


def test_annealed_langevin_reproduces_a_gaussian_mixture():
    """4000 samples, L = 10 levels from the largest pairwise distance (10.8) to 0.01, T = 100, ε = 5e-5.

    Tolerances: weights ±0.05, means ±0.1, covariance entries ±0.06 (entries are 0.05-0.3).
    Observed when written: 0.020, 0.029, 0.024. Langevin at one small σ (no annealing) gets the
    weights wrong by > 0.2 (it cannot move mass between modes), so the weight check discriminates.
    """
    corners = MEANS[:, None, :] + np.array([[-2, -2], [2, 2], [-2, 2], [2, -2]], np.float32)[None]
    sigma_levels = geometric_sigmas(max_pairwise_distance(corners.reshape(-1, 2)), 0.01, 10)
    calls = []
    sampler = AnnealedLangevin(mixture_score(sigma_levels, calls), sigma_levels, n_steps_per_level=100,
                               step_lr=5e-5, final_denoise=True)
    x_init = tf.random.stateless_uniform((4000, 2), [0, 1], -8.0, 8.0)
    samples = sampler.sample(x_init, seed=0).numpy()
    assert len(calls) <= 2, "the score function ran in Python per step: the loop is not compiled"
    weight_error, mean_error, covariance_error = mixture_fit_errors(samples)
    assert weight_error < 0.05 and mean_error < 0.1 and covariance_error < 0.06, \
        (weight_error, mean_error, covariance_error)

    one_level = np.array([0.1, 0.1], np.float32)
    plain = AnnealedLangevin(mixture_score(one_level), one_level, n_steps_per_level=250, step_lr=5e-5)
    assert mixture_fit_errors(plain.sample(x_init, seed=0).numpy())[0] > 0.1


def test_sampler_is_one_while_loop_and_deterministic_in_its_seed():
    sigma_levels = geometric_sigmas(5.0, 0.01, 4)
    sampler = AnnealedLangevin(mixture_score(sigma_levels), sigma_levels, n_steps_per_level=5, step_lr=1e-5)
    x_init = tf.zeros((8, 2))
    a, b = sampler.sample(x_init, seed=7).numpy(), sampler.sample(x_init, seed=7).numpy()
    c = sampler.sample(x_init, seed=8).numpy()
    assert np.array_equal(a, b) and not np.allclose(a, c)
    graph = sampler._compiled_run.get_concrete_function(x_init, tf.constant([7, 0])).graph
    op_types = {op.type for op in graph.get_operations()}
    assert op_types & {"While", "StatelessWhile"}


def test_step_size_follows_the_schedule():
    sigma_levels = geometric_sigmas(1.0, 0.01, 10)
    sampler = AnnealedLangevin(lambda x, i: x, sigma_levels, n_steps_per_level=1, step_lr=2e-5)
    steps = np.array([float(sampler.step_size(tf.constant(i))) for i in range(10)])
    np.testing.assert_allclose(steps, 2e-5 * sigma_levels ** 2 / 0.01 ** 2, rtol=1e-5)


def test_draw_samples_from_a_score_network_have_the_image_shape_and_range():
    model = ScoreNetwork(NCSNConfig(image_shape=(8, 8, 1), width=4, channel_multipliers=(1,), downsample=(False,),
                                    dilations=(1,), n_res_blocks=1, n_sigmas=3))
    samples = draw_samples(model, SamplerConfig(n_steps_per_level=2, n_samples=5), seed=1).numpy()
    assert samples.shape == (5, 8, 8, 1)
    assert samples.min() >= 0.0 and samples.max() <= 1.0 and np.isfinite(samples).all()
