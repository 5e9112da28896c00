"""tf.data pipelines: single-source patches for training, aligned mixtures for separation.

- :func:`source_patch_dataset`: shuffled, batched, prefetched mel patches of one instrument from
  the TFRecords of ``pipeline.wav_to_spec``: float32 ``[B, n_mels, patch_frames, 1]`` in [0, 1].
- :func:`separation_examples` / :func:`separation_dataset`: for each ``{mix,piano,violin}/NAME.wav``
  triplet, aligned scaled-mel patches of the mixture and both sources plus the mixture STFT patch:
  ``mix``, ``piano``, ``violin``: ``[n_mels, patch_frames, 1]``; ``mix_stft``: complex64
  ``[n_fft // 2 + 1, patch_frames]``; ``file``; ``start_frame``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow as tf

from pipeline.errors import UserError, log
from pipeline.mel import MelConfig, mel_basis, power_to_db, scale_db, stft
from pipeline.patches import cut_patches
from pipeline.preprocessing import check_tfrecords, parse_array_example
from pipeline.triplets import list_triplets, load_triplet

AUTOTUNE = tf.data.AUTOTUNE


def load_mel_config(mel_dir: str | Path) -> MelConfig:
    """The :class:`MelConfig` of a TFRecord folder built by ``pipeline.wav_to_spec``."""
    mel_dir = Path(mel_dir)
    if not mel_dir.is_dir():
        raise UserError(f"{mel_dir}: mel folder not found (build it with `python -m pipeline.wav_to_spec`)")
    if not (mel_dir / "mel_params.json").is_file():
        raise UserError(f"{mel_dir}: no mel_params.json, so the TFRecords are missing or incomplete; "
                        f"rebuild with `python -m pipeline.wav_to_spec`")
    return MelConfig.load(mel_dir / "mel_params.json")


def tfrecord_files(mel_dir: str | Path, split: str, source: str) -> list[str]:
    """Sorted TFRecord shards of ``split``/``source`` (a :class:`UserError` when there are none)."""
    files = sorted(str(p) for p in (Path(mel_dir) / split).glob(f"{source}-*.tfrecord"))
    if not files:
        raise UserError(f"{Path(mel_dir) / split}: no {source}-*.tfrecord files")
    return files


def random_spectral_tilt(patch: tf.Tensor, max_tilt_db: float, cfg: MelConfig, seed: tf.Tensor) -> tf.Tensor:
    """Timbre augmentation: tilt a scaled mel patch ``[n_mels, frames, 1]`` by a random dB slope.

    The slope ``t`` is uniform in ``[-max_tilt_db, max_tilt_db]`` dB from the lowest to the highest mel band; band
    ``k`` of ``K`` gets ``t * (k / (K - 1) - 1/2)`` dB (the middle band keeps its level), like a brighter or darker
    instrument or microphone. Bins at the silence floor (0) stay there; the result is clipped to [0, 1].
    ``seed``: int32 ``[2]`` of a stateless op.
    """
    n_mels = patch.shape[0]
    slope_db = tf.random.stateless_uniform([], seed, -max_tilt_db, max_tilt_db)
    bands = tf.linspace(-0.5, 0.5, n_mels)[:, None, None]
    tilted = tf.clip_by_value(patch + slope_db * bands / (cfg.db_max - cfg.db_min), 0.0, 1.0)
    return tf.where(patch > 0.0, tilted, patch)


def source_patch_dataset(mel_dir: str | Path, split: str, source: str, batch_size: int, shuffle: bool = True,
                         repeat: bool = True, seed: int = 0, check: bool = True,
                         tilt_db: float = 0.0) -> tf.data.Dataset:
    """Batches ``[batch_size, n_mels, patch_frames, 1]`` float32 in [0, 1] of ``source`` patches.

    ``check`` reads every record once first, so a corrupt file is reported by name before training
    starts rather than as a ``DataLossError`` mid-run. ``tilt_db > 0`` applies
    :func:`random_spectral_tilt` to every patch (a new slope each time it is drawn; seeded by ``seed``).
    """
    cfg = load_mel_config(mel_dir)
    files = tfrecord_files(mel_dir, split, source)
    if check:
        n = check_tfrecords(files)
        if n < batch_size and not repeat:
            log.warning("%s/%s: only %d patches, fewer than one batch of %d", split, source, n, batch_size)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)), num_parallel_calls=AUTOTUNE,
                       deterministic=not shuffle)
    if shuffle:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    shape = (cfg.n_mels, cfg.patch_frames, 1)
    ds = ds.map(lambda s: tf.ensure_shape(tf.reshape(parse_array_example(s)["array"], shape), shape),
                num_parallel_calls=AUTOTUNE)
    if tilt_db > 0:
        seeds = tf.data.Dataset.random(seed=seed).batch(2).map(lambda v: tf.cast(v % (2**31 - 1), tf.int32))
        ds = tf.data.Dataset.zip((ds, seeds)).map(lambda x, s: random_spectral_tilt(x, tilt_db, cfg, s),
                                                  num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(AUTOTUNE)


def separation_examples(data_dir: str | Path, cfg: MelConfig) -> Iterator[dict]:
    """Aligned patches of every triplet in ``data_dir`` (see module docstring), in file order."""
    basis = mel_basis(cfg)
    for name in list_triplets(data_dir):
        audio = load_triplet(data_dir, name, cfg.sample_rate)
        specs = {stem: stft(a, cfg) for stem, a in audio.items()}
        if specs["mix"].shape[1] < cfg.patch_frames:
            log.warning("%s: shorter than one patch (%.2f s); padded with silence", name, cfg.patch_seconds)
        mels = {stem: scale_db(power_to_db(basis @ np.abs(s) ** 2, cfg), cfg) for stem, s in specs.items()}
        cut = {stem: cut_patches(m, cfg.patch_frames, cfg.patch_frames, pad_value=0.0) for stem, m in mels.items()}
        mix_stft = cut_patches(specs["mix"], cfg.patch_frames, cfg.patch_frames, pad_value=0.0)
        for i in range(len(cut["mix"])):
            yield {"mix": cut["mix"][i][..., None], "piano": cut["piano"][i][..., None],
                   "violin": cut["violin"][i][..., None], "mix_stft": mix_stft[i].astype(np.complex64),
                   "file": name, "start_frame": i * cfg.patch_frames}


def separation_dataset(data_dir: str | Path, cfg: MelConfig, batch_size: int) -> tf.data.Dataset:
    """:func:`separation_examples` as a batched, prefetched ``tf.data.Dataset`` of dicts."""
    patch = tf.TensorSpec([cfg.n_mels, cfg.patch_frames, 1], tf.float32)
    signature = {"mix": patch, "piano": patch, "violin": patch,
                 "mix_stft": tf.TensorSpec([cfg.n_bins, cfg.patch_frames], tf.complex64),
                 "file": tf.TensorSpec([], tf.string), "start_frame": tf.TensorSpec([], tf.int64)}
    ds = tf.data.Dataset.from_generator(lambda: separation_examples(data_dir, cfg), output_signature=signature)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
