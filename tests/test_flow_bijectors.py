"""Each flow bijector: invertible, log-det equal to log|det| of the autodiff Jacobian, TFP API consistent."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from flow_models import flow_tfk_layers
from flow_models.flow_tfk_layers import CouplingNet
from flow_models.flow_tfp_bijectors import (ActNorm, AffineCoupling, FactorOut, InvertibleConv1x1, Squeeze,
                                            UnitIntervalPreprocess, forward_and_log_det, initialize_actnorms,
                                            inverse_and_log_det)

tfb, tfd = tfp.bijectors, tfp.distributions
SHAPE = (4, 4, 2)   # [H, W, C] of the Jacobian checks: 32 x 32 Jacobians


def randomize(module: tf.Module, seed: int, scale: float = 0.3) -> None:
    """Give every trainable variable random values (zero-initialised couplings would be trivial)."""
    rng = np.random.default_rng(seed)
    for v in module.trainable_variables:
        v.assign(scale * rng.normal(size=v.shape).astype(np.float32))


def coupling(mask: str, parity: int, additive: bool = False, channels: int = SHAPE[2]) -> AffineCoupling:
    changed = channels if mask == "checkerboard" else channels - channels // 2
    net = CouplingNet(8, 2 * changed, seed=parity)
    net(tf.zeros([1, *SHAPE[:2], channels if mask == "checkerboard" else channels // 2]))
    bijector = AffineCoupling(net, channels, mask=mask, parity=parity, additive=additive)
    randomize(bijector, seed=11 + parity)
    return bijector


def actnorm() -> ActNorm:
    bijector = ActNorm(SHAPE[2])
    randomize(bijector, seed=3)
    return bijector


def conv1x1() -> InvertibleConv1x1:
    bijector = InvertibleConv1x1(SHAPE[2], seed=5)
    bijector.log_s.assign_add([0.3, -0.2])   # away from a rotation (|det| = 1)
    return bijector


def factor_out() -> FactorOut:
    inner = ActNorm(1)
    randomize(inner, seed=7)
    return FactorOut(inner, n_keep=1)


BIJECTORS = {
    "actnorm": actnorm,
    "conv1x1": conv1x1,
    "coupling_channel_affine": lambda: coupling("channel", 0),
    "coupling_channel_affine_parity1": lambda: coupling("channel", 1),
    "coupling_channel_additive": lambda: coupling("channel", 0, additive=True),
    "coupling_checkerboard_affine": lambda: coupling("checkerboard", 0),
    "coupling_checkerboard_affine_parity1": lambda: coupling("checkerboard", 1),
    "squeeze": Squeeze,
    "unsqueeze": lambda: tfb.Invert(Squeeze()),
    "factor_out": factor_out,
    "preprocess_logit": lambda: UnitIntervalPreprocess("logit", alpha=0.05),
    "preprocess_centre": lambda: UnitIntervalPreprocess("centre"),
}
INPUT_SHAPES = {"unsqueeze": (2, 2, 8)}   # data-side shape of each bijector's inverse; SHAPE otherwise


def data_batch(n: int = 3, shape=SHAPE, seed: int = 0) -> tf.Tensor:
    """Points in (0, 1) so that the logit preprocessing is defined too."""
    return tf.constant(np.random.default_rng(seed).uniform(0.05, 0.95, size=(n, *shape)).astype(np.float32))


def autodiff_log_det(fn, x: tf.Tensor) -> np.ndarray:
    """log|det d fn(x) / dx| per example of ``x [B, ...]`` from the full Jacobian (float64 slogdet)."""
    result = []
    for example in tf.unstack(x):
        example = example[None]
        with tf.GradientTape() as tape:
            tape.watch(example)
            y = tf.reshape(fn(example), [-1])
        jacobian = tf.reshape(tape.jacobian(y, example), [y.shape[0], -1]).numpy().astype(np.float64)
        sign, log_det = np.linalg.slogdet(jacobian)
        assert sign != 0
        result.append(log_det)
    return np.array(result)


@pytest.mark.parametrize("name", sorted(BIJECTORS))
def test_bijector_is_invertible(name):
    bijector = BIJECTORS[name]()
    x = data_batch(shape=INPUT_SHAPES.get(name, SHAPE))
    z, _ = inverse_and_log_det(bijector, x)
    x_back, _ = forward_and_log_det(bijector, z)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
    np.testing.assert_allclose(bijector.forward(bijector.inverse(x)).numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", sorted(BIJECTORS))
def test_bijector_log_det_matches_autodiff_jacobian(name):
    bijector = BIJECTORS[name]()
    x = data_batch(shape=INPUT_SHAPES.get(name, SHAPE))
    z, inverse_log_det = inverse_and_log_det(bijector, x)
    expected = autodiff_log_det(lambda e: inverse_and_log_det(bijector, e)[0], x)
    np.testing.assert_allclose(inverse_log_det.numpy(), expected, rtol=1e-4, atol=2e-4)
    # forward log-det at z is minus the inverse one at x; the TFP API gives the same numbers
    _, forward_log_det = forward_and_log_det(bijector, z)
    np.testing.assert_allclose(forward_log_det.numpy(), -expected, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(x, event_ndims=3).numpy(), expected,
                               rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(bijector.forward_log_det_jacobian(z, event_ndims=3).numpy(), -expected,
                               rtol=1e-4, atol=2e-4)


def test_squeeze_event_shapes():
    squeeze = Squeeze()
    assert squeeze.inverse_event_shape([96, 64, 1]) == [48, 32, 4]
    assert squeeze.forward_event_shape([48, 32, 4]) == [96, 64, 1]
    assert list(squeeze.inverse_event_shape_tensor([4, 6, 3]).numpy()) == [2, 3, 12]


def test_actnorm_data_dependent_init_normalises_the_first_batch():
    x = 3.0 + 2.0 * data_batch(n=16)
    bijector = tfb.Chain([UnitIntervalPreprocess("centre"), ActNorm(SHAPE[2])])
    z = initialize_actnorms(bijector, x)
    np.testing.assert_allclose(tf.reduce_mean(z, axis=[0, 1, 2]).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(tf.math.reduce_std(z, axis=[0, 1, 2]).numpy(), 1.0, atol=1e-4)
    # outside the init context the same call leaves the parameters alone
    loc = bijector.bijectors[1].loc.numpy().copy()
    inverse_and_log_det(bijector, x + 1.0)
    np.testing.assert_array_equal(bijector.bijectors[1].loc.numpy(), loc)


def test_log_prob_matches_change_of_variables_on_a_gaussian_toy():
    """centre + actnorm over N(0, I) is N(0.5 + loc, exp(log_scale)^2) per channel: compare with scipy."""
    norm = ActNorm(2)
    norm.loc.assign([0.2, -0.4])
    norm.log_scale.assign([-1.0, 0.5])
    flow = tfb.Chain([UnitIntervalPreprocess("centre"), norm])
    distribution = tfd.TransformedDistribution(tfd.Independent(tfd.Normal(tf.zeros(SHAPE), 1.0), 3), flow)
    x = data_batch()
    expected = (stats.norm(0.5 + np.array([0.2, -0.4]), np.exp([-1.0, 0.5])).logpdf(x.numpy())
                .reshape(len(x), -1).sum(axis=1))
    np.testing.assert_allclose(distribution.log_prob(x).numpy(), expected, rtol=1e-5)
    z, log_det = inverse_and_log_det(flow, x)
    np.testing.assert_allclose((distribution.distribution.log_prob(z) + log_det).numpy(), expected, rtol=1e-5)


def test_dequantisation_and_bits_per_dim_offsets():
    preprocess = UnitIntervalPreprocess("logit", num_levels=4)
    grid = tf.constant(np.array([0, 1, 2, 3], np.float32).reshape(1, 2, 2, 1) / 3.0)
    dequantised = preprocess.dequantize(tf.tile(grid, [500, 1, 1, 1])).numpy()
    bins = np.floor(dequantised * 4)
    np.testing.assert_array_equal(bins, np.broadcast_to(np.arange(4).reshape(1, 2, 2, 1), bins.shape))
    assert dequantised.std(axis=0).min() > 0.05          # uniform noise inside each bin
    # a uniform density on [0, 1]^D (log p = 0) codes 4 levels in exactly 2 bits per dimension
    assert float(preprocess.bits_per_dim(tf.zeros([1]), n_dims=4)[0]) == pytest.approx(2.0)
    assert float(preprocess.bits_per_dim(tf.zeros([1]), n_dims=4, discrete=False)[0]) == 0.0
    continuous = UnitIntervalPreprocess("logit", num_levels=0)
    assert float(continuous.bits_per_dim(tf.constant([-4 * math.log(2.0)]), n_dims=4)[0]) == pytest.approx(1.0)
    np.testing.assert_array_equal(continuous.dequantize(grid).numpy(), grid.numpy())


@pytest.mark.parametrize("block", ["actnorm", "conv1x1", "coupling_channel", "coupling_checkerboard",
                                   "squeeze", "preprocess"])
def test_keras_layer_twins_are_invertible_and_match_log_det(block):
    keras = flow_tfk_layers
    if block == "actnorm":
        layer = keras.ActNormLayer(SHAPE[2])
        randomize(layer, seed=3)
    elif block == "conv1x1":
        layer = keras.InvertibleConv1x1Layer(SHAPE[2], seed=5)
    elif block.startswith("coupling"):
        mask = block.split("_")[1]
        net = CouplingNet(8, 2 * (SHAPE[2] if mask == "checkerboard" else 1), seed=0)
        layer = keras.AffineCouplingLayer(net, SHAPE[2], mask=mask)
        layer(data_batch(), reverse=False)
        randomize(layer, seed=13)
    elif block == "squeeze":
        layer = keras.SqueezeLayer()
    else:
        layer = keras.PreprocessLayer("logit", alpha=0.05)
    x = data_batch()
    z, log_det = layer(x)
    x_back, back_log_det = layer(z, reverse=True)
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=1e-5)
    expected = autodiff_log_det(lambda e: layer(e)[0], x)
    np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(back_log_det.numpy(), -expected, rtol=1e-4, atol=2e-4)
