"""A trained NCSN on a denser noise schedule: new levels between the trained ones, no retraining.

The score network is conditioned on the level index only through the per-level CIN++ embeddings
(γ, α, β of every :class:`ncsn.layers.CondInstanceNormPlus`, ``[L, 3C]``), and with ``scale_by_sigma`` its
output is divided by σ_i. On a geometric schedule the index is linear in ln σ, so refining by a factor F puts
F − 1 levels, evenly spaced in ln σ, between each pair of trained ones, and gives each new level the
embeddings interpolated linearly in ln σ between its two neighbours. The trained levels keep their own
embeddings, so at every F-th level the refined network is the trained one, exactly.

NCSNv2 (Song & Ermon 2020, Technique 2, :func:`ncsn.sigmas.ncsnv2_n_sigmas`) asks for far more levels than
the 10 of NCSN for data of this size; this lets BASIS spend its steps on more levels with the same prior
(``run_basis_sep.py --refine-levels F``). Whether the interpolated levels are good scores is an empirical
question: their held-out DSM loss should lie between their neighbours' (``tests/test_ncsn_levels.py`` checks
the construction; ``results/levels/`` the loss and the separation).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ncsn.model import ScoreNetwork
from pipeline.errors import UserError


def refined_level_positions(n_levels: int, factor: int) -> np.ndarray:
    """Fractional trained-level index ``[(n_levels − 1)·factor + 1]`` of every refined level."""
    return np.arange((n_levels - 1) * factor + 1) / factor


def trained_level_indices(n_levels: int, factor: int) -> np.ndarray:
    """Indices ``[n_levels]`` of the trained levels in the schedule refined by ``factor``: every ``factor``-th."""
    return np.arange(n_levels) * factor


def refine_levels(model: ScoreNetwork, factor: int) -> ScoreNetwork:
    """The network of ``model`` on a schedule ``factor`` times denser in ln σ (see the module docstring).

    ``factor`` = 1 returns ``model`` itself. The new network shares no variables with ``model``.
    """
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise UserError(f"--refine-levels must be a whole number >= 1, not {factor!r}")
    if factor == 1:
        return model
    config = model.config
    sigmas = model.sigma_levels.numpy().astype(np.float64)
    ratios = sigmas[:-1] / sigmas[1:]
    if not np.allclose(ratios, ratios[0], rtol=1e-4):
        raise UserError(f"--refine-levels needs a geometric σ schedule; this prior's is {np.round(sigmas, 5).tolist()}")
    refined = ScoreNetwork(dataclasses.replace(config, n_sigmas=(config.n_sigmas - 1) * factor + 1))
    position = refined_level_positions(config.n_sigmas, factor)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, config.n_sigmas - 1)
    weight = (position - below)[:, None]
    old_vars, new_vars = model.trainable_variables, refined.trainable_variables
    assert [v.name for v in old_vars] == [v.name for v in new_vars], "the two networks must be built alike"
    for old, new in zip(old_vars, new_vars):
        value = old.numpy()
        if value.shape == tuple(new.shape):
            new.assign(value)
        else:                                      # a per-level embedding [L, 3C] -> [L', 3C]
            new.assign(((1.0 - weight) * value[below] + weight * value[above]).astype(np.float32))
    return refined
