"""Building blocks of the noise-conditional RefineNet (Song & Ermon 2019, App. A), as ``tf.Module``s.

Every block is conditioned on the noise level through ``sigma_index``: an int32 tensor ``[B]`` of indices
into the model's σ schedule, used by conditional instance normalisation++ (CIN++). Feature maps are
NHWC: ``[B, H, W, C]``. Weights are created eagerly in ``__init__`` from a ``numpy.random.Generator``,
so a model built with the same seed has the same initial weights.

References:
    Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data Distribution", App. A
    (CIN++, conditional residual and RefineNet blocks); Lin et al. (2017), "RefineNet" (RCU, MSF, CRP);
    Dumoulin et al. (2017), conditional instance normalisation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

NORM_EPSILON = 1e-5


def _uniform(rng: np.random.Generator, shape: Sequence[int], bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Conv2D(tf.Module):
    """3x3 (or ``kernel_size``) convolution, stride 1, 'SAME' padding, optional dilation.

    Initialised like PyTorch's ``nn.Conv2d`` (uniform in ±1/sqrt(fan_in)), as in the original NCSN code.
    ``[B, H, W, in_channels] -> [B, H, W, out_channels]``, float32 in and out. ``compute_dtype``
    (:meth:`ncsn.model.ScoreNetwork.set_conv_dtype`) may be ``tf.bfloat16``: input and kernel are rounded to
    bfloat16 for the convolution (oneDNN's AMX / AVX-512-BF16 kernels accumulate in float32 and round the output
    to bfloat16); the bias and everything outside the convolution stay float32.
    """

    compute_dtype = tf.float32

    def __init__(self, in_channels: int, out_channels: int, rng: np.random.Generator, kernel_size: int = 3,
                 dilation: int = 1, use_bias: bool = True, name: str | None = None):
        super().__init__(name=name)
        bound = 1.0 / np.sqrt(in_channels * kernel_size * kernel_size)
        self.kernel = tf.Variable(_uniform(rng, (kernel_size, kernel_size, in_channels, out_channels), bound),
                                  name="kernel")
        self.bias = tf.Variable(_uniform(rng, (out_channels,), bound), name="bias") if use_bias else None
        self.dilation = dilation

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        # tf.cast to the tensor's own dtype returns it unchanged, so float32 adds no ops
        y = tf.nn.conv2d(tf.cast(x, self.compute_dtype), tf.cast(self.kernel, self.compute_dtype), strides=1,
                         padding="SAME", dilations=self.dilation)
        y = tf.cast(y, tf.float32)
        return y if self.bias is None else y + self.bias


class CondInstanceNormPlus(tf.Module):
    """Conditional instance normalisation++ (Song & Ermon 2019, Eq. 9).

    For channel k with spatial mean μ_k and std s_k, and m, v the mean and std of μ over channels::

        out_k = γ[i, k] (x_k - μ_k) / s_k + β[i, k] + α[i, k] (μ_k - m) / v

    where i is the noise level. The α term keeps the channel means, which plain instance norm drops
    (the cause of colour shifts in NCSN samples). γ, α start at N(1, 0.02²), β at 0.
    ``x [B, H, W, C], sigma_index [B] -> [B, H, W, C]``.
    """

    def __init__(self, channels: int, n_sigmas: int, rng: np.random.Generator, name: str | None = None):
        super().__init__(name=name)
        scale = (1.0 + 0.02 * rng.standard_normal((n_sigmas, 2 * channels))).astype(np.float32)
        self.embedding = tf.Variable(np.concatenate([scale, np.zeros((n_sigmas, channels), np.float32)], axis=1),
                                     name="embedding")   # [L, 3C]: γ | α | β
        self.channels = channels

    def __call__(self, x: tf.Tensor, sigma_index: tf.Tensor) -> tf.Tensor:
        gamma, alpha, beta = tf.split(tf.gather(self.embedding, sigma_index)[:, None, None, :], 3, axis=-1)
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)            # [B, 1, 1, C]
        mean_of_means, variance_of_means = tf.nn.moments(mean, axes=[3], keepdims=True)
        normalised_means = (mean - mean_of_means) * tf.math.rsqrt(variance_of_means + NORM_EPSILON)
        # The same affine map of x, folded into one per-channel scale and shift ([B, 1, 1, C]) so that the
        # full-size feature map is touched by one multiply-add instead of five passes (15 % of a forward).
        scale = gamma * tf.math.rsqrt(variance + NORM_EPSILON)
        shift = beta + gamma * alpha * normalised_means - mean * scale
        return x * scale + shift


class CondResidualBlock(tf.Module):
    """Pre-activation residual block: CIN++ → ELU → conv → CIN++ → ELU → conv, plus a shortcut.

    ``downsample``: the second conv is followed by 2x2 mean pooling (the shortcut is a 1x1 conv + pooling),
    so ``[B, H, W, in_channels] -> [B, ceil(H/2), ceil(W/2), out_channels]``; otherwise the size is kept.
    ``dilation`` > 1 gives dilated 3x3 convs (and a dilated 3x3 shortcut), as in ``CondRefineNetDilated``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_sigmas: int, rng: np.random.Generator,
                 downsample: bool = False, dilation: int = 1, name: str | None = None):
        super().__init__(name=name)
        hidden = in_channels if downsample else out_channels
        self.norm1 = CondInstanceNormPlus(in_channels, n_sigmas, rng)
        self.conv1 = Conv2D(in_channels, hidden, rng, dilation=dilation)
        self.norm2 = CondInstanceNormPlus(hidden, n_sigmas, rng)
        self.conv2 = Conv2D(hidden, out_channels, rng, dilation=dilation)
        self.downsample = downsample
        self.shortcut = None
        if downsample or in_channels != out_channels:
            kernel_size = 1 if dilation == 1 else 3
            self.shortcut = Conv2D(in_channels, out_channels, rng, kernel_size=kernel_size, dilation=dilation)

    @staticmethod
    def _mean_pool(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="SAME")

    def __call__(self, x: tf.Tensor, sigma_index: tf.Tensor) -> tf.Tensor:
        h = self.conv1(tf.nn.elu(self.norm1(x, sigma_index)))
        h = self.conv2(tf.nn.elu(self.norm2(h, sigma_index)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, shortcut = self._mean_pool(h), self._mean_pool(shortcut)
        return h + shortcut


class CondRCUBlock(tf.Module):
    """RefineNet residual conv unit: ``n_blocks`` x (``n_stages`` x [CIN++ → ELU → conv], + identity)."""

    def __init__(self, channels: int, n_blocks: int, n_stages: int, n_sigmas: int, rng: np.random.Generator,
                 name: str | None = None):
        super().__init__(name=name)
        self.norms = [[CondInstanceNormPlus(channels, n_sigmas, rng) for _ in range(n_stages)]
                      for _ in range(n_blocks)]
        self.convs = [[Conv2D(channels, channels, rng, use_bias=False) for _ in range(n_stages)]
                      for _ in range(n_blocks)]

    def __call__(self, x: tf.Tensor, sigma_index: tf.Tensor) -> tf.Tensor:
        for norms, convs in zip(self.norms, self.convs):
            residual = x
            for norm, conv in zip(norms, convs):
                x = conv(tf.nn.elu(norm(x, sigma_index)))
            x = x + residual
        return x


class CondMSFBlock(tf.Module):
    """RefineNet multi-resolution fusion: CIN++ → conv of each input, bilinear resize to ``output_hw``, sum."""

    def __init__(self, in_channels: Sequence[int], channels: int, n_sigmas: int, rng: np.random.Generator,
                 name: str | None = None):
        super().__init__(name=name)
        self.norms = [CondInstanceNormPlus(c, n_sigmas, rng) for c in in_channels]
        self.convs = [Conv2D(c, channels, rng) for c in in_channels]

    def __call__(self, xs: Sequence[tf.Tensor], sigma_index: tf.Tensor, output_hw: Sequence[int]) -> tf.Tensor:
        total = None
        for x, norm, conv in zip(xs, self.norms, self.convs):
            h = conv(norm(x, sigma_index))
            if tuple(h.shape[1:3]) != tuple(output_hw):
                h = tf.image.resize(h, output_hw, method="bilinear")
            total = h if total is None else total + h
        return total


class CondCRPBlock(tf.Module):
    """RefineNet chained residual pooling: ELU, then ``n_stages`` x [CIN++ → 5x5 mean pool → conv], summed."""

    def __init__(self, channels: int, n_stages: int, n_sigmas: int, rng: np.random.Generator,
                 name: str | None = None):
        super().__init__(name=name)
        self.norms = [CondInstanceNormPlus(channels, n_sigmas, rng) for _ in range(n_stages)]
        self.convs = [Conv2D(channels, channels, rng, use_bias=False) for _ in range(n_stages)]

    def __call__(self, x: tf.Tensor, sigma_index: tf.Tensor) -> tf.Tensor:
        x = tf.nn.elu(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = conv(tf.nn.avg_pool2d(norm(path, sigma_index), ksize=5, strides=1, padding="SAME"))
            x = x + path
        return x


class CondRefineBlock(tf.Module):
    """RefineNet block: RCU on each input → multi-resolution fusion → chained residual pooling → RCU.

    ``xs``: feature maps ``[B, H_j, W_j, in_channels[j]]``; returns ``[B, *output_hw, channels]``.
    ``is_last``: the output RCU has 3 blocks instead of 1 (as in the original's final refine block).
    """

    def __init__(self, in_channels: Sequence[int], channels: int, n_sigmas: int, rng: np.random.Generator,
                 is_last: bool = False, name: str | None = None):
        super().__init__(name=name)
        self.adapt = [CondRCUBlock(c, 2, 2, n_sigmas, rng) for c in in_channels]
        needs_fusion = len(in_channels) > 1 or in_channels[0] != channels
        self.fusion = CondMSFBlock(in_channels, channels, n_sigmas, rng) if needs_fusion else None
        self.pooling = CondCRPBlock(channels, 2, n_sigmas, rng)
        self.output_rcu = CondRCUBlock(channels, 3 if is_last else 1, 2, n_sigmas, rng)

    def __call__(self, xs: Sequence[tf.Tensor], sigma_index: tf.Tensor, output_hw: Sequence[int]) -> tf.Tensor:
        hs = [adapt(x, sigma_index) for adapt, x in zip(self.adapt, xs)]
        h = hs[0] if self.fusion is None else self.fusion(hs, sigma_index, output_hw)
        return self.output_rcu(self.pooling(h, sigma_index), sigma_index)
