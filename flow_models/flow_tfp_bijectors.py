"""Glow / RealNVP building blocks as ``tfp.bijectors.Bijector`` subclasses.

Convention (the TFP one): ``forward`` maps the latent ``z`` to the data ``x`` (sampling) and ``inverse`` maps
data to latent (density evaluation), so ``tfd.TransformedDistribution(base, flow)`` is the model. All
bijectors act on image events ``[H, W, C]`` (``forward_min_event_ndims = 3``) of batches ``[B, H, W, C]``;
their log-det-Jacobians are per example, ``[B]`` (nats).

Each bijector implements ``forward_and_log_det(z)`` and ``inverse_and_log_det(x)``, which return the result and
its log-det together; TFP's ``_forward``, ``_inverse``, ``_forward_log_det_jacobian`` and
``_inverse_log_det_jacobian`` are thin views of them. The module functions :func:`forward_and_log_det` /
:func:`inverse_and_log_det` walk ``tfb.Chain`` / ``tfb.Invert`` compositions of them in one pass, which is how
the flows evaluate ``log_prob`` when training (TFP's own Chain evaluates every coupling network twice: once for
the inverse and once for its log-det). The arithmetic lives in :mod:`flow_models.flow_ops`.

References: see :mod:`flow_models.flow_ops` (Dinh et al. 2017; Kingma & Dhariwal 2018).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import tensorflow as tf
import tensorflow_probability as tfp

from flow_models import flow_ops

from tensorflow_probability.python.bijectors import chain as _chain_lib
from tensorflow_probability.python.bijectors import invert as _invert_lib

tfb = tfp.bijectors

EVENT_NDIMS = 3   # [H, W, C]
# tfb.Chain(...) / tfb.Invert(...) return the private non-CompositeTensor classes when a part is not one.
_CHAIN_TYPES = (tfb.Chain, _chain_lib._Chain)
_INVERT_TYPES = (tfb.Invert, _invert_lib._Invert)


class FlowBijector(tfb.Bijector):
    """Base class: a bijector on ``[H, W, C]`` events that computes a result and its log-det together."""

    def __init__(self, name: str, parameters: dict | None = None):
        super().__init__(forward_min_event_ndims=EVENT_NDIMS, inverse_min_event_ndims=EVENT_NDIMS,
                         validate_args=False, parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype=None, num_classes=None):
        return dict()   # parameters are variables owned by the bijector: no batch shape

    def forward_and_log_det(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``z [B, H, W, C] -> (x, log|dx/dz| [B])``."""
        raise NotImplementedError

    def inverse_and_log_det(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``x [B, H, W, C] -> (z, log|dz/dx| [B])``."""
        raise NotImplementedError

    def _forward(self, z):
        return self.forward_and_log_det(z)[0]

    def _inverse(self, x):
        return self.inverse_and_log_det(x)[0]

    def _forward_log_det_jacobian(self, z):
        return self.forward_and_log_det(z)[1]

    def _inverse_log_det_jacobian(self, x):
        return self.inverse_and_log_det(x)[1]


# ----------------------------------------------------------------------------------------- data-dependent init

_DATA_INIT = {"active": False}


@contextlib.contextmanager
def data_dependent_init():
    """Within this context, every ActNorm that sees data (encode direction) first sets itself from it."""
    _DATA_INIT["active"] = True
    try:
        yield
    finally:
        _DATA_INIT["active"] = False


def data_dependent_init_active() -> bool:
    return _DATA_INIT["active"]


def initialize_actnorms(bijector: tfb.Bijector, x: tf.Tensor) -> tf.Tensor:
    """Glow's data-dependent init: pass the batch ``x`` (data) through ``bijector``'s inverse once, setting every
    :class:`ActNorm` so that its output has zero mean and unit variance per channel. Runs eagerly; returns z."""
    assert tf.executing_eagerly(), "initialize_actnorms runs eagerly (call it outside tf.function)"
    with data_dependent_init():
        return inverse_and_log_det(bijector, x)[0]


# ------------------------------------------------------------------------------------------------- bijectors

class ActNorm(FlowBijector):
    """Per-channel affine normalisation (Glow, Sec. 3.1). Data -> latent: ``z = (x - loc) / exp(log_scale)``.

    ``loc``, ``log_scale``: ``[C]`` variables, set from the first batch by :func:`initialize_actnorms`.
    """

    def __init__(self, n_channels: int, name: str = "actnorm"):
        super().__init__(name=name, parameters=dict(n_channels=n_channels, name=name))
        self.loc = tf.Variable(tf.zeros([n_channels]), name="loc")
        self.log_scale = tf.Variable(tf.zeros([n_channels]), name="log_scale")

    def inverse_and_log_det(self, x):
        if data_dependent_init_active():
            loc, log_scale = flow_ops.actnorm_initial_values(x)
            self.loc.assign(loc)
            self.log_scale.assign(log_scale)
        return flow_ops.actnorm_encode(x, self.loc, self.log_scale)

    def forward_and_log_det(self, z):
        return flow_ops.actnorm_decode(z, self.loc, self.log_scale)


class InvertibleConv1x1(FlowBijector):
    """Invertible 1x1 convolution with an LU-decomposed kernel (Glow, Sec. 3.2).

    Data -> latent: ``z = W x`` per pixel, ``W = P L (U + diag(sign_s * exp(log_s)))`` with a fixed permutation
    ``P`` and signs; ``log|det| = H W sum(log_s)`` costs O(C). Initialised at a random rotation (seeded).
    """

    def __init__(self, n_channels: int, seed: int = 0, name: str = "conv1x1"):
        super().__init__(name=name, parameters=dict(n_channels=n_channels, seed=seed, name=name))
        permutation, lower, upper, sign_s, log_s = flow_ops.lu_initial_values(n_channels, seed)
        self.permutation = tf.Variable(permutation, trainable=False, name="permutation")
        self.sign_s = tf.Variable(sign_s, trainable=False, name="sign_s")
        self.lower = tf.Variable(lower, name="lower")
        self.upper = tf.Variable(upper, name="upper")
        self.log_s = tf.Variable(log_s, name="log_s")

    @property
    def _lu(self):
        return self.permutation, self.lower, self.upper, self.sign_s, self.log_s

    def inverse_and_log_det(self, x):
        return flow_ops.conv1x1_encode(x, *self._lu)

    def forward_and_log_det(self, z):
        return flow_ops.conv1x1_decode(z, *self._lu)


class AffineCoupling(FlowBijector):
    """Affine (or additive) coupling layer (RealNVP; Glow, Sec. 3.3).

    Data -> latent: the conditioning part ``x_a`` passes unchanged, the other part becomes
    ``z_b = (x_b + shift(x_a)) * sigmoid(h(x_a) + 2)`` (openai/glow's bounded scale), ``log|det| = sum log scale``.

    Args:
        net: Keras layer/callable ``[B, H, W, C_a] -> [B, H, W, 2 C_b]`` (channel mask) or
            ``[B, H, W, C] -> [B, H, W, 2 C]`` (checkerboard mask); its last layer should be zero-initialised so
            the coupling starts near the identity (see :class:`flow_models.flow_tfk_layers.CouplingNet`).
        n_channels: C of the events.
        mask: ``"channel"``: ``x_a`` = the first half of the channels (the second with ``parity`` 1);
            ``"checkerboard"``: ``x_a`` = pixels with ``(row + col) % 2 == parity``.
        additive: scale fixed to 1 (NICE/Glow's additive coupling; log-det 0).
    """

    def __init__(self, net: Callable[[tf.Tensor], tf.Tensor], n_channels: int, mask: str = "channel",
                 parity: int = 0, additive: bool = False, name: str = "coupling"):
        super().__init__(name=name, parameters=dict(net=net, n_channels=n_channels, mask=mask, parity=parity,
                                                    additive=additive, name=name))
        assert mask in ("channel", "checkerboard"), mask
        assert mask == "checkerboard" or n_channels >= 2, "a channel coupling needs at least 2 channels"
        self.net = net
        self.n_channels = n_channels
        self.mask = mask
        self.parity = parity
        self.additive = additive

    def _split(self, x):
        half = self.n_channels // 2
        a, b = x[..., :half], x[..., half:]
        return (b, a) if self.parity else (a, b)

    def _join(self, kept, changed):
        return tf.concat([changed, kept] if self.parity else [kept, changed], axis=-1)

    def _keep_mask(self, x):
        return flow_ops.checkerboard_mask(x.shape[1], x.shape[2], self.parity, x.dtype)

    def _transform(self, x, encode: bool):
        apply = flow_ops.coupling_encode if encode else flow_ops.coupling_decode
        if self.mask == "checkerboard":
            keep = self._keep_mask(x)
            shift, log_scale = flow_ops.shift_and_log_scale(self.net(x * keep), self.additive)
            return apply(x, shift, log_scale, keep)
        kept, changed = self._split(x)
        shift, log_scale = flow_ops.shift_and_log_scale(self.net(kept), self.additive)
        changed, log_det = apply(changed, shift, log_scale)
        return self._join(kept, changed), log_det

    def inverse_and_log_det(self, x):
        return self._transform(x, encode=True)

    def forward_and_log_det(self, z):
        return self._transform(z, encode=False)


class Squeeze(FlowBijector):
    """Space-to-depth by 2 (RealNVP, Sec. 3.6). Data -> latent: ``[H, W, C] -> [H/2, W/2, 4C]``; log-det 0.

    ``tfb.Invert(Squeeze())`` is the un-squeeze that closes each multi-scale level (so levels keep the shape).
    """

    def __init__(self, name: str = "squeeze"):
        super().__init__(name=name, parameters=dict(name=name))

    def inverse_and_log_det(self, x):
        return flow_ops.squeeze(x), tf.zeros(tf.shape(x)[:1], x.dtype)

    def forward_and_log_det(self, z):
        return flow_ops.unsqueeze(z), tf.zeros(tf.shape(z)[:1], z.dtype)

    def _forward_event_shape(self, shape):          # latent [h, w, 4c] -> data [2h, 2w, c]
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([None if h is None else 2 * h, None if w is None else 2 * w,
                                       None if c is None else c // 4])

    def _inverse_event_shape(self, shape):          # data [h, w, c] -> latent [h/2, w/2, 4c]
        h, w, c = shape[-3:]
        return shape[:-3].concatenate([None if h is None else h // 2, None if w is None else w // 2,
                                       None if c is None else 4 * c])

    def _forward_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:-1] * 2, shape[-1:] // 4], axis=0)

    def _inverse_event_shape_tensor(self, shape):
        return tf.concat([shape[:-3], shape[-3:-1] // 2, shape[-1:] * 4], axis=0)


class FactorOut(FlowBijector):
    """Multi-scale split (RealNVP, Sec. 3.6): the last ``C - n_keep`` channels leave the flow as latents; the
    first ``n_keep`` go through ``inner`` (the next level, shape-preserving). Data -> latent:
    ``z = concat(inner^-1(x[..., :n_keep]), x[..., n_keep:])``; log-det = inner's.
    """

    def __init__(self, inner: tfb.Bijector, n_keep: int, name: str = "factor_out"):
        super().__init__(name=name, parameters=dict(inner=inner, n_keep=n_keep, name=name))
        self.inner = inner
        self.n_keep = n_keep

    def inverse_and_log_det(self, x):
        kept, log_det = inverse_and_log_det(self.inner, x[..., :self.n_keep])
        return tf.concat([kept, x[..., self.n_keep:]], axis=-1), log_det

    def forward_and_log_det(self, z):
        kept, log_det = forward_and_log_det(self.inner, z[..., :self.n_keep])
        return tf.concat([kept, z[..., self.n_keep:]], axis=-1), log_det


class UnitIntervalPreprocess(FlowBijector):
    """Maps data in [0, 1] to the real line, and knows how the data were quantised.

    Data -> latent, ``kind``:
        ``"logit"``: RealNVP's ``logit(alpha + (1 - 2 alpha) x)`` (Dinh et al. 2017, Sec. 4.1); only for x in [0, 1].
        ``"centre"``: openai/glow's ``x - 0.5``; defined on all of R, so the noisy-Glow fine-tuning
            (x + N(0, sigma^2) leaves [0, 1]) can use it.

    ``num_levels`` is the number of discrete values the data take (256 for 8-bit images, 17 for scikit-learn's
    digits; the [0, 1]-scaled mel spectrograms are binned to 256 levels by default, see
    :mod:`flow_models.training`) or 0 for data fitted as continuous. For quantised data
    :meth:`dequantize` maps ``x = k / (num_levels - 1)`` to ``(k + u) / num_levels``, ``u ~ U[0, 1)`` (uniform
    dequantisation; Theis et al. 2016), whose continuous log-likelihood lower-bounds the discrete one up to
    ``D log(num_levels)``; :meth:`bits_per_dim` adds that term so the figures are comparable with the literature.
    """

    def __init__(self, kind: str = "logit", alpha: float = 0.05, num_levels: int = 0, name: str = "preprocess"):
        super().__init__(name=name, parameters=dict(kind=kind, alpha=alpha, num_levels=num_levels, name=name))
        assert kind in ("logit", "centre"), kind
        assert 0.0 < alpha < 0.5 or kind == "centre", alpha
        assert num_levels == 0 or num_levels >= 2, num_levels
        self.kind = kind
        self.alpha = alpha
        self.num_levels = num_levels

    def inverse_and_log_det(self, x):
        if self.kind == "logit":
            return flow_ops.logit_encode(x, self.alpha)
        return flow_ops.centre_encode(x)

    def forward_and_log_det(self, z):
        if self.kind == "logit":
            return flow_ops.logit_decode(z, self.alpha)
        return flow_ops.centre_decode(z)

    def dequantize(self, x: tf.Tensor, seed=None) -> tf.Tensor:
        """``x [B, H, W, C]`` on the grid ``k / (num_levels - 1)`` -> ``(k + u) / num_levels``; identity if continuous."""
        if not self.num_levels:
            return x
        levels = tf.round(x * (self.num_levels - 1))
        noise = tf.random.uniform(tf.shape(x), dtype=x.dtype, seed=seed)
        return (levels + noise) / self.num_levels

    def bits_per_dim(self, log_prob: tf.Tensor, n_dims: int, discrete: bool = True) -> tf.Tensor:
        """Bits per dimension ``[B]`` from log-densities ``[B]`` (nats) of dequantised data on [0, 1]^D.

        Quantised data (and ``discrete``): ``(-log p + D log num_levels) / (D log 2)``, the discrete code length;
        continuous data (or ``discrete=False``): ``-log p / (D log 2)``, a differential entropy rate that may be
        negative (add log2(K) for the discrete rate at bin width 1/K).
        """
        offset = n_dims * math.log(self.num_levels) if (self.num_levels and discrete) else 0.0
        return (offset - log_prob) / (n_dims * math.log(2.0))


# ----------------------------------------------------------------------------------- one-pass composition walk

def inverse_and_log_det(bijector: tfb.Bijector, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Data -> latent through ``bijector`` (a :class:`FlowBijector` or a Chain/Invert of them) with the summed
    log-det ``[B]``, evaluating each layer once."""
    if isinstance(bijector, FlowBijector):
        return bijector.inverse_and_log_det(x)
    if isinstance(bijector, _INVERT_TYPES):
        return forward_and_log_det(bijector.bijector, x)
    if isinstance(bijector, _CHAIN_TYPES):
        total = tf.zeros(tf.shape(x)[:1], x.dtype)
        for part in bijector.bijectors:            # Chain([b1, b2]).inverse = b2^-1(b1^-1(x))
            x, log_det = inverse_and_log_det(part, x)
            total += log_det
        return x, total
    z = bijector.inverse(x)
    return z, bijector.inverse_log_det_jacobian(x, event_ndims=EVENT_NDIMS)


def forward_and_log_det(bijector: tfb.Bijector, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Latent -> data through ``bijector`` with the summed log-det ``[B]`` (see :func:`inverse_and_log_det`)."""
    if isinstance(bijector, FlowBijector):
        return bijector.forward_and_log_det(z)
    if isinstance(bijector, _INVERT_TYPES):
        return inverse_and_log_det(bijector.bijector, z)
    if isinstance(bijector, _CHAIN_TYPES):
        total = tf.zeros(tf.shape(z)[:1], z.dtype)
        for part in reversed(bijector.bijectors):  # Chain([b1, b2]).forward = b1(b2(z))
            z, log_det = forward_and_log_det(part, z)
            total += log_det
        return z, total
    x = bijector.forward(z)
    return x, bijector.forward_log_det_jacobian(z, event_ndims=EVENT_NDIMS)


class TFPBlocks:
    """Block constructors for the architecture builders (:mod:`flow_models.flow_glow`,
    :mod:`flow_models.flow_realnvp`); :class:`flow_models.flow_tfk_layers.KerasBlocks` has the same interface.
    ``sequence(blocks)`` applies ``blocks`` in list order in the data -> latent direction."""
    preprocess = UnitIntervalPreprocess
    actnorm = ActNorm
    conv1x1 = InvertibleConv1x1
    coupling = AffineCoupling
    squeeze = Squeeze
    factor_out = FactorOut

    @staticmethod
    def unsqueeze(name: str = "unsqueeze"):
        return tfb.Invert(Squeeze(name=name))

    @staticmethod
    def sequence(blocks, name: str = "chain"):
        return tfb.Chain(list(blocks), name=name)   # Chain([b1, b2]).inverse(x) = b2^-1(b1^-1(x))


def leaf_bijectors(bijector: tfb.Bijector):
    """The non-composite bijectors of a flow, in data -> latent order (Chain, Invert and FactorOut opened)."""
    if isinstance(bijector, _CHAIN_TYPES):
        for part in bijector.bijectors:
            yield from leaf_bijectors(part)
    elif isinstance(bijector, _INVERT_TYPES):
        yield from leaf_bijectors(bijector.bijector)
    elif isinstance(bijector, FactorOut):
        yield bijector
        yield from leaf_bijectors(bijector.inner)
    else:
        yield bijector
