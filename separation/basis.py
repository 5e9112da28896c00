"""BASIS: Bayesian annealed signal source separation (Jayaram & Thickstun 2020, Algorithm 1).

Noise-annealed Langevin dynamics on the posterior p(x_1, ..., x_S | m) with one prior per source.
For levels i = 1 … L (σ_1 > … > σ_L) and T steps per level, every source moves at once::

    x_k ← x_k + η_i (∇ log p_σi(x_k) + (1/γ_i²) ∂g/∂x_k · (m − g(x))) + sqrt(2 η_i) z_k,
    η_i = δ σ_i² / σ_L²,   γ_i = γ_scale · σ_i,   z_k ~ N(0, I)

``g`` is the mixing model in physical units (:mod:`separation.mixing`). The whole L·T loop is one
``tf.while_loop`` in one ``tf.function`` (optionally XLA-compiled); noise is stateless from
``(seed, step)``, so a seed reproduces a separation exactly. An optional final step denoises each
source with Tweedie's formula (NCSN priors), and the result is clipped to the data range.

Several chains per mixture (``n_chains`` = K > 1): the K chains run as one batch of K·B, and each
mixture keeps the chain whose sources are most probable under their priors, i.e. the smallest
Σ_k −log p_k(x_k) (each prior's ``neg_log_density``; for NCSN the denoising bound, with the same noise
draws for all chains of a mixture). Every chain satisfies the mixture, so this ranks the chains by their
posterior density. Chains of one mixture fail in different places (a stroke or a note given to the wrong
source), so picking one beats averaging all of them, which blends a wrong assignment into the right one.
With ``average_top`` = M > 1 the output is instead the mean of the M most probable chains, an estimate of the
posterior mean (the least-squares estimate) over the chains the priors trust: each chain's sources are first put
in the order of the most probable chain's, among sources that share one prior (chains of two identical priors
may swap them), then averaged. Swapping and averaging keep Σ_k x_k, so the mean still explains a linear mixture.
With ``select_after_levels`` = l the pick comes early: the K chains anneal through the first l levels, each
chain's state is ranked there (denoised with Tweedie's formula at σ_l for NCSN priors, then the bound over
σ_1 … σ_l, the scales the chains have resolved so far), and only the kept chain anneals through the other
L − l levels, so K chains cost K·l/L + (L − l)/L of one chain's Langevin steps instead of K.

Started from other estimates (``separate(..., start=x0, start_level=l0)``): the chains begin at
clip(x0) + N(0, σ_l0²) instead of the initial draw at σ_1, and anneal through levels l0 … L − 1 only
(SDEdit-style). The estimates decide the coarse assignment (which notes go to which source) that a chain
otherwise settles at the large σ, and the priors refine it; it costs (L − l0) / L of the Langevin steps.

Long spectrograms are separated as overlapping patches, each on its own, so every overlap holds two
independent estimates of the same frames. With ``stitch = "select"`` (mel patches; :mod:`separation.audio`)
they are not blended evenly: :meth:`BasisSeparator.frame_neg_log_densities` splits each patch's
Σ_k −log p_k(x_k) by frame (the NCSN bound is a sum over dimensions), and :func:`pipeline.patches.stitch_patches`
weighs the patches of each overlap by exp(−bound there / ``stitch_temperature``). Overlapping patches are free
chains of their shared frames, and this picks between them, at the cost of the bound only.

Shapes: mixture ``[B, H, W, C]``; sources ``[S, B, H, W, C]``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf

from pipeline.errors import UserError


STITCH_MODES = ("crossfade", "select")


@dataclass(frozen=True)
class BasisConfig:
    """Annealing schedule and step sizes (σ in the priors' input units)."""
    sigma_levels: tuple[float, ...] = tuple(np.geomspace(1.0, 0.01, 10).round(8))
    n_steps_per_level: int = 100          # T
    step_lr: float = 2e-5                 # δ; η_i = δ σ_i² / σ_L² (reference code 3e-5, NCSN default 2e-5)
    gamma_scale: float = 1.0              # γ_i = gamma_scale · σ_i
    init: str = "uniform"                 # "uniform": U[0, 1]; "mixture": the mixture plus N(0, σ_1²)
    final_denoise: bool = True            # Tweedie step for priors that support it (NCSN)
    clip: tuple[float, float] = (0.0, 1.0)
    jit_compile: bool = False
    n_chains: int = 1                     # K chains per mixture; the most probable one is kept
    average_top: int = 1                  # M: keep the mean of the min(M, K) most probable chains, aligned (see above);
                                          # not with select_after_levels, whose early pick keeps one chain
    selection_draws: int = 8              # noise draws per level of the NCSN density bound used to rank them
    select_after_levels: int | None = None  # rank the chains after this many levels (None: the final sources)
    stitch: str = "crossfade"             # mel patches: "crossfade" overlaps, or "select" the more probable patch
    stitch_temperature: float = 50.0      # nats; "select" weighs overlapping patches by exp(−segment bound / this)
    score_rms_limit: float | None = None  # cap on σ_i · RMS(score) per source and item (None: no cap); see limit_score_rms
    box_pull: bool = False                # flows that score the chain's projection onto the box: add −(x − Π(x)) / σ_i²

    def __post_init__(self):
        object.__setattr__(self, "sigma_levels", tuple(float(s) for s in self.sigma_levels))
        object.__setattr__(self, "clip", tuple(self.clip))
        if len(self.sigma_levels) < 1 or any(a <= b for a, b in zip(self.sigma_levels, self.sigma_levels[1:])):
            raise UserError(f"sigma_levels must be strictly decreasing, got {self.sigma_levels}")
        if self.n_steps_per_level < 1 or self.step_lr <= 0 or self.gamma_scale <= 0:
            raise UserError("n_steps_per_level, step_lr and gamma_scale must be positive")
        if self.n_chains < 1 or self.selection_draws < 1:
            raise UserError(f"n_chains ({self.n_chains}) and selection_draws ({self.selection_draws}) must be at least 1")
        if self.average_top < 1:
            raise UserError(f"average_top must be at least 1, not {self.average_top}")
        if self.select_after_levels is not None and not 1 <= self.select_after_levels <= len(self.sigma_levels):
            raise UserError(f"select_after_levels must be between 1 and the number of levels ({len(self.sigma_levels)}), "
                            f"not {self.select_after_levels}")
        if self.stitch not in STITCH_MODES:
            raise UserError(f"stitch must be one of {', '.join(STITCH_MODES)}, not {self.stitch!r}")
        if self.score_rms_limit is not None and not self.score_rms_limit > 0:
            raise UserError(f"score_rms_limit must be positive (or None for no cap), not {self.score_rms_limit}")
        if not self.stitch_temperature > 0:
            raise UserError(f"stitch_temperature must be positive, not {self.stitch_temperature}")
        if self.init not in ("uniform", "mixture"):
            raise UserError(f"init must be 'uniform' or 'mixture', not {self.init!r}")


def limit_score_rms(scores: tf.Tensor, sigma: tf.Tensor, limit: float) -> tf.Tensor:
    """Scores ``[S, B, ...]`` scaled down, per source and item, so that σ · RMS(score) ≤ ``limit``.

    The score of a σ-smoothed density is s(x) = −E[z | x] / σ for x = x₀ + σ z, so σ s is a conditional mean of
    standard normal noise and E‖σ s‖² ≤ E‖z‖² = D: σ · RMS(s) is at most about 1, the scale annealed Langevin
    sizes its steps for (η_i ∝ σ_i²). A clean flow's score is 10²–10⁵ times that (``bench/score_scale.py``,
    results/flows/), and every step overshoots by the same factor. The cap keeps the direction and only
    shrinks scores above ``limit``; a score network on held-out data sits at 0.8–1.0 and is barely touched by 1.
    """
    axes = list(range(2, scores.shape.rank))
    rms = tf.sqrt(tf.reduce_mean(tf.square(scores), axis=axes, keepdims=True))
    return scores * tf.minimum(1.0, limit / tf.maximum(sigma * rms, 1e-30))


class BasisSeparator(tf.Module):
    """Separates batches of mixtures with one prior per source (objects with ``score(x, level)``)."""

    def __init__(self, priors: Sequence, mixing, config: BasisConfig, name: str | None = "basis"):
        super().__init__(name=name)
        self.priors = list(priors)
        self.mixing = mixing
        self.config = config
        for prior in self.priors:
            own = getattr(prior, "sigma_levels", None)
            if own is not None and (len(own) != len(config.sigma_levels) or not np.allclose(own, config.sigma_levels, rtol=1e-4)):
                raise UserError(f"prior {prior.name}: trained for σ = {np.round(own, 4).tolist()}, but the separation "
                                f"schedule is {np.round(config.sigma_levels, 4).tolist()}; use the prior's schedule")
        shapes = {tuple(p.image_shape) for p in self.priors}
        if len(shapes) != 1:
            raise UserError(f"the priors model different shapes {sorted(shapes)}; they must match")
        self.image_shape = shapes.pop()
        # The likelihood term is a gradient step on ||m - g(x)||² / (2γ²) with step η; it contracts the residual
        # by (1 - η/γ² Σ_k (∂g/∂x_k)²) per step, and η_i/γ_i² = δ / (σ_L² γ_scale²) at every level.
        gain = config.step_lr / (config.sigma_levels[-1] * config.gamma_scale) ** 2 * mixing.max_jacobian_norm2(len(self.priors))
        if gain >= 2.0:
            raise UserError(f"step_lr {config.step_lr:g} with gamma_scale {config.gamma_scale:g} and σ_L "
                            f"{config.sigma_levels[-1]:g} makes the mixture-consistency step unstable (gain {gain:.2f} "
                            f">= 2); lower --step-lr or raise --gamma-scale")
        if config.stitch == "select":
            lacking = [p.name for p in self.priors if not getattr(p, "splits_density", False)]
            if lacking:
                raise UserError(f"stitch 'select' needs priors whose density bound splits by frame (NCSN); "
                                f"{', '.join(lacking)} cannot: use stitch 'crossfade' (--stitch crossfade)")
        self.sigma_levels = tf.constant(config.sigma_levels, tf.float32)
        self.n_levels = len(config.sigma_levels)
        # [S]: 1 for the sources whose prior scores the chain's projection onto the box (box_pull acts on those)
        self._scores_projection = tf.constant([float(getattr(p, "clip_inputs", False)) for p in self.priors])
        self._compiled = tf.function(self._run, jit_compile=config.jit_compile)
        self._compiled_ranked = tf.function(self._ranked_chains, jit_compile=config.jit_compile)
        self._compiled_frames = tf.function(self._frame_neg_log_densities, jit_compile=config.jit_compile)

    def step_size(self, level: tf.Tensor) -> tf.Tensor:
        """η_i = δ σ_i² / σ_L²."""
        return self.config.step_lr * tf.square(tf.gather(self.sigma_levels, level) / self.sigma_levels[-1])

    def scores(self, sources: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        """Prior scores ``[S, B, ...]``: each source under its own prior.

        When every source has the same prior (images), all sources go through it as one batch of S·B:
        one network call (one backward pass for a flow) per step instead of S.
        """
        if all(prior is self.priors[0] for prior in self.priors):
            flat = tf.reshape(sources, [-1, *self.image_shape])
            return tf.reshape(self.priors[0].score(flat, level), tf.shape(sources))
        return tf.stack([prior.score(sources[k], level) for k, prior in enumerate(self.priors)])

    def box_pull(self, sources: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """−(x − Π(x)) / σ² ``[S, B, ...]`` for the sources whose prior scores x's projection Π onto the clip box
        (flows with ``clip_inputs``), zero for the others.

        Such a prior's density lives on the box; smoothed by N(0, σ²), its log gains −dist(x, box)² / (2σ²) outside,
        whose gradient this is. Without it nothing pulls a chain back into the box: the mixture fixes only the
        sum of the sources, and their difference diffuses out of the box, where the projection sees 0s and 1s.
        """
        low, high = self.config.clip
        outside = sources - tf.clip_by_value(sources, low, high)
        return -tf.reshape(self._scores_projection, [-1] + [1] * (sources.shape.rank - 1)) * outside / tf.square(sigma)

    def update_fn(self, sources: tf.Tensor, mixture: tf.Tensor, level: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """One BASIS step of all sources ``[S, B, ...]`` at level ``level``."""
        eta = self.step_size(level)
        gamma = self.config.gamma_scale * tf.gather(self.sigma_levels, level)
        residual = mixture - self.mixing(sources)
        likelihood = self.mixing.jacobian_weights(sources) * residual[None] / tf.square(gamma)
        noise = tf.random.stateless_normal(tf.shape(sources), seed)
        scores = self.scores(sources, level)
        sigma = tf.gather(self.sigma_levels, level)
        if self.config.score_rms_limit is not None:
            scores = limit_score_rms(scores, sigma, self.config.score_rms_limit)
        if self.config.box_pull:
            scores = scores + self.box_pull(sources, sigma)
        return sources + eta * (scores + likelihood) + tf.sqrt(2.0 * eta) * noise

    def denoise_fn(self, sources: tf.Tensor, level: int | None = None) -> tf.Tensor:
        """Tweedie's formula x + σ² ∇ log p_σ(x) at ``level`` (default: the last) for priors that support it."""
        level = self.n_levels - 1 if level is None else level
        sigma2 = tf.square(self.sigma_levels[level])
        out = [sources[k] + sigma2 * prior.score(sources[k], tf.constant(level)) if prior.denoise else sources[k]
               for k, prior in enumerate(self.priors)]
        return tf.stack(out)

    def neg_log_densities(self, sources: tf.Tensor, noise: tf.Tensor, n_levels: int | None = None,
                          keep_axis: int | None = None) -> tf.Tensor:
        """Σ_k −log p_k(x_k) ``[N]`` of sources ``[S, N, ...]``, with noise draws ``[D, N, ...]`` for every source;
        ``n_levels``: of a state annealed through that many levels (see the priors' ``neg_log_density``);
        ``keep_axis``: an axis of the ``[N, ...]`` patches to split the bound along (``[N, size]``)."""
        if all(prior is self.priors[0] for prior in self.priors):
            n_sources = len(self.priors)
            flat = tf.reshape(sources, [-1, *self.image_shape])
            per_source = self.priors[0].neg_log_density(flat, tf.tile(noise, [1, n_sources, 1, 1, 1]), n_levels, keep_axis)
            return tf.reduce_sum(tf.reshape(per_source, [n_sources, -1, *per_source.shape[1:]]), axis=0)
        return tf.add_n([prior.neg_log_density(sources[k], noise, n_levels, keep_axis) for k, prior in enumerate(self.priors)])

    @staticmethod
    def run_seed(seed: int) -> tf.Tensor:
        """The int32 ``[2]`` seed tensor of ``separate(..., seed)``; every random stream of a run folds into it."""
        return tf.constant([seed, 0], tf.int32)

    def chain_neg_log_densities(self, sources: tf.Tensor, n_chains: int, seed: tf.Tensor,
                                n_levels: int | None = None) -> tf.Tensor:
        """Σ_k −log p_k(x_k) ``[K, B]`` of K chains ``sources [S, K·B, ...]`` (chain c of mixture b at c·B + b),
        with the noise draws a run of seed tensor ``seed`` (:meth:`run_seed`) uses to rank them; ``n_levels``:
        of states annealed through that many levels only (:meth:`neg_log_densities`)."""
        batch = tf.shape(sources)[1] // n_chains
        noise = self.selection_noise(batch, tf.random.experimental.stateless_fold_in(seed, -2))
        nll = self.neg_log_densities(sources, tf.tile(noise, [1, n_chains, 1, 1, 1]), n_levels)
        return tf.reshape(nll, [n_chains, batch])

    def selection_noise(self, batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """``selection_draws`` standard normal draws ``[D, batch, ...]`` for the density bound, as antithetic
        pairs z, −z (the part of the bound linear in z cancels)."""
        half = (self.config.selection_draws + 1) // 2
        noise = tf.random.stateless_normal(tf.concat([[half, batch], self.image_shape], axis=0), seed)
        return tf.concat([noise, -noise], axis=0)[:self.config.selection_draws]

    def frame_neg_log_densities(self, sources, seed: int) -> tf.Tensor:
        """Σ_k −log p_k(x_k) split by frame (axis 2 of the patches: the frames of a mel patch), ``[B, W]`` nats for
        sources ``[S, B, H, W, C]``: what ``stitch = "select"`` weighs overlapping patches by. ``seed``: the
        ``separate`` seed of these sources; its draws of the bound are independent of the separation's noise."""
        return self._compiled_frames(tf.convert_to_tensor(sources, tf.float32), self.run_seed(seed))

    def _frame_neg_log_densities(self, sources: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        noise = self.selection_noise(tf.shape(sources)[1], tf.random.experimental.stateless_fold_in(seed, -3))
        return self.neg_log_densities(sources, noise, keep_axis=2)

    def select_chains(self, sources: tf.Tensor, seed: tf.Tensor, ranked: tf.Tensor | None = None,
                      n_levels: int | None = None) -> tf.Tensor:
        """Keep, per mixture, the most probable of the K chains in ``sources [S, K·B, ...]`` (or, with
        ``average_top`` = M > 1 and the final sources, the aligned mean of the M most probable); returns ``[S, B, ...]``.

        ``ranked``: the states whose density decides (default ``sources``), e.g. their Tweedie-denoised
        version; ``n_levels``: how many levels they have been annealed through (default: all).
        """
        ranked = sources if ranked is None else ranked
        n_chains = self.config.n_chains
        nll = self.chain_neg_log_densities(ranked, n_chains, seed, n_levels)
        chains = tf.reshape(sources, tf.concat([[tf.shape(sources)[0], n_chains, -1], tf.shape(sources)[2:]], axis=0))
        top = 1 if n_levels is not None else min(self.config.average_top, n_chains)
        return average_top_chains(chains, nll, top, self.source_permutations())

    def source_permutations(self) -> list[tuple[int, ...]]:
        """The orders of the S sources that map every source to one with the same prior object (identity first)."""
        n = len(self.priors)
        return [order for order in itertools.permutations(range(n))
                if all(self.priors[order[k]] is self.priors[k] for k in range(n))]

    def ranked_chains(self, mixture, seed: int, n_chains: int, rank_after: Sequence[int] = ()) -> tuple[tf.Tensor, tf.Tensor]:
        """K chains of every mixture through all levels, with the rankings every pick would use; for analysis.

        Returns the final sources ``[S, K·B, ...]`` of every chain (denoised and clipped as :meth:`separate`'s;
        chain c of mixture b at c·B + b) and ``nll [R + 1, K, B]``: for each l in ``rank_after`` (R of them) the
        Σ_k −log p_k of the chains' states after l levels, as ``select_after_levels = l`` ranks them, and last
        those of the final sources, as the pick at the end ranks them. The steps up to level l are the ones a
        ``select_after_levels = l`` run of this seed takes; after its pick, the kept chain goes on with other
        noise, so its final sources here are a draw of what that run gives, not the same one.
        """
        mixture = tf.tile(tf.convert_to_tensor(mixture, tf.float32), [n_chains, 1, 1, 1])
        return self._compiled_ranked(mixture, self.run_seed(seed), n_chains, tuple(sorted(rank_after)))

    def _ranked_chains(self, mixture: tf.Tensor, seed: tf.Tensor, n_chains: int, rank_after: tuple[int, ...]):
        steps = self.config.n_steps_per_level
        sources = self.initial_sources(mixture, tf.random.experimental.stateless_fold_in(seed, -1))
        nll, done = [], 0
        for levels in rank_after:
            sources = self._anneal(sources, mixture, seed, done * steps, levels * steps)
            nll.append(self.chain_neg_log_densities(self.denoise_fn(sources, levels - 1), n_chains, seed, levels))
            done = levels
        sources = self._anneal(sources, mixture, seed, done * steps, self.n_levels * steps)
        if self.config.final_denoise:
            sources = self.denoise_fn(sources)
        sources = tf.clip_by_value(sources, *self.config.clip)
        nll.append(self.chain_neg_log_densities(sources, n_chains, seed))
        return sources, tf.stack(nll)

    def initial_sources(self, mixture: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        shape = tf.concat([[len(self.priors)], tf.shape(mixture)], axis=0)
        if self.config.init == "uniform":
            return tf.random.stateless_uniform(shape, seed)
        return mixture[None] + self.sigma_levels[0] * tf.random.stateless_normal(shape, seed)

    def _anneal(self, sources: tf.Tensor, mixture: tf.Tensor, seed: tf.Tensor, first_step: int, end_step: int) -> tf.Tensor:
        """BASIS steps ``first_step`` … ``end_step`` − 1 (of L·T) of ``sources [S, N, ...]``, mixtures ``[N, ...]``."""
        for step in tf.range(first_step, end_step):        # AutoGraph: one tf.while_loop
            level = step // self.config.n_steps_per_level
            sources = self.update_fn(sources, mixture, level, tf.random.experimental.stateless_fold_in(seed, step))
        return sources

    def started_sources(self, start: tf.Tensor, start_level: int, seed: tf.Tensor) -> tf.Tensor:
        """clip(start) + σ_l0 · z: chains that join the schedule at level ``start_level`` from estimates ``[S, N, ...]``."""
        noise = tf.random.stateless_normal(tf.shape(start), seed)
        return tf.clip_by_value(start, *self.config.clip) + self.sigma_levels[start_level] * noise

    def _run(self, mixture: tf.Tensor, seed: tf.Tensor, start: tf.Tensor | None = None, start_level: int = 0) -> tf.Tensor:
        n_chains, steps = self.config.n_chains, self.config.n_steps_per_level
        chains_mixture = tf.tile(mixture, [n_chains, 1, 1, 1]) if n_chains > 1 else mixture
        init_seed = tf.random.experimental.stateless_fold_in(seed, -1)
        if start is None:
            sources = self.initial_sources(chains_mixture, init_seed)
        else:
            sources = self.started_sources(tf.tile(start, [1, n_chains, 1, 1, 1]), start_level, init_seed)
        first = start_level * steps
        early = self.config.select_after_levels if n_chains > 1 else None
        if early is None:
            sources = self._anneal(sources, chains_mixture, seed, first, self.n_levels * steps)
        else:         # K chains through the first levels, then the most probable one alone through the rest
            sources = self._anneal(sources, chains_mixture, seed, first, early * steps)
            ranked = self.denoise_fn(sources, early - 1)
            sources = self.select_chains(sources, seed, ranked, n_levels=early)
            sources = self._anneal(sources, mixture, seed, early * steps, self.n_levels * steps)
        if self.config.final_denoise:
            sources = self.denoise_fn(sources)
        low, high = self.config.clip
        sources = tf.clip_by_value(sources, low, high)
        if n_chains > 1 and early is None:
            sources = self.select_chains(sources, seed)
        return sources

    def separate(self, mixture, seed: int = 0, start=None, start_level: int = 0) -> tf.Tensor:
        """Sources ``[S, B, H, W, C]`` of the mixtures ``[B, H, W, C]``; with ``start`` (estimates ``[S, B, H, W, C]``,
        e.g. NMF's) the chains begin there at level ``start_level`` (0-based: the first ``start_level`` levels are
        skipped) instead of from the initial draw at σ_1."""
        mixture = tf.convert_to_tensor(mixture, tf.float32)
        if tuple(mixture.shape[1:]) != self.image_shape:
            raise UserError(f"mixture patches of shape {tuple(mixture.shape[1:])} do not match the priors' {self.image_shape}")
        if start is None:
            if start_level:
                raise UserError(f"start level {start_level} needs start estimates to begin from (--start-from)")
            return self._compiled(mixture, self.run_seed(seed))
        self.check_start_level(start_level)
        start = tf.convert_to_tensor(start, tf.float32)
        expected = (len(self.priors), *mixture.shape)
        if tuple(start.shape) != expected:
            raise UserError(f"start estimates of shape {tuple(start.shape)} do not match the sources' {expected}")
        return self._compiled(mixture, self.run_seed(seed), start, int(start_level))

    def check_start_level(self, start_level: int) -> None:
        """A :class:`UserError` unless chains can join this schedule at ``start_level`` (0-based)."""
        if not 0 <= start_level < self.n_levels:
            raise UserError(f"start level {start_level} is outside the schedule's {self.n_levels} levels (0 … {self.n_levels - 1})")
        early = self.config.select_after_levels
        if self.config.n_chains > 1 and early is not None and early <= start_level:
            raise UserError(f"chains started at level {start_level} cannot be ranked after level {early}: "
                            f"--select-after-levels must be above --start-level")


def average_top_chains(chains, nll, top: int, permutations: Sequence[tuple[int, ...]] | None = None) -> tf.Tensor:
    """Per mixture, the mean of the ``top`` most probable chains, each aligned to the most probable: ``[S, B, ...]``.

    ``chains [S, K, B, ...]`` (source, chain, mixture), ``nll [K, B]`` nats (smaller: more probable);
    ``permutations``: the source orders a chain may be put in (default: only the given one); each chain takes the
    one closest in squared distance to the most probable chain. ``top`` = 1 is the plain pick.
    """
    chains, nll = tf.convert_to_tensor(chains, tf.float32), tf.convert_to_tensor(nll, tf.float32)
    order = tf.argsort(nll, axis=0, stable=True)[:top]                                      # [M, B]
    batch = tf.shape(nll)[1]
    index = tf.stack([order, tf.broadcast_to(tf.range(batch), tf.shape(order))], axis=-1)     # [M, B, 2]
    kept = tf.gather_nd(tf.transpose(chains, [1, 2, 0, *range(3, chains.shape.rank)]), index)  # [M, B, S, ...]
    if top == 1:
        return tf.transpose(kept[0], [1, 0, *range(2, chains.shape.rank - 1)])
    orders = tf.constant(list(permutations or [tuple(range(chains.shape[0]))]), tf.int32)     # [P, S]
    reordered = tf.gather(kept, orders, axis=2)                                               # [M, B, P, S, ...]
    distance = tf.reduce_sum(tf.square(reordered - kept[:1, :, None]), axis=list(range(3, chains.shape.rank + 1)))
    closest = tf.argmin(distance, axis=2, output_type=tf.int32)                               # [M, B]
    aligned = tf.gather(reordered, closest, axis=2, batch_dims=2)                             # [M, B, S, ...]
    return tf.transpose(tf.reduce_mean(aligned, axis=0), [1, 0, *range(2, chains.shape.rank - 1)])


def check_finite(estimates: np.ndarray, labels: Sequence[str], separator: BasisSeparator) -> None:
    """Stop with a :class:`UserError` naming the items and the priors when BASIS diverged: ``estimates``
    ``[S, n, ...]``, ``labels[i]`` what item i is (a mixture file, an image pair). Callers check before they write,
    so nothing half-diverged is saved and a resumable run picks up after the fix."""
    broken = ~np.all(np.isfinite(np.reshape(estimates, (estimates.shape[0], estimates.shape[1], -1))), axis=(0, 2))
    if broken.any():
        bad = list(dict.fromkeys(labels[i] for i in np.flatnonzero(broken)))      # unique, in order
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more of {len(set(labels))}" if len(bad) > 3 else "")
        priors = ", ".join(getattr(prior, "name", "?") for prior in separator.priors)
        raise UserError(f"{names}: BASIS diverged (NaN or infinite sources) with the priors {priors}; lower --step-lr "
                        f"(now {separator.config.step_lr:g}), or score flows on the unit box (--flow-inputs clip)")
