"""Audio -> mel-spectrogram arrays -> TFRecords, and back.

- :func:`wav_dataset`: a ``tf.data.Dataset`` of ``(path, audio [n_samples])`` read with the checks of
  :mod:`pipeline.audio_io` (mono, resampled, NaN-free).
- :func:`array_to_example` / :func:`parse_array_example`: any float32 array (1-D, 2-D, 3-D ...) and
  its shape as a ``tf.train.Example`` with the source file name and start frame as metadata.
- :func:`write_tfrecord` (atomic) / :func:`read_tfrecord` (a corrupt file is a one-line error).
- :func:`save_mel` / :func:`load_mel`: one spectrogram as ``.npy``.
- Scaling and its inverse: :func:`pipeline.mel.scale_db` / :func:`pipeline.mel.unscale_db`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from pipeline.audio_io import atomic_output, load_audio
from pipeline.errors import UserError

FEATURES = {
    "data": tf.io.FixedLenFeature([], tf.string),          # raw float32 bytes, C order
    "shape": tf.io.VarLenFeature(tf.int64),
    "file": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "start_frame": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def wav_dataset(paths: Sequence[str | Path], sample_rate: int) -> tf.data.Dataset:
    """``tf.data.Dataset`` of ``(path: tf.string, audio: float32 [n_samples])``, one element per file."""
    paths = [str(p) for p in paths]

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        for p in paths:
            yield p, load_audio(p, sample_rate)

    return tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.float32)))


def array_to_example(array: np.ndarray, file: str = "", start_frame: int = 0) -> bytes:
    """Serialised ``tf.train.Example`` holding ``array`` (cast to float32) and its shape."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    feature = {
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[array.tobytes()])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(array.shape))),
        "file": tf.train.Feature(bytes_list=tf.train.BytesList(value=[file.encode()])),
        "start_frame": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(start_frame)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_array_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Graph-mode parser of :func:`array_to_example`: ``{'array', 'file', 'start_frame'}``."""
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    shape = tf.sparse.to_dense(parsed["shape"])
    array = tf.reshape(tf.io.decode_raw(parsed["data"], tf.float32), shape)
    return {"array": array, "file": parsed["file"], "start_frame": parsed["start_frame"]}


def write_tfrecord(path: str | Path, arrays: Iterable[np.ndarray], files: Iterable[str] | None = None,
                   start_frames: Iterable[int] | None = None) -> int:
    """Write arrays to the TFRecord ``path`` atomically; returns the number of records."""
    arrays = list(arrays)
    files = list(files) if files is not None else [""] * len(arrays)
    start_frames = list(start_frames) if start_frames is not None else [0] * len(arrays)
    assert len(files) == len(arrays) == len(start_frames)
    with atomic_output(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for array, file, start in zip(arrays, files, start_frames):
                writer.write(array_to_example(array, file, start))
    return len(arrays)


def read_tfrecord(path: str | Path) -> list[dict]:
    """All records of ``path`` as dicts ``{'array': np.ndarray, 'file': str, 'start_frame': int}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: TFRecord file not found")
    records = []
    try:
        for serialized in tf.data.TFRecordDataset(str(path)):
            parsed = parse_array_example(serialized)
            records.append({"array": parsed["array"].numpy(), "file": parsed["file"].numpy().decode(),
                            "start_frame": int(parsed["start_frame"])})
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        raise UserError(f"{path}: corrupt TFRecord ({err.message.splitlines()[0]}); rebuild it with wav_to_spec.py") from None
    return records


def check_tfrecords(paths: Sequence[str | Path]) -> int:
    """Read every record of ``paths`` once (fast: no parsing); a corrupt file is a :class:`UserError`. Returns the count."""
    count = 0
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(str(path)):
                count += 1
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
            raise UserError(f"{path}: corrupt TFRecord ({err.message.splitlines()[0]}); rebuild it with wav_to_spec.py") from None
    return count


def save_mel(path: str | Path, mel: np.ndarray) -> None:
    """Save one spectrogram ``[n_mels, n_frames]`` as ``.npy`` (atomically)."""
    with atomic_output(Path(path).with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(mel, dtype=np.float32))


def load_mel(path: str | Path) -> np.ndarray:
    """Load a spectrogram saved by :func:`save_mel`."""
    path = Path(path)
    try:
        return np.load(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read spectrogram ({err})") from None
