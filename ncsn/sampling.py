"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), one compiled loop over a batch.

For levels i = 1 … L with step α_i = ε σ_i² / σ_L², run T updates::

    x ← x + (α_i / 2) s(x, σ_i) + sqrt(α_i) z,     z ~ N(0, I)

then optionally one denoising step x ← x + σ_L² s(x, σ_L) (Tweedie's formula, NCSNv2 App. B).
The whole L·T loop is a single ``tf.while_loop`` inside one ``tf.function``: no Python runs per step.
Noise is drawn statelessly from ``(seed, step counter)``, so a seed gives the same samples every run.

:class:`AnnealedLangevin` keeps the level/step structure apart from the update itself: a subclass that
overrides :meth:`AnnealedLangevin.update_fn` (e.g. BASIS separation, which adds a mixture-consistency
term and moves several sources at once) reuses the schedule, the compiled loop and the seeding.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from ncsn.config import SamplerConfig

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


class AnnealedLangevin(tf.Module):
    """Annealed Langevin sampler for a score function ``score_fn(x [B, ...], sigma_index [B]) -> [B, ...]``.

    Args:
        score_fn: the score ∇_x log p_{σ_i}(x) at level index i (0 = largest σ).
        sigma_levels: ``[L]`` σ_1 > … > σ_L, in the same units as x.
        n_steps_per_level: T.
        step_lr: ε; the step at level i is ε σ_i² / σ_L².
        final_denoise: add x ← x + σ_L² s(x, σ_L) after the last level.
        jit_compile: compile the loop with XLA.
    """

    def __init__(self, score_fn: ScoreFn, sigma_levels, n_steps_per_level: int = 100, step_lr: float = 2e-5,
                 final_denoise: bool = True, jit_compile: bool = False, name: str | None = None):
        super().__init__(name=name)
        self.score_fn = score_fn
        self.sigma_levels = tf.constant(np.asarray(sigma_levels, np.float32))
        self.n_levels = int(self.sigma_levels.shape[0])
        self.n_steps_per_level = int(n_steps_per_level)
        self.step_lr = float(step_lr)
        self.final_denoise = bool(final_denoise)
        self._compiled_run = tf.function(self._run, jit_compile=jit_compile)

    @classmethod
    def from_config(cls, score_fn: ScoreFn, sigma_levels, config: SamplerConfig,
                    jit_compile: bool = False) -> "AnnealedLangevin":
        return cls(score_fn, sigma_levels, config.n_steps_per_level, config.step_lr, config.final_denoise,
                   jit_compile=jit_compile)

    def step_size(self, level: tf.Tensor) -> tf.Tensor:
        """α_i = ε σ_i² / σ_L² for level index ``level`` (scalar int32)."""
        return self.step_lr * tf.square(tf.gather(self.sigma_levels, level) / self.sigma_levels[-1])

    def update_fn(self, x: tf.Tensor, level: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """One Langevin update of ``x [B, ...]`` at level ``level`` with noise drawn from ``seed`` (int32 [2])."""
        alpha = self.step_size(level)
        sigma_index = tf.fill(tf.shape(x)[:1], level)
        noise = tf.random.stateless_normal(tf.shape(x), seed)
        return x + 0.5 * alpha * self.score_fn(x, sigma_index) + tf.sqrt(alpha) * noise

    def denoise_fn(self, x: tf.Tensor) -> tf.Tensor:
        """Tweedie denoising at the last level: x + σ_L² s(x, σ_L)."""
        sigma_index = tf.fill(tf.shape(x)[:1], self.n_levels - 1)
        return x + tf.square(self.sigma_levels[-1]) * self.score_fn(x, sigma_index)

    def _run(self, x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        n_total = self.n_levels * self.n_steps_per_level
        for counter in tf.range(n_total):   # AutoGraph: one tf.while_loop
            level = counter // self.n_steps_per_level
            x = self.update_fn(x, level, tf.random.experimental.stateless_fold_in(seed, counter))
        if self.final_denoise:
            x = self.denoise_fn(x)
        return x

    def sample(self, x_init, seed: int = 0) -> tf.Tensor:
        """Run all levels from ``x_init [B, ...]``; returns the final ``[B, ...]`` samples (not clipped)."""
        return self._compiled_run(tf.convert_to_tensor(x_init, tf.float32),
                                  tf.constant([seed, 0], dtype=tf.int32))


def initial_samples(n_samples: int, image_shape, sigma_max: float, init: str = "uniform",
                    seed: int = 0) -> tf.Tensor:
    """Starting points ``[n_samples, *image_shape]``: U[0, 1] (NCSN) or N(0.5, σ_1²) (NCSNv2 'gaussian')."""
    shape = (n_samples, *image_shape)
    key = tf.constant([seed, 1], dtype=tf.int32)
    if init == "uniform":
        return tf.random.stateless_uniform(shape, key)
    assert init == "gaussian", init
    return 0.5 + sigma_max * tf.random.stateless_normal(shape, key)


def draw_samples(score_model, config: SamplerConfig, n_samples: int | None = None, seed: int = 0,
                 jit_compile: bool = False) -> tf.Tensor:
    """Samples ``[n, *image_shape]`` from a :class:`~ncsn.model.ScoreNetwork` with the settings of ``config``."""
    model_config = score_model.config
    sampler = AnnealedLangevin.from_config(score_model, score_model.sigma_levels, config, jit_compile=jit_compile)
    x_init = initial_samples(n_samples or config.n_samples, model_config.image_shape,
                             float(score_model.sigma_levels[0]), config.init, seed)
    samples = sampler.sample(x_init, seed)
    return tf.clip_by_value(samples, 0.0, 1.0) if config.clip_output else samples
