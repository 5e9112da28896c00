"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): multi-scale affine couplings with checkerboard and channel masks.

Data -> latent, one level on ``[H, W, C]`` (not the last)::

    K checkerboard couplings (alternating parity) -> squeeze -> [H/2, W/2, 4C]
      -> K channel couplings (alternating halves) -> factor out: [:2C] to the next level, [2C:] latents
      -> un-squeeze -> [H, W, C]

The last level has K + 1 checkerboard couplings (the paper: 3 and 4). Each coupling is followed by an actnorm
(the paper used batch normalisation; actnorm is its batch-independent replacement from Glow). The coupling
networks are :class:`~flow_models.flow_tfk_layers.CouplingNet` (the paper used ResNets). The latent has the
image's shape.
"""
from __future__ import annotations

import itertools

from flow_models.config import FlowConfig
from flow_models.flow_tfk_layers import CouplingNet
from flow_models.flow_tfp_bijectors import TFPBlocks


def build_realnvp(cfg: FlowConfig, blocks=TFPBlocks):
    """The RealNVP flow of ``cfg`` (a ``tfb.Chain`` with the default ``blocks``)."""
    assert cfg.architecture == "realnvp", cfg.architecture
    seeds = itertools.count(cfg.seed * 100_003)
    additive = cfg.coupling == "additive"

    def coupling(prefix: str, channels: int, mask: str, parity: int):
        changed = channels if mask == "checkerboard" else channels - channels // 2
        net = CouplingNet(cfg.hidden_width, 2 * changed, seed=next(seeds), name=f"{prefix}_net")
        return [blocks.coupling(net, channels, mask=mask, parity=parity, additive=additive,
                                name=f"{prefix}_coupling"),
                blocks.actnorm(channels, name=f"{prefix}_actnorm")]

    def level(index: int, channels: int):
        last = index + 1 == cfg.n_levels
        parts = []
        for step in range(cfg.n_steps + (1 if last else 0)):
            parts += coupling(f"level{index}_checker{step}", channels, "checkerboard", step % 2)
        if last:
            return blocks.sequence(parts, name=f"level{index}")
        squeezed = 4 * channels
        parts.append(blocks.squeeze(name=f"level{index}_squeeze"))
        for step in range(cfg.n_steps):
            parts += coupling(f"level{index}_channel{step}", squeezed, "channel", step % 2)
        kept = squeezed // 2
        parts.append(blocks.factor_out(level(index + 1, kept), n_keep=kept, name=f"level{index}_factor_out"))
        parts.append(blocks.unsqueeze(name=f"level{index}_unsqueeze"))
        return blocks.sequence(parts, name=f"level{index}")

    preprocess = blocks.preprocess(kind=cfg.preprocess, alpha=cfg.logit_alpha, num_levels=cfg.num_levels,
                                   name="preprocess")
    return blocks.sequence([preprocess, level(0, cfg.image_shape[2])], name="realnvp")
