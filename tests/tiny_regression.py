"""A tiny linear-regression problem for the tests of the training loop (tests/test_train_utils.py,
tests/test_distributed.py and their child program tests/distributed_child.py).

``Linear`` maps ``x [B, 4]`` to ``y [B, 1]``; the data are 32 fixed examples of ``y = x @ [1, -2, 0.5, 3] + 0.3``
in a fixed order, batched into global batches of ``batch_size`` and repeated, so every run sees the same stream.
"""
from __future__ import annotations

import threading

import numpy as np
import tensorflow as tf

from train_utils import TrainConfig

N_FEATURES = 4


class Linear(tf.Module):
    """y = x @ w + b with deterministic initial weights."""

    def __init__(self, n_in: int = N_FEATURES):
        super().__init__()
        self.w = tf.Variable(tf.linspace(-0.5, 0.5, n_in)[:, None], name="w")
        self.b = tf.Variable([0.1], name="b")

    def __call__(self, x):
        return x @ self.w + self.b


def squared_error(model, batch):
    """Per-example squared error ``[B]`` of ``batch = (x [B, 4], y [B, 1])``."""
    x, y = batch
    return tf.reduce_sum(tf.square(model(x) - y), axis=-1)


def regression_arrays(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x [n, 4]``, ``y [n, 1]`` float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32) + 0.3).astype(np.float32)
    return x, y


def regression_data(batch_size: int = 8, n: int = 32, seed: int = 0, poison_batch: int | None = None):
    """Repeated global batches ``(x [batch_size, 4], y [batch_size, 1])`` in a fixed order; ``poison_batch``:
    index of a batch whose first example is NaN."""
    x, y = regression_arrays(n, seed)
    if poison_batch is not None:
        x[poison_batch * batch_size] = np.nan
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True).repeat()


def global_batch_rows(steps: int, batch_size: int = 8, skip: int = 0) -> np.ndarray:
    """The ``x`` rows ``[steps * batch_size, 4]`` of global batches ``skip .. skip + steps - 1`` of
    :func:`regression_data`."""
    batches = regression_data(batch_size).skip(skip).take(steps)
    return np.concatenate([x.numpy() for x, _ in batches])


def weights(model) -> list[np.ndarray]:
    return [v.numpy().copy() for v in model.trainable_variables]


def config(run_dir, **overrides) -> TrainConfig:
    fields = dict(run_dir=str(run_dir), steps=6, batch_size=8, learning_rate=0.05, log_every=2,
                  checkpoint_every=3, keep_checkpoints=5)
    fields.update(overrides)
    return TrainConfig(**fields)


class RecordingLoss:
    """:func:`squared_error` that also records, at run time, the ``x`` rows ``[B_replica, 4]`` of every batch
    a replica sees (``self.batches``, in call order), to check how train() splits the global batch."""

    def __init__(self):
        self.batches: list[np.ndarray] = []
        self._lock = threading.Lock()  # mirrored replicas run in threads

    def _record(self, x: np.ndarray) -> np.int64:
        with self._lock:
            self.batches.append(np.array(x))
        return np.int64(x.shape[0])

    def __call__(self, model, batch):
        seen = tf.numpy_function(self._record, [batch[0]], tf.int64, stateful=True)
        with tf.control_dependencies([seen]):
            return tf.identity(squared_error(model, batch))
