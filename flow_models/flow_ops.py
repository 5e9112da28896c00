"""The arithmetic of the flow layers, shared by the tfp bijectors and the Keras-layer versions.

Every function works on image batches ``[B, H, W, C]`` (float32) and returns the transformed batch together
with the log-determinant of *its own* Jacobian per example, ``[B]`` (nats). "encode" is the data -> latent
direction (density evaluation), "decode" the latent -> data direction (sampling); ``decode`` undoes
``encode`` and its log-determinant is the negative of ``encode``'s at the corresponding point.

References:
    Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP" (affine coupling, checkerboard
        and channel masks, squeeze, multi-scale factor-out, logit preprocessing).
    Kingma & Dhariwal (2018), "Glow: Generative Flow with Invertible 1x1 Convolutions" (actnorm, LU 1x1
        convolution, zero-initialised coupling output, scale = sigmoid(h + 2) as in openai/glow).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def spatial_size(x: tf.Tensor) -> tf.Tensor:
    """H * W of a ``[B, H, W, C]`` batch, as float32."""
    shape = tf.shape(x)
    return tf.cast(shape[1] * shape[2], x.dtype)


def sum_per_example(values: tf.Tensor) -> tf.Tensor:
    """``[B, H, W, C] -> [B]`` sum over the event axes."""
    return tf.reduce_sum(values, axis=[1, 2, 3])


def per_example(scalar: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Broadcast an input-independent log-determinant to ``[B]`` for the batch ``x``."""
    return tf.fill(tf.shape(x)[:1], tf.cast(scalar, x.dtype))


# --- actnorm: z = (x - loc) * exp(-log_scale), one loc/scale per channel ---------------------------------------

def actnorm_encode(x, loc, log_scale):
    """``[B, H, W, C] -> (z, log|dz/dx| [B])`` with ``loc``, ``log_scale``: ``[C]``."""
    z = (x - loc) * tf.exp(-log_scale)
    return z, per_example(-spatial_size(x) * tf.reduce_sum(log_scale), x)


def actnorm_decode(z, loc, log_scale):
    """Inverse of :func:`actnorm_encode`: ``x = z * exp(log_scale) + loc``."""
    x = z * tf.exp(log_scale) + loc
    return x, per_example(spatial_size(z) * tf.reduce_sum(log_scale), z)


def actnorm_initial_values(x, epsilon: float = 1e-6):
    """Data-dependent init (Glow, Sec. 3.1): per-channel mean and log-std of ``x [B, H, W, C]``."""
    mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
    return mean, tf.math.log(tf.sqrt(variance) + epsilon)


# --- invertible 1x1 convolution, LU-parameterised: W = P @ L @ (U + diag(sign * exp(log_s))) ------------------

def lu_initial_values(n_channels: int, seed: int):
    """A random rotation's LU factors ``(P, L, U, sign_s, log_s)`` (float32 numpy), as in Glow's LU init."""
    import scipy.linalg
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(n_channels, n_channels)))[0]
    permutation, lower, upper = scipy.linalg.lu(rotation)
    diagonal = np.diag(upper)
    upper = np.triu(upper, k=1)
    f32 = lambda a: np.asarray(a, np.float32)
    return f32(permutation), f32(lower), f32(upper), f32(np.sign(diagonal)), f32(np.log(np.abs(diagonal)))


def lu_factors(lower, upper, sign_s, log_s):
    """Masked unit-lower ``L`` and upper ``U`` (with the diagonal ``sign * exp(log_s)``) from raw parameters."""
    n = tf.shape(lower)[0]
    eye = tf.eye(n, dtype=lower.dtype)
    strictly_lower = tf.linalg.band_part(lower, -1, 0) - tf.linalg.band_part(lower, 0, 0)
    strictly_upper = tf.linalg.band_part(upper, 0, -1) - tf.linalg.band_part(upper, 0, 0)
    return strictly_lower + eye, strictly_upper + tf.linalg.diag(sign_s * tf.exp(log_s))


def lu_kernel(permutation, lower, upper, sign_s, log_s):
    """The encode kernel ``W = P L U``, ``[C_out, C_in]``."""
    lower, upper = lu_factors(lower, upper, sign_s, log_s)
    return permutation @ lower @ upper


def lu_kernel_inverse(permutation, lower, upper, sign_s, log_s):
    """``W^-1 = U^-1 L^-1 P^T`` by two triangular solves (C x C, cheap)."""
    lower, upper = lu_factors(lower, upper, sign_s, log_s)
    eye = tf.eye(tf.shape(lower)[0], dtype=lower.dtype)
    lower_inv = tf.linalg.triangular_solve(lower, eye, lower=True)
    upper_inv = tf.linalg.triangular_solve(upper, eye, lower=False)
    return upper_inv @ lower_inv @ tf.transpose(permutation)


def conv1x1(x, kernel):
    """Per-pixel ``x @ kernel^T``: ``[B, H, W, C_in]``, ``[C_out, C_in] -> [B, H, W, C_out]``."""
    return tf.einsum("bhwc,dc->bhwd", x, kernel)


def conv1x1_encode(x, permutation, lower, upper, sign_s, log_s):
    """``z = W x`` per pixel; ``log|det| = H W sum(log_s)``."""
    z = conv1x1(x, lu_kernel(permutation, lower, upper, sign_s, log_s))
    return z, per_example(spatial_size(x) * tf.reduce_sum(log_s), x)


def conv1x1_decode(z, permutation, lower, upper, sign_s, log_s):
    """Inverse of :func:`conv1x1_encode`."""
    x = conv1x1(z, lu_kernel_inverse(permutation, lower, upper, sign_s, log_s))
    return x, per_example(-spatial_size(z) * tf.reduce_sum(log_s), z)


# --- coupling ---------------------------------------------------------------------------------------------------

def checkerboard_mask(height: int, width: int, parity: int, dtype=tf.float32) -> tf.Tensor:
    """``[1, H, W, 1]`` with ones where ``(row + col) % 2 == parity`` (the pixels that condition)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return tf.constant(((rows + cols) % 2 == parity)[None, :, :, None], dtype=dtype)


def shift_and_log_scale(net_output, additive: bool):
    """Split the coupling net output ``[..., 2C]`` into shift ``[..., C]`` and log scale (openai/glow order).

    The scale is ``sigmoid(h + 2)``: bounded in (0, 1), close to 0.88 at the zero initialisation, so one
    coupling can never blow up the density (the cause of the loss spikes of unbounded ``exp`` scales).
    """
    shift = net_output[..., 0::2]
    if additive:
        return shift, tf.zeros_like(shift)
    return shift, -tf.nn.softplus(-(net_output[..., 1::2] + 2.0))   # log sigmoid(h + 2)


def coupling_encode(x_changed, shift, log_scale, keep_mask=None):
    """``z = (x + shift) * scale`` on the changed entries (``keep_mask`` == 0); ``log|det| = sum(log_scale)``."""
    z = (x_changed + shift) * tf.exp(log_scale)
    if keep_mask is None:
        return z, sum_per_example(log_scale)
    change = 1.0 - keep_mask
    return keep_mask * x_changed + change * z, sum_per_example(change * log_scale)


def coupling_decode(z_changed, shift, log_scale, keep_mask=None):
    """Inverse of :func:`coupling_encode`: ``x = z / scale - shift``."""
    x = z_changed * tf.exp(-log_scale) - shift
    if keep_mask is None:
        return x, -sum_per_example(log_scale)
    change = 1.0 - keep_mask
    return keep_mask * z_changed + change * x, -sum_per_example(change * log_scale)


# --- squeeze: space-to-depth by 2 -------------------------------------------------------------------------------

def squeeze(x):
    """``[B, H, W, C] -> [B, H/2, W/2, 4C]`` (a permutation: log|det| = 0)."""
    return tf.nn.space_to_depth(x, 2)


def unsqueeze(z):
    """``[B, H, W, C] -> [B, 2H, 2W, C/4]``, the inverse of :func:`squeeze`."""
    return tf.nn.depth_to_space(z, 2)


# --- preprocessing of [0, 1] data --------------------------------------------------------------------------------

def logit_encode(x, alpha: float):
    """RealNVP's logit: ``p = alpha + (1 - 2 alpha) x``, ``z = log p - log(1 - p)`` for ``x`` in [0, 1]."""
    p = alpha + (1.0 - 2.0 * alpha) * x
    z = tf.math.log(p) - tf.math.log1p(-p)
    log_det = sum_per_example(np.log(1.0 - 2.0 * alpha) - tf.math.log(p) - tf.math.log1p(-p))
    return z, log_det


def logit_decode(z, alpha: float):
    """Inverse of :func:`logit_encode`: ``x = (sigmoid(z) - alpha) / (1 - 2 alpha)``."""
    x = (tf.sigmoid(z) - alpha) / (1.0 - 2.0 * alpha)
    log_det = sum_per_example(-tf.nn.softplus(-z) - tf.nn.softplus(z) - np.log(1.0 - 2.0 * alpha))
    return x, log_det


def centre_encode(x, centre: float = 0.5):
    """openai/glow's preprocessing ``z = x - 0.5`` (defined on all of R, so noisy inputs are fine)."""
    return x - centre, tf.zeros(tf.shape(x)[:1], x.dtype)


def centre_decode(z, centre: float = 0.5):
    return z + centre, tf.zeros(tf.shape(z)[:1], z.dtype)
