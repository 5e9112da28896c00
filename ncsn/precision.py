"""Which dtype the score network's convolutions run in at inference: ``float32``, ``bfloat16``, or ``auto``.

``auto`` picks bfloat16 only on a CPU with native bfloat16 arithmetic (Intel AMX or AVX-512-BF16, read
from ``/proc/cpuinfo``) and no visible GPU: there oneDNN's bfloat16 convolutions are faster, elsewhere
they are emulated and slower. What bfloat16 costs in accuracy and gains in speed is measured in
docs/speed.md ("Faster NCSN inference").
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from pipeline.errors import UserError

CONV_DTYPES = ("auto", "float32", "bfloat16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when the CPU flags list AMX-BF16 or AVX512-BF16 (False where ``cpuinfo`` cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_conv_dtype(name: str, cpuinfo: str | Path = "/proc/cpuinfo") -> tf.DType:
    """``"float32"`` / ``"bfloat16"`` / ``"auto"`` → the tf dtype (see the module docstring for ``auto``)."""
    if name not in CONV_DTYPES:
        raise UserError(f"--conv-dtype must be one of {', '.join(CONV_DTYPES)}, not {name!r}")
    if name == "auto":
        native = cpu_has_native_bf16(cpuinfo) and not tf.config.list_physical_devices("GPU")
        return tf.bfloat16 if native else tf.float32
    return tf.bfloat16 if name == "bfloat16" else tf.float32
