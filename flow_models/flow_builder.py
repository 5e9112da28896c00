"""A flow prior as a ``tfd.TransformedDistribution`` over a standard-Normal or learned diagonal-Gaussian base,
and the loaders of trained priors for BASIS.

BASIS (Jayaram & Thickstun 2020) needs ``log p(x)`` and ``grad_x log p(x)`` for ``x [B, H, W, C]`` in the
model's input units ([0, 1]-scaled mel or image pixels)::

    flow = load_flow("runs/glow_piano")              # latest checkpoint, EMA weights if trained with EMA
    with tf.GradientTape() as tape:
        tape.watch(x)
        log_p = flow.log_prob(x)                     # [B], nats
    score = tape.gradient(log_p, x)                  # [B, H, W, C]

    for sigma, noisy in load_noisy_flows("runs/noisy_glow_piano"):   # ascending sigma, one Flow per level
        ...

``Flow.log_prob`` walks the bijectors once (:func:`~flow_models.flow_tfp_bijectors.inverse_and_log_det`);
``Flow.distribution.log_prob`` is the same number through TFP's generic machinery (the tests check both).
Mind TFP's bijector cache in eager mode: calling ``flow.distribution.log_prob`` twice on the *same tensor
object* after the weights changed returns the cached inverse; ``Flow.log_prob`` has no cache.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import tensorflow as tf
import tensorflow_probability as tfp

from flow_models.config import FlowConfig
from flow_models.flow_glow import build_glow
from flow_models.flow_realnvp import build_realnvp
from flow_models.flow_tfp_bijectors import (UnitIntervalPreprocess, forward_and_log_det, initialize_actnorms,
                                            inverse_and_log_det)
from pipeline.errors import UserError

tfd = tfp.distributions

NOISY_RUN_PREFIX = "sigma_"


def build_bijector(cfg: FlowConfig, blocks=None):
    """The flow bijector (data <- latent) of ``cfg``; ``blocks`` as in :func:`flow_models.flow_glow.build_glow`."""
    builder = build_glow if cfg.architecture == "glow" else build_realnvp
    return builder(cfg) if blocks is None else builder(cfg, blocks)


class Flow(tf.Module):
    """A trained-or-trainable flow prior on ``[H, W, C]`` images in [0, 1] (see the module docstring).

    Attributes:
        config: the :class:`FlowConfig`.
        bijector: ``tfb.Chain`` whose forward maps latents to data.
        base_loc, base_log_scale: ``[H, W, C]`` base parameters (variables when ``config.base == "learned"``).
        distribution: ``tfd.TransformedDistribution(Independent(Normal(base_loc, exp(base_log_scale))), bijector)``.
    """

    def __init__(self, cfg: FlowConfig):
        super().__init__(name=cfg.architecture)
        self.config = cfg
        self.bijector = build_bijector(cfg)
        shape = cfg.image_shape
        if cfg.base == "learned":
            self.base_loc = tf.Variable(tf.zeros(shape), name="base_loc")
            self.base_log_scale = tf.Variable(tf.zeros(shape), name="base_log_scale")
            scale = tfp.util.DeferredTensor(self.base_log_scale, tf.exp)
        else:
            self.base_loc = tf.zeros(shape)
            self.base_log_scale = tf.zeros(shape)
            scale = tf.ones(shape)
        self.base = tfd.Independent(tfd.Normal(self.base_loc, scale), reinterpreted_batch_ndims=3)
        self.distribution = tfd.TransformedDistribution(self.base, self.bijector)
        self.log_prob(tf.fill([1, *shape], 0.5))   # builds the Keras coupling nets: all variables exist now

    @property
    def preprocess(self) -> UnitIntervalPreprocess:
        """The first block: [0, 1] -> R, with the data's quantisation (:meth:`UnitIntervalPreprocess.dequantize`)."""
        return self.bijector.bijectors[0]

    def base_log_prob(self, z: tf.Tensor) -> tf.Tensor:
        """``log N(z; base_loc, exp(base_log_scale)^2)`` summed over ``[H, W, C]``: ``[B]``."""
        standard = (z - self.base_loc) * tf.exp(-self.base_log_scale)
        per_dim = -0.5 * tf.square(standard) - 0.5 * math.log(2.0 * math.pi) - self.base_log_scale
        return tf.reduce_sum(per_dim, axis=[1, 2, 3])

    def log_prob(self, x: tf.Tensor) -> tf.Tensor:
        """``log p(x)`` (nats) of ``x [B, H, W, C]`` in model input units: ``[B]``; differentiable in x."""
        z, log_det = inverse_and_log_det(self.bijector, x)
        return self.base_log_prob(z) + log_det

    def encode(self, x: tf.Tensor) -> tf.Tensor:
        """Latent ``z [B, H, W, C]`` of data ``x``."""
        return inverse_and_log_det(self.bijector, x)[0]

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        """Data ``x`` of latent ``z``."""
        return forward_and_log_det(self.bijector, z)[0]

    def sample(self, n: int, temperature: float = 1.0, seed=None) -> tf.Tensor:
        """``[n, H, W, C]`` samples with the base std scaled by ``temperature`` (Glow's reduced-temperature
        sampling: < 1 trades diversity for cleaner samples)."""
        eps = tf.random.normal([n, *self.config.image_shape], seed=seed)
        return self.decode(self.base_loc + temperature * tf.exp(self.base_log_scale) * eps)

    def bits_per_dim(self, x: tf.Tensor) -> tf.Tensor:
        """Bits/dim ``[B]`` of already dequantised (and, for noisy flows, noisy) ``x``.

        Quantised data (``num_levels`` > 0) on clean flows get the discrete-likelihood offset
        ``log2(num_levels)``; continuous data and noisy flows report ``-log2 p(x) / D``.
        """
        return self.preprocess.bits_per_dim(self.log_prob(x), self.config.n_dims,
                                            discrete=self.config.noise_sigma == 0)

    def training_input(self, x: tf.Tensor) -> tf.Tensor:
        """What the flow is fitted to: ``x`` dequantised (quantised data) plus N(0, noise_sigma^2) (noisy flows)."""
        x = self.preprocess.dequantize(x)
        if self.config.noise_sigma > 0:
            x = x + self.config.noise_sigma * tf.random.normal(tf.shape(x))
        return x

    def loss(self, x: tf.Tensor) -> tf.Tensor:
        """Per-example training loss ``[B]``: bits/dim of :meth:`training_input` of the batch ``x``."""
        return self.bits_per_dim(self.training_input(x))

    def initialize(self, x: tf.Tensor) -> None:
        """Data-dependent ActNorm init from a batch ``x [B, H, W, C]`` (eager; before training)."""
        initialize_actnorms(self.bijector, self.training_input(tf.convert_to_tensor(x, tf.float32)))


def build_flow(cfg: FlowConfig, init_batch=None) -> Flow:
    """A new :class:`Flow`; with ``init_batch`` its actnorms are initialised from that data batch."""
    flow = Flow(cfg)
    if init_batch is not None:
        flow.initialize(init_batch)
    return flow


def flow_config_of_run(run_dir: str | os.PathLike) -> FlowConfig:
    """The :class:`FlowConfig` saved in ``run_dir/config.json``."""
    from train_utils import read_config
    model = read_config(run_dir).get("model", {})
    if "flow" not in model:
        raise UserError(f"{Path(run_dir) / 'config.json'}: not a flow run (no model.flow section)")
    return FlowConfig.from_dict(model["flow"])


def load_flow(run_dir: str | os.PathLike, use_ema: bool = True) -> Flow:
    """The flow trained in ``run_dir`` (latest checkpoint; EMA weights when the run kept them)."""
    from train_utils import load_model
    cfg = flow_config_of_run(run_dir)
    return load_model(run_dir, lambda: Flow(cfg), use_ema=use_ema)


def noisy_run_dir(root: str | os.PathLike, sigma: float) -> Path:
    """Run folder of the noisy flow at ``sigma`` under ``root`` (``root/sigma_0.0100``)."""
    return Path(root) / f"{NOISY_RUN_PREFIX}{sigma:.4f}"


def load_noisy_flows(root: str | os.PathLike, use_ema: bool = True) -> list[tuple[float, Flow]]:
    """Every noisy flow under ``root`` (written by ``train_noisy_glow.py``) as ``(sigma, Flow)``, ascending
    sigma; sigma is read from each run's config.json (``model.flow.noise_sigma``, model input units)."""
    runs = sorted(Path(root).glob(f"{NOISY_RUN_PREFIX}*/config.json"))
    if not runs:
        raise UserError(f"{root}: no {NOISY_RUN_PREFIX}*/config.json runs; train them with train_noisy_glow.py")
    flows = [(flow_config_of_run(path.parent).noise_sigma, load_flow(path.parent, use_ema)) for path in runs]
    return sorted(flows, key=lambda pair: pair[0])
