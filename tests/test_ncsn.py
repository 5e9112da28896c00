"""Tests of the NCSN score network, its noise schedule and the denoising score matching loss."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.distance import pdist
from scipy.stats import norm

from ncsn.config import NCSNConfig
from ncsn.layers import CondInstanceNormPlus
from ncsn.losses import dsm_loss, random_dsm_loss
from ncsn.model import ScoreNetwork
from ncsn.sigmas import geometric_sigmas, max_pairwise_distance, ncsnv2_n_sigmas, ncsnv2_ratio
from pipeline.errors import UserError

TINY = dict(width=4, channel_multipliers=(1, 2), downsample=(False, True), dilations=(1, 2), n_res_blocks=1,
            n_sigmas=4)


def tiny_model(shape=(8, 8, 1), **overrides) -> ScoreNetwork:
    return ScoreNetwork(NCSNConfig(image_shape=shape, **{**TINY, **overrides}), seed=0)


# ------------------------------------------------------------------------------------------- sigmas

def test_geometric_sigmas_endpoints_and_constant_ratio():
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    assert sigmas.shape == (10,) and sigmas.dtype == np.float32
    np.testing.assert_allclose([sigmas[0], sigmas[-1]], [1.0, 0.01], rtol=1e-6)
    np.testing.assert_allclose(sigmas[:-1] / sigmas[1:], 100 ** (1 / 9), rtol=1e-5)


def test_max_pairwise_distance_matches_brute_force():
    data = np.random.default_rng(1).normal(size=(300, 4, 4, 1))
    assert max_pairwise_distance(data, chunk=64) == pytest.approx(pdist(data.reshape(300, -1)).max(), rel=1e-9)


def test_ncsnv2_ratio_solves_its_equation():
    for dim in (64, 784, 6144):
        gamma = ncsnv2_ratio(dim)
        centre = np.sqrt(2 * dim) * (gamma - 1)
        assert norm.cdf(centre + 3 * gamma) - norm.cdf(centre - 3 * gamma) == pytest.approx(0.5, abs=1e-6)
    assert ncsnv2_ratio(6144) < ncsnv2_ratio(64)          # more dimensions: finer steps, more levels
    assert ncsnv2_n_sigmas(50.0, 0.01, 6144) > ncsnv2_n_sigmas(50.0, 0.01, 64)


def test_config_rejects_inconsistent_stages_and_round_trips_through_json_lists():
    with pytest.raises(UserError, match="one entry per stage"):
        NCSNConfig(channel_multipliers=(1, 2), downsample=(False,), dilations=(1, 1))
    with pytest.raises(UserError, match="sigma_min < sigma_max"):
        NCSNConfig(sigma_max=0.1, sigma_min=0.2)
    config = NCSNConfig(image_shape=(96, 64, 1))
    import dataclasses
    import json
    assert NCSNConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(config)))) == config


# -------------------------------------------------------------------------------------------- model

@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (12, 10, 3)])
def test_score_has_the_input_shape_and_is_finite(shape):
    model = tiny_model(shape)
    x = tf.random.uniform((3, *shape), seed=1)
    score = model(x, tf.constant([0, 1, 3]))
    assert score.shape == (3, *shape)
    assert np.isfinite(score.numpy()).all()


def test_score_depends_on_the_noise_level_per_example():
    model = tiny_model()
    x = tf.random.uniform((2, 8, 8, 1), seed=2)
    levels = tf.constant([0, 3])
    together = model(x, levels).numpy()
    apart = np.concatenate([model(x[:1], 0).numpy(), model(x[1:], 3).numpy()])
    np.testing.assert_allclose(together, apart, atol=1e-5)   # each example sees only its own level
    assert not np.allclose(model(x, 0).numpy(), model(x, 3).numpy(), atol=1e-4)


def test_only_the_embedding_row_of_the_level_gets_gradient():
    model = tiny_model()
    x = tf.random.uniform((2, 8, 8, 1), seed=3)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(model(x, 2))
    embeddings = [v for v in model.trainable_variables if "embedding" in v.name]
    grads = tape.gradient(total, embeddings)
    for g in grads:
        g = tf.convert_to_tensor(g).numpy()
        assert np.abs(g[[0, 1, 3]]).max() == 0.0 and np.abs(g[2]).max() > 0.0


def test_scale_by_sigma_divides_the_output_by_sigma():
    model = tiny_model(scale_by_sigma=True)
    for v in model.trainable_variables:          # make every level's CIN++ parameters equal
        if "embedding" in v.name:
            v.assign(tf.repeat(v[:1], v.shape[0], axis=0))
    x = tf.random.uniform((2, 8, 8, 1), seed=4)
    sigmas = model.sigma_levels.numpy()
    np.testing.assert_allclose(model(x, 0).numpy() * sigmas[0], model(x, 3).numpy() * sigmas[3],
                               rtol=1e-4, atol=1e-6)


def test_cond_instance_norm_plus_formula():
    rng = np.random.default_rng(0)
    norm_layer = CondInstanceNormPlus(3, 2, rng)
    x = rng.normal(2.0, 3.0, size=(2, 5, 4, 3)).astype(np.float32)
    out = norm_layer(tf.constant(x), tf.constant([1, 0])).numpy()
    emb = norm_layer.embedding.numpy()
    for b, level in enumerate([1, 0]):
        gamma, alpha, beta = emb[level, :3], emb[level, 3:6], emb[level, 6:]
        mu, var = x[b].mean(axis=(0, 1)), x[b].var(axis=(0, 1))
        expected = gamma * ((x[b] - mu) / np.sqrt(var + 1e-5) + alpha * (mu - mu.mean()) / np.sqrt(mu.var() + 1e-5)) + beta
        np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-4)


def test_same_seed_same_weights():
    a, b = tiny_model(), tiny_model()
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_default_model_is_small_and_runs():
    model = ScoreNetwork(NCSNConfig(image_shape=(28, 28, 1)))
    assert 0.5e6 <= model.n_parameters() <= 2.5e6, model.n_parameters()
    score = model(tf.random.uniform((2, 28, 28, 1), seed=6), tf.constant([0, 9]))
    assert score.shape == (2, 28, 28, 1) and np.isfinite(score.numpy()).all()


# --------------------------------------------------------------------------------------------- loss

def gaussian_score(mean: float, data_std: float, sigma_levels: tf.Tensor):
    """Exact score of x̃ = x + σ z with x ~ N(mean, data_std² I): -(x̃ - mean) / (data_std² + σ²)."""
    def score(x, sigma_index):
        variance = data_std ** 2 + tf.square(tf.gather(sigma_levels, sigma_index))[:, None]
        return -(x - mean) / variance
    return score


def test_dsm_loss_is_lowest_for_the_true_score_and_matches_its_expected_value():
    """With x - mean = s u and x̃ - mean = s u + σ z, the exact score gives
    σ s(x̃) + z = (s² z - σ s u) / (s² + σ²), so E[loss | σ] = D/2 · s² / (s² + σ²)."""
    dim, n, mean, data_std = 4, 20000, 0.3, 0.5
    sigma_levels = tf.constant(geometric_sigmas(1.0, 0.01, 10))
    rng = np.random.default_rng(0)
    x = tf.constant(mean + data_std * rng.standard_normal((n, dim)), tf.float32)
    sigma_index = tf.constant(rng.integers(0, 10, n), tf.int32)
    noise = tf.constant(rng.standard_normal((n, dim)), tf.float32)
    true_score = gaussian_score(mean, data_std, sigma_levels)
    true_loss = dsm_loss(true_score, x, sigma_levels, sigma_index, noise).numpy()
    assert true_loss.shape == (n,)
    sigma = sigma_levels.numpy()[sigma_index.numpy()]
    expected = 0.5 * dim * data_std ** 2 / (data_std ** 2 + sigma ** 2)
    assert true_loss.mean() == pytest.approx(expected.mean(), rel=0.02)
    perturbed = {
        "scaled by 1.2": lambda xt, i: 1.2 * true_score(xt, i),
        "scaled by 0.8": lambda xt, i: 0.8 * true_score(xt, i),
        "wrong mean": gaussian_score(mean + 0.1, data_std, sigma_levels),
        "wrong variance": gaussian_score(mean, data_std * 1.2, sigma_levels),
    }
    for name, score in perturbed.items():
        assert dsm_loss(score, x, sigma_levels, sigma_index, noise).numpy().mean() > true_loss.mean(), name


def test_random_dsm_loss_is_deterministic_in_its_seed_and_per_example():
    model = tiny_model()
    x = tf.random.uniform((5, 8, 8, 1), seed=5)
    seed = tf.constant([3, 4])
    a = random_dsm_loss(model, x, model.sigma_levels, seed).numpy()
    b = random_dsm_loss(model, x, model.sigma_levels, seed).numpy()
    c = random_dsm_loss(model, x, model.sigma_levels, tf.constant([3, 5])).numpy()
    assert a.shape == (5,) and np.array_equal(a, b) and not np.allclose(a, c)


def test_dilated_convolutions_have_a_filter_gradient_equal_to_the_atrous_form():
    """NCSN's dilated 3x3 convs train on every x86 CPU (pipeline/__init__.py turns TensorFlow's oneDNN kernels on:
    without them an AVX2-only CPU has no filter gradient for dilation > 1)."""
    x = tf.random.stateless_normal([2, 12, 12, 3], [0, 1])
    w = tf.Variable(tf.random.stateless_normal([3, 3, 3, 4], [0, 2]))
    with tf.GradientTape(persistent=True) as tape:
        dilated = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME", dilations=2) ** 2)
        atrous = tf.reduce_sum(tf.nn.atrous_conv2d(x, w, 2, "SAME") ** 2)
    np.testing.assert_allclose(dilated.numpy(), atrous.numpy(), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(dilated, w).numpy(), tape.gradient(atrous, w).numpy(), rtol=1e-4, atol=1e-3)
