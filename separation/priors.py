"""Priors for BASIS behind one interface: ``score(x, level) -> ∇_x log p_{σ_level}(x)``.

``x``: ``[B, H, W, C]`` float32 in the prior's input units; ``level``: int32 scalar tensor, the index of
the annealing level (0 = largest σ). Every ``score`` is traceable inside one compiled loop.

- :class:`NCSNPrior` — the noise-conditional score network at σ_level (its own σ schedule).
- :class:`FlowPrior` — a clean Glow/RealNVP: ∇ log p(x) by autodiff (one backward pass), the same at
  every level. x is projected onto [0, 1] first (the flow's logit preprocessing is undefined outside).
- :class:`NoisyFlowPrior` — one flow fine-tuned per σ_level ("noisy Glow"), picked with ``tf.switch_case``.
- :class:`GaussianPrior` — analytic N(μ, diag v) smoothed by σ: score ``-(x - μ) / (v + σ²)``; for tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from pipeline.errors import UserError

PRIOR_KINDS = ("ncsn", "glow", "noisy_glow")


class NCSNPrior:
    def __init__(self, model, name: str = "ncsn"):
        self.model = model
        self.name = name
        self.sigma_levels = np.asarray(model.sigma_levels.numpy(), np.float32)
        self.image_shape = tuple(model.config.image_shape)
        self.denoise = True

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        return self.model(x, level)


def _flow_score(flow, x: tf.Tensor) -> tf.Tensor:
    projected = tf.clip_by_value(x, 0.0, 1.0)
    with tf.GradientTape() as tape:
        tape.watch(projected)
        log_p = tf.reduce_sum(flow.log_prob(projected))
    return tape.gradient(log_p, projected)


class FlowPrior:
    def __init__(self, flow, name: str = "glow"):
        self.flow = flow
        self.name = name
        self.sigma_levels = None            # a clean flow has no schedule of its own
        self.image_shape = tuple(flow.config.image_shape)
        self.denoise = False

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        return _flow_score(self.flow, x)


class NoisyFlowPrior:
    """Flows fine-tuned at each σ of the schedule; ``flows`` in *descending* σ order (level 0 = largest σ)."""

    def __init__(self, sigmas_and_flows: Sequence[tuple[float, object]], name: str = "noisy_glow"):
        ordered = sorted(sigmas_and_flows, key=lambda pair: -pair[0])
        self.sigma_levels = np.asarray([s for s, _ in ordered], np.float32)
        self.flows = [f for _, f in ordered]
        self.name = name
        self.image_shape = tuple(self.flows[0].config.image_shape)
        self.denoise = False

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        branches = [lambda flow=flow: _flow_score(flow, x) for flow in self.flows]
        return tf.switch_case(tf.cast(level, tf.int32), branches)


class GaussianPrior:
    def __init__(self, mean: np.ndarray, variance: np.ndarray, sigma_levels: Sequence[float], name: str = "gaussian"):
        self.mean = tf.constant(mean, tf.float32)
        self.variance = tf.constant(variance, tf.float32)
        self.sigma_levels = np.asarray(sigma_levels, np.float32)
        self.image_shape = tuple(np.shape(mean))
        self.name = name
        self.denoise = False

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        sigma = tf.gather(tf.constant(self.sigma_levels), level)
        return -(x - self.mean) / (self.variance + sigma ** 2)


def load_prior(kind: str, run_dir: str | Path, conv_dtype: str = "float32"):
    """Load a trained prior of ``kind`` (one of :data:`PRIOR_KINDS`) from its run folder.

    ``conv_dtype`` (NCSN only; ``float32``, ``bfloat16`` or ``auto``, :mod:`ncsn.precision`): the dtype of the
    score network's convolutions. A prior not in float32 says so in its name, which the separation records.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: checkpoint folder not found (train one with train_{'glow' if 'glow' in kind else 'ncsn'}.py "
                        f"or use the shipped ones under pretrained/)")
    if kind == "ncsn":
        from ncsn.precision import resolve_conv_dtype
        from ncsn.training import load_score_model
        dtype = resolve_conv_dtype(conv_dtype)
        suffix = "" if dtype == tf.float32 else f"@conv_{dtype.name}"
        return NCSNPrior(load_score_model(run_dir).set_conv_dtype(dtype), name=f"ncsn:{run_dir.name}{suffix}")
    if kind == "glow":
        from flow_models.flow_builder import load_flow
        return FlowPrior(load_flow(run_dir), name=f"glow:{run_dir.name}")
    if kind == "noisy_glow":
        from flow_models.flow_builder import load_noisy_flows
        return NoisyFlowPrior(load_noisy_flows(run_dir), name=f"noisy_glow:{run_dir.name}")
    raise UserError(f"--prior must be one of {', '.join(PRIOR_KINDS)}, not {kind!r}")
