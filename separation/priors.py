"""Priors for BASIS behind one interface: ``score(x, level) -> ∇_x log p_{σ_level}(x)``.

``x``: ``[B, H, W, C]`` float32 in the prior's input units; ``level``: int32 scalar tensor, the index of
the annealing level (0 = largest σ). Every ``score`` is traceable inside one compiled loop.

Every prior also estimates ``neg_log_density(x, noise, n_levels=None) -> [B]``: −log p(x) up to a constant
that does not depend on x, so that BASIS can rank several chains of the same mixture (``BasisConfig.n_chains``).
Flows have it exactly; a score network has the denoising bound of :func:`score_matching_nll`. ``n_levels`` = l
ranks a state that has been annealed through the first l levels only (``BasisConfig.select_after_levels``): the
score network's bound then runs over those levels, σ_1 … σ_l, and priors with a density per level use σ_l's.

- :class:`NCSNPrior` — the noise-conditional score network at σ_level (its own σ schedule).
- :class:`FlowPrior` — a clean Glow/RealNVP: ∇ log p(x) by autodiff (one backward pass), the same at
  every level. With ``flow_inputs="clip"`` x is projected onto [0, 1] first (a logit-preprocessed flow is
  undefined outside); ``"raw"`` scores x itself, as the paper does (centre-preprocessed flows only).
- :class:`NoisyFlowPrior` — one flow fine-tuned per σ_level ("noisy Glow"), picked with ``tf.switch_case``;
  each was trained on x + N(0, σ²), which leaves [0, 1], so ``"raw"`` scores the chain where that flow was fitted.
- :class:`GaussianPrior` — analytic N(μ, diag v) smoothed by σ: score ``-(x - μ) / (v + σ²)``; for tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from pipeline.errors import UserError

PRIOR_KINDS = ("ncsn", "glow", "noisy_glow")
FLOW_INPUTS = ("clip", "raw")         # how a flow prior sees the chain: projected onto [0, 1], or as it is


def log_sigma_weights(sigma_levels: Sequence[float]) -> np.ndarray:
    """Trapezoid weights ``[L]`` of ∫ f(σ) d ln σ on the levels σ_1 > … > σ_L (equal for a geometric schedule)."""
    log_sigma = np.log(np.asarray(sigma_levels, np.float64))
    if len(log_sigma) == 1:
        return np.ones(1, np.float32)
    gaps = -np.diff(log_sigma)
    return ((np.concatenate([gaps, [0.0]]) + np.concatenate([[0.0], gaps])) / 2).astype(np.float32)


def score_matching_nll(score, x: tf.Tensor, noise: tf.Tensor, sigma_levels: Sequence[float],
                       keep_axis: int | None = None, level_indices: Sequence[int] | None = None) -> tf.Tensor:
    """Denoising bound on −log p(x) (up to an x-independent constant) of a noise-conditional score model.

    For the variance-exploding diffusion x_σ = x + σ z, the likelihood-weighted score-matching bound
    (Song, Durkan, Murray & Ermon 2021, Thm. 1) is, apart from terms that do not depend on x::

        −log p(x) ≤ ½ ∫ E_z ‖s(x + σ z, σ) + z/σ‖² dσ² + C = ∫ E_z ‖σ s(x + σ z, σ) + z‖² d ln σ + C

    i.e. the NCSN training loss (λ(σ) = σ²) integrated over ln σ: on a geometric schedule every level weighs
    the same. The integral runs over the prior's levels (trapezoid rule in ln σ) and E_z over the draws.

    Args:
        score: ``(x [N, ...], level) -> [N, ...]``.
        x: ``[N, ...]`` points to score.
        noise: ``[D, N, ...]`` standard normal draws, reused at every level (pass the same draws to the
            points being compared: common random numbers make their difference far less noisy).
        sigma_levels: ``[L]`` the σ levels of the integral, descending.
        keep_axis: an axis of ``x`` (> 0) not to sum over: the bound split along it (the squared residual is a
            sum over dimensions, so the parts add up to the whole); for mel patches ``[N, n_mels, frames, 1]``,
            ``keep_axis=2`` gives each frame's share.
        level_indices: ``[L]`` the level index ``score`` takes for each σ of ``sigma_levels`` (default 0 … L − 1:
            the model's own levels, all of them); a subset of a model's levels, e.g. the trained ones of a refined
            network (:func:`ncsn.levels.trained_level_indices`).
    Returns:
        ``[N]`` float32, in nats (``[N, x.shape[keep_axis]]`` with ``keep_axis``).
    """
    weights = tf.constant(log_sigma_weights(sigma_levels))
    sigmas = tf.constant(np.asarray(sigma_levels, np.float32))
    indices = tf.constant(np.arange(len(sigma_levels)) if level_indices is None else level_indices, tf.int32)
    axes = [a for a in range(1, x.shape.rank) if a != keep_axis]      # static: the loop keeps the shape of `total`
    total = tf.zeros([tf.shape(x)[0]] + ([] if keep_axis is None else [x.shape[keep_axis]]), tf.float32)
    n_levels, n_draws = len(sigma_levels), tf.shape(noise)[0]
    for index in tf.range(n_levels * n_draws):          # AutoGraph: one tf.while_loop in a tf.function
        level, draw = index // n_draws, index % n_draws
        sigma, z = tf.gather(sigmas, level), tf.gather(noise, draw)
        residual = sigma * score(x + sigma * z, tf.gather(indices, level)) + z
        total += tf.gather(weights, level) * tf.reduce_sum(tf.square(residual), axis=axes)
    return total / tf.cast(n_draws, tf.float32)


class NCSNPrior:
    """A score network's prior. ``density_levels``: the level indices its denoising bound runs over (default: all);
    for a network refined with interpolated levels, the trained ones, so that the bound (which ranks chains and
    stitches patches) stays the trained network's, at the trained network's cost."""

    def __init__(self, model, name: str = "ncsn", density_levels: Sequence[int] | None = None):
        self.model = model
        self.name = name
        self.sigma_levels = np.asarray(model.sigma_levels.numpy(), np.float32)
        self.density_levels = np.arange(len(self.sigma_levels)) if density_levels is None else np.asarray(density_levels)
        self.image_shape = tuple(model.config.image_shape)
        self.denoise = True
        self.splits_density = True          # neg_log_density(..., keep_axis): the bound is a sum over dimensions

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        return self.model(x, level)

    def neg_log_density(self, x: tf.Tensor, noise: tf.Tensor, n_levels: int | None = None,
                        keep_axis: int | None = None) -> tf.Tensor:
        """The denoising bound :func:`score_matching_nll` over the ``density_levels`` among the first ``n_levels``
        levels (default: all), split along ``keep_axis`` when given."""
        levels = self.density_levels[self.density_levels < (n_levels or len(self.sigma_levels))]
        return score_matching_nll(self.score, x, noise, self.sigma_levels[levels], keep_axis, levels)


def _whole_only(prior, keep_axis: int | None) -> None:
    if keep_axis is not None:
        raise ValueError(f"{prior.name}: an exact flow density does not split along an axis (splits_density is False)")


def _flow_input(x: tf.Tensor, clip: bool) -> tf.Tensor:
    return tf.clip_by_value(x, 0.0, 1.0) if clip else x


def _flow_score(flow, x: tf.Tensor, clip: bool) -> tf.Tensor:
    """∇ log p at ``x`` (``clip``: at x projected onto [0, 1], the gradient there)."""
    point = _flow_input(x, clip)
    with tf.GradientTape() as tape:
        tape.watch(point)
        log_p = tf.reduce_sum(flow.log_prob(point))
    return tape.gradient(log_p, point)


class FlowPrior:
    def __init__(self, flow, name: str = "glow", clip_inputs: bool = True):
        self.flow = flow
        self.name = name
        self.clip_inputs = bool(clip_inputs)
        self.sigma_levels = None            # a clean flow has no schedule of its own
        self.image_shape = tuple(flow.config.image_shape)
        self.denoise = False
        self.splits_density = False         # an exact flow density is not a sum over frames

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        return _flow_score(self.flow, x, self.clip_inputs)

    def neg_log_density(self, x: tf.Tensor, noise: tf.Tensor, n_levels: int | None = None,
                        keep_axis: int | None = None) -> tf.Tensor:
        """Exact −log p(x) of the flow (at the point the score takes: x, or x projected onto [0, 1]); ``noise``,
        ``n_levels`` unused. It does not split along an axis (``keep_axis`` must be None)."""
        _whole_only(self, keep_axis)
        return -self.flow.log_prob(_flow_input(x, self.clip_inputs))


class NoisyFlowPrior:
    """Flows fine-tuned at each σ of the schedule; ``flows`` in *descending* σ order (level 0 = largest σ)."""

    def __init__(self, sigmas_and_flows: Sequence[tuple[float, object]], name: str = "noisy_glow",
                 clip_inputs: bool = True):
        ordered = sorted(sigmas_and_flows, key=lambda pair: -pair[0])
        self.sigma_levels = np.asarray([s for s, _ in ordered], np.float32)
        self.flows = [f for _, f in ordered]
        self.name = name
        self.clip_inputs = bool(clip_inputs)
        self.image_shape = tuple(self.flows[0].config.image_shape)
        self.denoise = False
        self.splits_density = False

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        branches = [lambda flow=flow: _flow_score(flow, x, self.clip_inputs) for flow in self.flows]
        return tf.switch_case(tf.cast(level, tf.int32), branches)

    def neg_log_density(self, x: tf.Tensor, noise: tf.Tensor, n_levels: int | None = None,
                        keep_axis: int | None = None) -> tf.Tensor:
        """−log p_σl(x) under the flow of σ_l, the last of the first ``n_levels`` (default: all); ``noise`` unused;
        whole patches only (``keep_axis`` must be None)."""
        _whole_only(self, keep_axis)
        return -self.flows[(n_levels or len(self.flows)) - 1].log_prob(_flow_input(x, self.clip_inputs))


class GaussianPrior:
    def __init__(self, mean: np.ndarray, variance: np.ndarray, sigma_levels: Sequence[float], name: str = "gaussian"):
        self.mean = tf.constant(mean, tf.float32)
        self.variance = tf.constant(variance, tf.float32)
        self.sigma_levels = np.asarray(sigma_levels, np.float32)
        self.image_shape = tuple(np.shape(mean))
        self.name = name
        self.denoise = False
        self.splits_density = True

    def score(self, x: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        sigma = tf.gather(tf.constant(self.sigma_levels), level)
        return -(x - self.mean) / (self.variance + sigma ** 2)

    def neg_log_density(self, x: tf.Tensor, noise: tf.Tensor, n_levels: int | None = None,
                        keep_axis: int | None = None) -> tf.Tensor:
        """Exact −log N(x; μ, v + σ_l²) summed over dimensions (except ``keep_axis``), σ_l the last of the first
        ``n_levels`` (default: all); ``noise`` unused."""
        variance = self.variance + float(self.sigma_levels[:n_levels][-1]) ** 2
        terms = 0.5 * (tf.square(x - self.mean) / variance + tf.math.log(2 * np.pi * variance))
        return tf.reduce_sum(terms, axis=[a for a in range(1, x.shape.rank) if a != keep_axis])


def load_prior(kind: str, run_dir: str | Path, conv_dtype: str = "float32", refine_levels: int = 1,
               flow_inputs: str = "clip"):
    """Load a trained prior of ``kind`` (one of :data:`PRIOR_KINDS`) from its run folder.

    ``conv_dtype`` (NCSN only; ``float32``, ``bfloat16`` or ``auto``, :mod:`ncsn.precision`): the dtype of the
    score network's convolutions. ``refine_levels`` (NCSN only): F − 1 interpolated σ levels between each pair
    of trained ones (:func:`ncsn.levels.refine_levels`). ``flow_inputs`` (flows only, :data:`FLOW_INPUTS`): score
    the chain projected onto [0, 1] (``clip``) or as it is (``raw``). A prior changed any of these ways says so
    in its name, which the separation records.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: checkpoint folder not found (train one with train_{'glow' if 'glow' in kind else 'ncsn'}.py "
                        f"or use the shipped ones under pretrained/)")
    if refine_levels != 1 and kind != "ncsn":
        raise UserError(f"--refine-levels is for NCSN priors (their levels are conditioning inputs), not {kind}")
    if flow_inputs not in FLOW_INPUTS:
        raise UserError(f"--flow-inputs must be one of {', '.join(FLOW_INPUTS)}, not {flow_inputs!r}")
    if kind == "ncsn":
        from ncsn.levels import refine_levels as refine, trained_level_indices
        from ncsn.precision import resolve_conv_dtype
        from ncsn.training import load_score_model
        dtype = resolve_conv_dtype(conv_dtype)
        suffix = ("" if dtype == tf.float32 else f"@conv_{dtype.name}") + ("" if refine_levels == 1 else f"@levels_x{refine_levels}")
        trained = load_score_model(run_dir)
        model = refine(trained, refine_levels).set_conv_dtype(dtype)
        return NCSNPrior(model, name=f"ncsn:{run_dir.name}{suffix}",
                         density_levels=trained_level_indices(trained.config.n_sigmas, refine_levels))
    if kind not in ("glow", "noisy_glow"):
        raise UserError(f"--prior must be one of {', '.join(PRIOR_KINDS)}, not {kind!r}")
    from flow_models.flow_builder import load_flow, load_noisy_flows
    clip = flow_inputs == "clip"
    suffix = "" if clip else "@raw_inputs"
    if kind == "glow":
        prior = FlowPrior(load_flow(run_dir), name=f"glow:{run_dir.name}{suffix}", clip_inputs=clip)
        flows = [prior.flow]
    else:
        prior = NoisyFlowPrior(load_noisy_flows(run_dir), name=f"noisy_glow:{run_dir.name}{suffix}", clip_inputs=clip)
        flows = prior.flows
    if not clip and any(flow.config.preprocess == "logit" for flow in flows):
        raise UserError(f"{run_dir}: a logit-preprocessed flow is undefined outside [0, 1]; use --flow-inputs clip")
    return prior
