"""Data side of the toolkit: rendering, audio I/O, mel spectrograms, TFRecords, datasets."""
import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the toolkit's own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels on every x86 CPU: TensorFlow turns them on by default only on CPUs with AVX-512 VNNI/BF16 or AMX,
# and without them its CPU kernels cannot take the filter gradient of a dilated convolution (NCSN training fails
# on an AVX2-only CPU with "Current CPU implementations do not yet support dilation rates larger than 1"; seen on
# session 22's AMD EPYC). Set before TensorFlow loads: the packages that import TensorFlow import this one first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
