"""Hyper-parameters of the NCSN prior: the score network, its noise levels, and the Langevin sampler.

Each is a frozen dataclass; ``dataclasses.asdict`` of them is what a training run saves in
``run_dir/config.json`` (under the keys ``"model"`` and ``"sampler"``), so the run's noise levels and
network shape can be rebuilt from that file alone (:func:`ncsn.load_score_model`).

References:
    Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data Distribution" (NCSN).
    Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models" (NCSNv2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.errors import UserError, dataclass_from_dict


@dataclass(frozen=True)
class NCSNConfig:
    """Noise-conditional score network (RefineNet with CIN++) and its geometric noise schedule.

    Stage ``k`` of the encoder has ``width * channel_multipliers[k]`` channels, ``n_res_blocks``
    conditional residual blocks with dilation ``dilations[k]``, and halves the resolution when
    ``downsample[k]``. A RefineNet decoder mirrors the stages. The defaults reproduce the layout of
    Song & Ermon's ``CondRefineNetDilated`` (4 stages, one down-sampling, dilations 1, 1, 2, 4) at a small width.
    """
    image_shape: tuple[int, int, int] = (28, 28, 1)   # [H, W, C] of one input, model input units
    width: int = 32                                    # channels of the first stage (the paper's ngf: 64-128)
    channel_multipliers: tuple[int, ...] = (1, 2, 2, 2)
    downsample: tuple[bool, ...] = (False, True, False, False)
    dilations: tuple[int, ...] = (1, 1, 2, 4)
    n_res_blocks: int = 2                              # conditional residual blocks per stage
    sigma_max: float = 1.0                             # σ_1, largest noise std, model input units
    sigma_min: float = 0.01                            # σ_L, smallest noise std
    n_sigmas: int = 10                                 # L, number of noise levels
    scale_by_sigma: bool = False                       # NCSNv2: network output divided by σ
    centre_input: bool = True                          # feed 2x - 1 (data in [0, 1]) as the original code does

    def __post_init__(self):
        # JSON gives lists back; keep tuples so configs compare equal and stay hashable.
        for name in ("image_shape", "channel_multipliers", "downsample", "dilations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n_stages = len(self.channel_multipliers)
        if not (len(self.downsample) == len(self.dilations) == n_stages and n_stages >= 1):
            raise UserError(f"model config: channel_multipliers, downsample and dilations need one entry per stage "
                            f"(got {len(self.channel_multipliers)}, {len(self.downsample)}, {len(self.dilations)})")
        if len(self.image_shape) != 3:
            raise UserError(f"model config: image_shape must be [H, W, C], not {self.image_shape}")
        if self.width < 1 or self.n_res_blocks < 1:
            raise UserError("model config: width and n_res_blocks must be >= 1")
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise UserError(f"model config: need 0 < sigma_min < sigma_max (got {self.sigma_min}, {self.sigma_max})")
        if self.n_sigmas < 2:
            raise UserError(f"model config: n_sigmas must be >= 2, not {self.n_sigmas}")

    @classmethod
    def from_dict(cls, fields: dict) -> "NCSNConfig":
        return dataclass_from_dict(cls, fields, "model config")


@dataclass(frozen=True)
class SamplerConfig:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    At level ``i`` the step is ``α_i = step_lr * σ_i² / σ_L²`` and each of the ``n_steps_per_level``
    updates is ``x ← x + α_i/2 · s(x, σ_i) + sqrt(α_i) · z``. With ``final_denoise`` one last step
    ``x ← x + σ_L² · s(x, σ_L)`` removes the remaining noise (Tweedie's formula; NCSNv2, Sec. 3.5 / App. B).
    """
    n_steps_per_level: int = 100    # T
    step_lr: float = 2e-5           # ε (NCSN used 2e-5 with σ_L = 0.01)
    final_denoise: bool = True
    n_samples: int = 64             # samples drawn for the figures
    init: str = "uniform"           # "uniform" in [0, 1] (NCSN) or "gaussian": N(0.5, σ_1²) (NCSNv2)
    clip_output: bool = True        # clip the returned samples to [0, 1]

    def __post_init__(self):
        if self.n_steps_per_level < 1 or self.step_lr <= 0:
            raise UserError("sampler config: n_steps_per_level must be >= 1 and step_lr > 0")
        if self.init not in ("uniform", "gaussian"):
            raise UserError(f"sampler config: init must be 'uniform' or 'gaussian', not {self.init!r}")


def asdict(config) -> dict:
    """Plain-JSON dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


__all__ = ["NCSNConfig", "SamplerConfig", "asdict"]
