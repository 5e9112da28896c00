"""Glow (Kingma & Dhariwal 2018): L levels x K steps of actnorm -> invertible 1x1 conv -> affine coupling.

Data -> latent, one level on ``[H, W, C]``::

    squeeze -> [H/2, W/2, 4C] -> K x (actnorm, 1x1 conv, channel coupling)
            -> factor out: channels [:2C] go through the next level, [2C:] are latents   (not on the last level)
            -> un-squeeze -> [H, W, C]

so every level keeps the shape and the latent ``z`` has the image's shape ``[H, W, C]``. The preprocessing
bijector (``[0, 1] -> R``) comes first. Mel patches ``[96, 64, 1]`` with L = 3 reach ``[12, 8, 64]`` at the
last level; 32 x 32 images reach ``[4, 4, 64 C]``.
"""
from __future__ import annotations

import itertools

from flow_models.config import FlowConfig
from flow_models.flow_tfk_layers import CouplingNet
from flow_models.flow_tfp_bijectors import TFPBlocks


def build_glow(cfg: FlowConfig, blocks=TFPBlocks):
    """The Glow flow of ``cfg`` as a ``tfb.Chain`` (``blocks=TFPBlocks``) or a Keras ``SequenceLayer``
    (``blocks=flow_tfk_layers.KerasBlocks``); both builds of one config start from identical weights."""
    assert cfg.architecture == "glow", cfg.architecture
    seeds = itertools.count(cfg.seed * 100_003)
    additive = cfg.coupling == "additive"

    def level(index: int, channels: int):
        squeezed = 4 * channels
        kept = squeezed // 2
        parts = [blocks.squeeze(name=f"level{index}_squeeze")]
        for step in range(cfg.n_steps):
            prefix = f"level{index}_step{step}"
            net = CouplingNet(cfg.hidden_width, 2 * (squeezed - kept), seed=next(seeds), name=f"{prefix}_net")
            parts += [blocks.actnorm(squeezed, name=f"{prefix}_actnorm"),
                      blocks.conv1x1(squeezed, seed=next(seeds), name=f"{prefix}_conv1x1"),
                      blocks.coupling(net, squeezed, mask="channel", parity=0, additive=additive,
                                      name=f"{prefix}_coupling")]
        if index + 1 < cfg.n_levels:
            parts.append(blocks.factor_out(level(index + 1, kept), n_keep=kept, name=f"level{index}_factor_out"))
        parts.append(blocks.unsqueeze(name=f"level{index}_unsqueeze"))
        return blocks.sequence(parts, name=f"level{index}")

    preprocess = blocks.preprocess(kind=cfg.preprocess, alpha=cfg.logit_alpha, num_levels=cfg.num_levels,
                                   name="preprocess")
    return blocks.sequence([preprocess, level(0, cfg.image_shape[2])], name="glow")
