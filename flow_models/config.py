"""Hyper-parameters of a flow prior; ``dataclasses.asdict`` of :class:`FlowConfig` is saved in each run's
``config.json`` under ``"model" -> "flow"``, so the flow can be rebuilt from its run folder alone
(:func:`flow_models.flow_builder.load_flow`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.errors import UserError, dataclass_from_dict

ARCHITECTURES = ("glow", "realnvp")


@dataclass(frozen=True)
class FlowConfig:
    """A multi-scale flow on ``[H, W, C]`` images with values in [0, 1].

    Glow (Kingma & Dhariwal 2018): each of the ``n_levels`` levels squeezes (H, W halve, C x 4), runs
    ``n_steps`` steps of actnorm -> invertible 1x1 conv -> channel coupling, and (except the last) factors
    half of the channels out. RealNVP (Dinh et al. 2017): each level runs ``n_steps`` checkerboard couplings,
    squeezes, runs ``n_steps`` channel couplings and factors half out; the last level has ``n_steps + 1``
    checkerboard couplings; every coupling is followed by an actnorm (in place of the paper's batch norm).
    """
    architecture: str = "glow"                        # "glow" | "realnvp"
    image_shape: tuple[int, int, int] = (32, 32, 1)   # [H, W, C] of one input, model input units
    n_levels: int = 3                                 # L: multi-scale levels
    n_steps: int = 8                                  # K: flow steps (Glow) / couplings per stage (RealNVP)
    hidden_width: int = 128                           # channels of the coupling networks
    coupling: str = "affine"                          # "affine" (scale sigmoid(h + 2)) | "additive"
    base: str = "normal"                              # base distribution: "normal" N(0, I) | "learned" diagonal
    preprocess: str = "centre"                        # [0, 1] -> R: "centre" (x - 0.5) | "logit" (RealNVP)
    logit_alpha: float = 0.05                         # alpha of the logit preprocessing
    num_levels: int = 0                               # quantisation levels of the data (256: 8-bit images and
                                                      # mel by default) for dequantisation; 0: continuous
    noise_sigma: float = 0.0                          # std of the Gaussian noise the model is trained on (noisy Glow)
    seed: int = 0                                     # initial weights (1x1 rotations, coupling nets)

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"flow config: architecture must be one of {', '.join(ARCHITECTURES)}, "
                            f"not {self.architecture!r}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise UserError(f"flow config: image_shape must be [H, W, C], not {list(self.image_shape)}")
        if self.n_levels < 1 or self.n_steps < 1 or self.hidden_width < 1:
            raise UserError("--n-levels, --n-steps and --hidden-width must be >= 1")
        height, width, _ = self.image_shape
        squeezes = self.n_levels if self.architecture == "glow" else self.n_levels - 1
        factor = 2 ** squeezes
        if height % factor or width % factor:
            raise UserError(f"--n-levels {self.n_levels}: {self.architecture} squeezes {squeezes} times, so H and W "
                            f"must be multiples of {factor}, but the images are {height}x{width}; use fewer "
                            f"levels or pad the images")
        if self.coupling not in ("affine", "additive"):
            raise UserError(f"--coupling must be 'affine' or 'additive', not {self.coupling!r}")
        if self.base not in ("normal", "learned"):
            raise UserError(f"--base must be 'normal' or 'learned', not {self.base!r}")
        if self.preprocess not in ("centre", "logit"):
            raise UserError(f"--preprocess must be 'centre' or 'logit', not {self.preprocess!r}")
        if not 0.0 < self.logit_alpha < 0.5:
            raise UserError(f"--logit-alpha must be in (0, 0.5), not {self.logit_alpha}")
        if self.num_levels < 0 or self.num_levels == 1:
            raise UserError(f"flow config: num_levels must be 0 (continuous) or >= 2, not {self.num_levels}")
        if self.noise_sigma < 0:
            raise UserError(f"flow config: noise_sigma must be >= 0, not {self.noise_sigma}")
        if self.noise_sigma > 0 and self.preprocess == "logit":
            raise UserError("noisy flows need --preprocess centre: noisy inputs leave [0, 1], where the logit "
                            "preprocessing is undefined")

    @property
    def n_dims(self) -> int:
        """D = H * W * C."""
        height, width, channels = self.image_shape
        return height * width * channels

    def replace(self, **changes) -> "FlowConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, fields: dict) -> "FlowConfig":
        return dataclass_from_dict(cls, fields, "flow config")


def asdict(config: FlowConfig) -> dict:
    """Plain-JSON dict of a :class:`FlowConfig` (tuples become lists)."""
    fields = dataclasses.asdict(config)
    fields["image_shape"] = list(fields["image_shape"])
    return fields
