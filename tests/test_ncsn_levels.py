"""ncsn.levels: a trained NCSN on a denser σ schedule (interpolated CIN++ embeddings)."""
import numpy as np
import pytest
import tensorflow as tf

from ncsn.layers import CondInstanceNormPlus
from ncsn.levels import refine_levels, refined_level_positions, trained_level_indices
from pipeline.errors import UserError
from separation.priors import NCSNPrior
from test_ncsn import tiny_model


def randomised(model, seed=0):
    """``model`` with random per-level embeddings, so that every level is a different function."""
    rng = np.random.default_rng(seed)
    for module in model.submodules:
        if isinstance(module, CondInstanceNormPlus):
            module.embedding.assign(rng.normal(1.0, 0.5, module.embedding.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("scale_by_sigma", [False, True])
def test_trained_levels_are_kept_exactly_and_new_ones_sit_between_in_log_sigma(scale_by_sigma):
    model = randomised(tiny_model(scale_by_sigma=scale_by_sigma))
    refined = refine_levels(model, 3)
    old, new = model.sigma_levels.numpy(), refined.sigma_levels.numpy()
    assert len(new) == 3 * (len(old) - 1) + 1
    np.testing.assert_allclose(new[::3], old, rtol=1e-6)
    np.testing.assert_allclose(np.diff(np.log(new)), np.log(old[1] / old[0]) / 3, rtol=1e-5)
    x = tf.random.stateless_uniform((2, 8, 8, 1), [1, 2])
    for level in range(len(old)):
        np.testing.assert_allclose(refined(x, 3 * level).numpy(), model(x, level).numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(refined(x, 1).numpy(), model(x, 0).numpy(), atol=1e-3)      # a level of its own


def test_new_embeddings_are_linear_in_log_sigma_between_their_neighbours():
    model = randomised(tiny_model())
    refined = refine_levels(model, 3)
    old_norms = [m for m in model.submodules if isinstance(m, CondInstanceNormPlus)]
    new_norms = [m for m in refined.submodules if isinstance(m, CondInstanceNormPlus)]
    assert len(old_norms) == len(new_norms) > 0
    for old, new in zip(old_norms, new_norms):
        e_old, e_new = old.embedding.numpy(), new.embedding.numpy()
        np.testing.assert_allclose(e_new[4], 2 / 3 * e_old[1] + 1 / 3 * e_old[2], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(e_new[5], 1 / 3 * e_old[1] + 2 / 3 * e_old[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(refined_level_positions(3, 2), [0, 0.5, 1, 1.5, 2])


def test_the_refined_network_shares_no_variables_and_factor_one_is_the_model():
    model = randomised(tiny_model())
    assert refine_levels(model, 1) is model
    refined = refine_levels(model, 2)
    before = [v.numpy().copy() for v in model.trainable_variables]
    for v in refined.trainable_variables:
        v.assign(tf.zeros_like(v))
    for v, b in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_bad_factors_and_non_geometric_schedules_are_refused():
    model = tiny_model()
    for factor in (0, -2, 1.5):
        with pytest.raises(UserError, match="whole number"):
            refine_levels(model, factor)
    model.sigma_levels = tf.constant([1.0, 0.5, 0.4, 0.01])
    with pytest.raises(UserError, match="geometric"):
        refine_levels(model, 2)


def test_a_refined_prior_s_density_bound_runs_over_the_trained_levels_only():
    model = randomised(tiny_model(scale_by_sigma=True))
    trained = NCSNPrior(model)
    refined = NCSNPrior(refine_levels(model, 3), density_levels=trained_level_indices(model.config.n_sigmas, 3))
    np.testing.assert_array_equal(refined.density_levels, 3 * np.arange(model.config.n_sigmas))
    x = tf.random.stateless_uniform((2, 8, 8, 1), [3, 4])
    noise = tf.random.stateless_normal((2, 2, 8, 8, 1), [5, 6])
    np.testing.assert_allclose(refined.neg_log_density(x, noise).numpy(), trained.neg_log_density(x, noise).numpy(), rtol=1e-5)
    np.testing.assert_allclose(refined.neg_log_density(x, noise, keep_axis=2).numpy(),
                               trained.neg_log_density(x, noise, keep_axis=2).numpy(), rtol=1e-5, atol=1e-4)
    # a state annealed through the first 5 refined levels (trained levels 0 and 1 among them)
    np.testing.assert_allclose(refined.neg_log_density(x, noise, 5).numpy(), trained.neg_log_density(x, noise, 2).numpy(), rtol=1e-5)
    every_level = NCSNPrior(refine_levels(model, 3))
    assert not np.allclose(every_level.neg_log_density(x, noise).numpy(), trained.neg_log_density(x, noise).numpy(), rtol=1e-3)
