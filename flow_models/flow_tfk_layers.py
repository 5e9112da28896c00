"""Keras (``tf_keras``) layers of the flows: the coupling networks, and Keras-layer versions of the bijectors.

The coupling networks (:class:`CouplingNet`) are used by the tfp bijectors too. The Keras-layer flow blocks
(:class:`ActNormLayer`, ...) compute the same arithmetic (:mod:`flow_models.flow_ops`) as the bijectors of
:mod:`flow_models.flow_tfp_bijectors`, without TFP's bijector machinery; the original project kept both to
compare their speed, and ``bench/flows.py`` does. Each block is called as ``layer(x, reverse=False)`` and
returns ``(y, log_det [B])``: ``reverse=False`` is the data -> latent direction (encode), ``reverse=True`` the
latent -> data direction (decode).

``tf_keras`` (Keras 2) is used because its layers are ``tf.Module``s, so the variables of a tfp bijector that
holds one are tracked and checkpointed with it (Keras 3 layers are not ``tf.Module``s).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from flow_models import flow_ops
from flow_models.flow_tfp_bijectors import data_dependent_init_active


class ZeroConv2D(tf_keras.layers.Layer):
    """3x3 convolution initialised to output zeros, scaled by ``exp(3 * logs)`` per channel (openai/glow's
    ``conv2d_zeros``), so that every coupling starts close to the identity."""

    def __init__(self, filters: int, logscale_factor: float = 3.0, **kwargs):
        super().__init__(**kwargs)
        self.conv = tf_keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="zeros")
        self.logscale_factor = logscale_factor
        self.filters = filters

    def build(self, input_shape):
        self.logs = self.add_weight(name="logs", shape=[self.filters], initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return self.conv(x) * tf.exp(self.logs * self.logscale_factor)


class CouplingNet(tf_keras.layers.Layer):
    """Glow's coupling network ``NN()``: 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero-initialised 3x3 conv.

    ``[B, H, W, C_in] -> [B, H, W, out_channels]`` (``out_channels`` = 2 x the coupled channels: shift and
    scale interleaved). ``seed`` fixes the (Glorot-uniform) initial weights, so two builds of one config match.
    """

    def __init__(self, hidden_width: int, out_channels: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        init = lambda offset: tf_keras.initializers.GlorotUniform(seed=seed * 7 + offset)
        self.hidden_in = tf_keras.layers.Conv2D(hidden_width, 3, padding="same", activation="relu",
                                                kernel_initializer=init(1))
        self.hidden_mid = tf_keras.layers.Conv2D(hidden_width, 1, padding="same", activation="relu",
                                                 kernel_initializer=init(2))
        self.out = ZeroConv2D(out_channels)

    def call(self, x):
        return self.out(self.hidden_mid(self.hidden_in(x)))


# ------------------------------------------------------------------------------ Keras versions of the bijectors

class ActNormLayer(tf_keras.layers.Layer):
    """Keras twin of :class:`~flow_models.flow_tfp_bijectors.ActNorm`."""

    def __init__(self, n_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.loc = self.add_weight(name="loc", shape=[n_channels], initializer="zeros")
        self.log_scale = self.add_weight(name="log_scale", shape=[n_channels], initializer="zeros")

    def call(self, x, reverse: bool = False):
        if reverse:
            return flow_ops.actnorm_decode(x, self.loc, self.log_scale)
        if data_dependent_init_active():
            loc, log_scale = flow_ops.actnorm_initial_values(x)
            self.loc.assign(loc)
            self.log_scale.assign(log_scale)
        return flow_ops.actnorm_encode(x, self.loc, self.log_scale)


class InvertibleConv1x1Layer(tf_keras.layers.Layer):
    """Keras twin of :class:`~flow_models.flow_tfp_bijectors.InvertibleConv1x1` (same seeded LU init)."""

    def __init__(self, n_channels: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        permutation, lower, upper, sign_s, log_s = flow_ops.lu_initial_values(n_channels, seed)
        const = lambda value: tf_keras.initializers.Constant(value)
        shape = [n_channels, n_channels]
        self.permutation = self.add_weight(name="permutation", shape=shape, initializer=const(permutation),
                                           trainable=False)
        self.sign_s = self.add_weight(name="sign_s", shape=[n_channels], initializer=const(sign_s),
                                      trainable=False)
        self.lower = self.add_weight(name="lower", shape=shape, initializer=const(lower))
        self.upper = self.add_weight(name="upper", shape=shape, initializer=const(upper))
        self.log_s = self.add_weight(name="log_s", shape=[n_channels], initializer=const(log_s))

    def call(self, x, reverse: bool = False):
        lu = (self.permutation, self.lower, self.upper, self.sign_s, self.log_s)
        return flow_ops.conv1x1_decode(x, *lu) if reverse else flow_ops.conv1x1_encode(x, *lu)


class AffineCouplingLayer(tf_keras.layers.Layer):
    """Keras twin of :class:`~flow_models.flow_tfp_bijectors.AffineCoupling` (channel or checkerboard mask)."""

    def __init__(self, net, n_channels: int, mask: str = "channel", parity: int = 0, additive: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.net, self.n_channels, self.mask, self.parity, self.additive = net, n_channels, mask, parity, additive

    def call(self, x, reverse: bool = False):
        apply = flow_ops.coupling_decode if reverse else flow_ops.coupling_encode
        if self.mask == "checkerboard":
            keep = flow_ops.checkerboard_mask(x.shape[1], x.shape[2], self.parity, x.dtype)
            shift, log_scale = flow_ops.shift_and_log_scale(self.net(x * keep), self.additive)
            return apply(x, shift, log_scale, keep)
        half = self.n_channels // 2
        kept, changed = (x[..., half:], x[..., :half]) if self.parity else (x[..., :half], x[..., half:])
        shift, log_scale = flow_ops.shift_and_log_scale(self.net(kept), self.additive)
        changed, log_det = apply(changed, shift, log_scale)
        return tf.concat([changed, kept] if self.parity else [kept, changed], axis=-1), log_det


class SqueezeLayer(tf_keras.layers.Layer):
    """Space-to-depth by 2 when encoding (depth-to-space with ``invert=True``); log-det 0."""

    def __init__(self, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.invert = invert

    def call(self, x, reverse: bool = False):
        to_depth = reverse == self.invert
        y = flow_ops.squeeze(x) if to_depth else flow_ops.unsqueeze(x)
        return y, tf.zeros(tf.shape(x)[:1], x.dtype)


class FactorOutLayer(tf_keras.layers.Layer):
    """Keras twin of :class:`~flow_models.flow_tfp_bijectors.FactorOut`."""

    def __init__(self, inner, n_keep: int, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.n_keep = inner, n_keep

    def call(self, x, reverse: bool = False):
        kept, log_det = self.inner(x[..., :self.n_keep], reverse=reverse)
        return tf.concat([kept, x[..., self.n_keep:]], axis=-1), log_det


class PreprocessLayer(tf_keras.layers.Layer):
    """Keras twin of :class:`~flow_models.flow_tfp_bijectors.UnitIntervalPreprocess` (the bijection only)."""

    def __init__(self, kind: str = "logit", alpha: float = 0.05, num_levels: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.alpha, self.num_levels = kind, alpha, num_levels

    def call(self, x, reverse: bool = False):
        if self.kind == "logit":
            return flow_ops.logit_decode(x, self.alpha) if reverse else flow_ops.logit_encode(x, self.alpha)
        return flow_ops.centre_decode(x) if reverse else flow_ops.centre_encode(x)


class SequenceLayer(tf_keras.layers.Layer):
    """Blocks applied in order when encoding and in reverse order when decoding; log-dets summed."""

    def __init__(self, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = list(blocks)

    def call(self, x, reverse: bool = False):
        total = tf.zeros(tf.shape(x)[:1], x.dtype)
        for block in (reversed(self.blocks) if reverse else self.blocks):
            x, log_det = block(x, reverse=reverse)
            total += log_det
        return x, total


class KerasBlocks:
    """Keras-layer twin of :class:`flow_models.flow_tfp_bijectors.TFPBlocks` (same constructor arguments)."""
    preprocess = PreprocessLayer
    actnorm = ActNormLayer
    conv1x1 = InvertibleConv1x1Layer
    coupling = AffineCouplingLayer
    squeeze = SqueezeLayer
    factor_out = FactorOutLayer
    sequence = SequenceLayer

    @staticmethod
    def unsqueeze(name: str = "unsqueeze"):
        return SqueezeLayer(invert=True, name=name)
