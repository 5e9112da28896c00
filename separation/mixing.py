"""Mixing models g(x_1, ..., x_S) in the priors' input units, with their exact (diagonal) Jacobians.

BASIS needs the mixture model and ∂g/∂x_k. Both are elementwise here, so the Jacobian is a tensor of
weights of the same shape as the sources:

- :class:`MeanMixing` — superposed images: ``g = (1/S) Σ_k x_k``, ``∂g/∂x_k = 1/S``.
- :class:`MelDbMixing` — mel spectrograms scaled to [0, 1]: the sources are undone to dB
  (``d_k = x_k (db_max - db_min) + db_min``), their *powers* add, and the result is clipped and scaled
  back: ``g = scale(clip(10 log10 Σ_k 10^(d_k / 10)))``. Then ``∂g/∂x_k = softmax_k(d · ln10 / 10)``
  inside the clip range and 0 outside (the scale factors cancel). This is the physical mixing model;
  the original project applied the dB formula to the [0, 1] values directly, which made estimates too loud.

Shapes: ``sources [S, B, H, W, C]`` -> ``g [B, H, W, C]``, weights ``[S, B, H, W, C]``.
"""
from __future__ import annotations

import math

import tensorflow as tf

from pipeline.mel import MelConfig


class MeanMixing:
    """Superposed images: the mean of the sources."""

    def __call__(self, sources: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(sources, axis=0)

    @staticmethod
    def max_jacobian_norm2(n_sources: int) -> float:
        """max over x of Σ_k (∂g/∂x_k)² = S · (1/S)²."""
        return 1.0 / n_sources

    def jacobian_weights(self, sources: tf.Tensor) -> tf.Tensor:
        return tf.fill(tf.shape(sources), 1.0 / tf.cast(tf.shape(sources)[0], sources.dtype))


class MelDbMixing:
    """Power addition of [0, 1]-scaled mel dB spectrograms (see the module docstring)."""

    def __init__(self, cfg: MelConfig):
        self.db_min, self.db_max = float(cfg.db_min), float(cfg.db_max)
        self.db_range = self.db_max - self.db_min
        self._k = math.log(10.0) / 10.0          # 10^(d/10) = exp(k d)

    def mixture_db(self, sources: tf.Tensor) -> tf.Tensor:
        """Unclipped mixture in dB: 10 log10 Σ 10^(d_k/10), computed stably with logsumexp."""
        d = sources * self.db_range + self.db_min
        return tf.reduce_logsumexp(self._k * d, axis=0) / self._k

    def __call__(self, sources: tf.Tensor) -> tf.Tensor:
        g_db = tf.clip_by_value(self.mixture_db(sources), self.db_min, self.db_max)
        return (g_db - self.db_min) / self.db_range

    @staticmethod
    def max_jacobian_norm2(n_sources: int) -> float:
        """max over x of Σ_k (∂g/∂x_k)²: the weights are a softmax (they sum to one), so at most 1."""
        return 1.0

    def jacobian_weights(self, sources: tf.Tensor) -> tf.Tensor:
        d = sources * self.db_range + self.db_min
        weights = tf.nn.softmax(self._k * d, axis=0)
        g_db = self.mixture_db(sources)
        inside = tf.cast((g_db > self.db_min) & (g_db < self.db_max), sources.dtype)
        return weights * inside[None]
