"""Timing helpers shared by the benchmarks: medians of synchronised calls, peak memory, device names.

Every timed call fetches its result (``.numpy()``), so asynchronous GPU work is included in the time.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from pathlib import Path

import pipeline  # noqa: F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
import tensorflow as tf


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()``, which returns a tensor or a structure of tensors."""
    for _ in range(warmup):
        _ = [t.numpy() for t in tf.nest.flatten(fn())]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _ = [t.numpy() for t in tf.nest.flatten(fn())]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def reset_peak_memory() -> None:
    if has_gpu():
        tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_mb() -> float:
    """GPU: TensorFlow's peak allocated device memory since the last reset; CPU: the process's peak RSS."""
    if has_gpu():
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0      # Linux reports KiB


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> str:
    """The accelerator (or CPU) the run used, with TensorFlow's CUDA/cuDNN build versions on GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        build = tf.sysconfig.get_build_info()
        return f"{name} (CUDA {build.get('cuda_version', '?')}, cuDNN {build.get('cudnn_version', '?')}), TF {tf.__version__}"
    return f"CPU {cpu_name()}, {os.cpu_count()} logical cores (load average {load} at start), TF {tf.__version__}"


def logged_scalars(log_dir: Path, tag: str) -> list[float]:
    """Values of one TensorBoard scalar written by ``train_utils.train``, in the order they were written."""
    from train_utils import read_scalars
    return [value for _, value in read_scalars(log_dir).get(tag, [])]
