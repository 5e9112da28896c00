"""Tests of the bfloat16 convolution option of the NCSN score network (ncsn.precision, set_conv_dtype)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ncsn.config import NCSNConfig
from ncsn.layers import Conv2D
from ncsn.model import ScoreNetwork
from ncsn.precision import cpu_has_native_bf16, resolve_conv_dtype
from pipeline.errors import UserError

TINY = dict(width=4, channel_multipliers=(1, 2), downsample=(False, True), dilations=(1, 2), n_res_blocks=1,
            n_sigmas=4)
CPUINFO = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 {extra}\n\nprocessor\t: 1\n"


def write_cpuinfo(tmp_path, extra: str):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return path


@pytest.mark.parametrize("extra, native", [("avx512f amx_bf16 amx_tile", True), ("avx512f avx512_bf16", True),
                                           ("avx512f avx512bw", False), ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, extra, native):
    assert cpu_has_native_bf16(write_cpuinfo(tmp_path, extra)) is native


def test_unreadable_cpuinfo_means_no_native_bf16(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "missing") is False


def test_resolve_conv_dtype(tmp_path):
    assert resolve_conv_dtype("float32") == tf.float32
    assert resolve_conv_dtype("bfloat16") == tf.bfloat16
    assert resolve_conv_dtype("auto", write_cpuinfo(tmp_path, "avx2")) == tf.float32
    expected = tf.float32 if tf.config.list_physical_devices("GPU") else tf.bfloat16
    assert resolve_conv_dtype("auto", write_cpuinfo(tmp_path, "amx_bf16")) == expected
    with pytest.raises(UserError, match="--conv-dtype"):
        resolve_conv_dtype("float16")


def test_bfloat16_convolutions_keep_the_score_within_bfloat16_rounding():
    model = ScoreNetwork(NCSNConfig(image_shape=(16, 12, 1), **TINY), seed=0)
    x = tf.random.stateless_uniform((3, 16, 12, 1), (1, 2))
    exact = model(x, 2).numpy()
    model.set_conv_dtype(tf.bfloat16)
    assert all(m.compute_dtype == tf.bfloat16 for m in model.submodules if isinstance(m, Conv2D))
    rounded = model(x, 2)
    assert rounded.dtype == tf.float32 and all(v.dtype == tf.float32 for v in model.trainable_variables)
    relative = np.linalg.norm(rounded.numpy() - exact) / np.linalg.norm(exact)
    assert 1e-5 < relative < 3e-2          # bfloat16 keeps 8 significant bits: ~0.4 % per rounding
    model.set_conv_dtype(tf.float32)
    np.testing.assert_allclose(model(x, 2).numpy(), exact, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="bfloat16"):
        model.set_conv_dtype(tf.float16)


def test_load_prior_names_a_bfloat16_prior_so_cached_separations_are_redone():
    from separation.priors import load_prior
    exact = load_prior("ncsn", "pretrained/ncsn_piano", "float32")
    rounded = load_prior("ncsn", "pretrained/ncsn_piano", "bfloat16")
    assert exact.name == "ncsn:ncsn_piano" and rounded.name == "ncsn:ncsn_piano@conv_bfloat16"
    assert {m.compute_dtype for m in rounded.model.submodules if isinstance(m, Conv2D)} == {tf.bfloat16}
