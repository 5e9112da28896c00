"""The noise-conditional score network s_θ(x, σ_i) ≈ ∇_x log p_{σ_i}(x): a RefineNet with CIN++.

Interface used by the sampler, the training script and BASIS separation::

    model = ScoreNetwork(NCSNConfig(image_shape=(96, 64, 1)))
    score = model(x, sigma_index)          # x [B, H, W, C] in model input units, sigma_index int [B] or scalar
    model.sigma_levels                      # [L] float32 σ_1 > … > σ_L

References:
    Song & Ermon (2019), NCSN, App. A (``CondRefineNetDilated``);
    Song & Ermon (2020), NCSNv2, Technique 3 (s_θ(x, σ) = s_θ(x) / σ) as the ``scale_by_sigma`` option.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from ncsn.config import NCSNConfig
from ncsn.layers import CondInstanceNormPlus, CondRefineBlock, CondResidualBlock, Conv2D
from ncsn.sigmas import geometric_sigmas


class ScoreNetwork(tf.Module):
    """RefineNet score network conditioned on the index of the noise level.

    Encoder: a 3x3 conv, then one stage of ``n_res_blocks`` :class:`CondResidualBlock` per entry of
    ``config.channel_multipliers`` (optionally down-sampling, optionally dilated). Decoder: one
    :class:`CondRefineBlock` per stage, deepest first, each fusing its stage's features with the
    previous block's output. Then CIN++ → ELU → 3x3 conv back to C channels.
    """

    def __init__(self, config: NCSNConfig, seed: int = 0, name: str | None = "score_network"):
        super().__init__(name=name)
        self.config = config
        rng = np.random.default_rng(seed)
        self.sigma_levels = tf.constant(geometric_sigmas(config.sigma_max, config.sigma_min, config.n_sigmas))
        n_sigmas, in_channels = config.n_sigmas, config.image_shape[-1]
        stage_channels = [config.width * m for m in config.channel_multipliers]

        self.input_conv = Conv2D(in_channels, stage_channels[0], rng)
        self.stages = []
        previous = stage_channels[0]
        for channels, downsample, dilation in zip(stage_channels, config.downsample, config.dilations):
            blocks = [CondResidualBlock(previous, channels, n_sigmas, rng, downsample=downsample, dilation=dilation)]
            blocks += [CondResidualBlock(channels, channels, n_sigmas, rng, dilation=dilation)
                       for _ in range(config.n_res_blocks - 1)]
            self.stages.append(blocks)
            previous = channels

        # Refine block k (deepest first) takes [stage k features, block k+1 output] and outputs the
        # channel count of stage k-1 (stage 0 for the last), as in the original's refine1..refine4.
        self.refine_blocks = []
        incoming = None
        for k in reversed(range(len(stage_channels))):
            inputs = [stage_channels[k]] + ([] if incoming is None else [incoming])
            out_channels = stage_channels[max(k - 1, 0)]
            self.refine_blocks.append(CondRefineBlock(inputs, out_channels, n_sigmas, rng, is_last=(k == 0)))
            incoming = out_channels
        self.output_norm = CondInstanceNormPlus(stage_channels[0], n_sigmas, rng)
        self.output_conv = Conv2D(stage_channels[0], in_channels, rng)

    def __call__(self, x: tf.Tensor, sigma_index) -> tf.Tensor:
        """Score ∇_x log p_σ(x) at level ``sigma_index``.

        Args:
            x: ``[B, H, W, C]`` float32, model input units (``config.image_shape``).
            sigma_index: int ``[B]`` or scalar, index into :attr:`sigma_levels` (0 = largest σ).
        Returns:
            ``[B, H, W, C]`` float32 score, in 1 / input units.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        assert tuple(x.shape[1:]) == tuple(self.config.image_shape), \
            f"input {x.shape} does not match image_shape {self.config.image_shape}"
        sigma_index = tf.broadcast_to(tf.cast(sigma_index, tf.int32), tf.shape(x)[:1])
        h = self.input_conv(2.0 * x - 1.0 if self.config.centre_input else x)
        stage_outputs = []
        for blocks in self.stages:
            for block in blocks:
                h = block(h, sigma_index)
            stage_outputs.append(h)
        refined = None
        for block, skip in zip(self.refine_blocks, reversed(stage_outputs)):
            inputs = [skip] if refined is None else [skip, refined]
            refined = block(inputs, sigma_index, skip.shape[1:3])
        score = self.output_conv(tf.nn.elu(self.output_norm(refined, sigma_index)))
        if self.config.scale_by_sigma:
            score = score / tf.gather(self.sigma_levels, sigma_index)[:, None, None, None]
        return score

    score = __call__

    def set_conv_dtype(self, dtype: tf.DType) -> "ScoreNetwork":
        """Run every convolution in ``dtype`` (``tf.float32`` or ``tf.bfloat16``; see :class:`Conv2D`).

        For inference (BASIS, sampling); set it before the first call of a compiled function, which traces
        the dtype in. The weights stay float32, so checkpoints and training are unaffected.
        """
        if dtype not in (tf.float32, tf.bfloat16):
            raise ValueError(f"conv dtype must be float32 or bfloat16, not {dtype}")
        for module in self.submodules:
            if isinstance(module, Conv2D):
                module.compute_dtype = dtype
        return self

    def build(self, batch_size: int = 1) -> "ScoreNetwork":
        """Run once on zeros so every variable exists (they already do: kept for the training contract)."""
        self(tf.zeros((batch_size, *self.config.image_shape)), 0)
        return self

    def n_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))
