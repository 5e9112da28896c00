"""TFRecord round trips, mel parameters and scaling, patches (the original's unittest_pipeline.py and more)."""
import json

import numpy as np
import pytest
import tensorflow as tf

from pipeline.dataloader import random_spectral_tilt, separation_dataset, source_patch_dataset
from pipeline.errors import UserError
from pipeline.mel import MelConfig, mel_scaled, scale_db, unscale_db
from pipeline.patches import cut_patches, stitch_patches
from pipeline.preprocessing import load_mel, read_tfrecord, save_mel, wav_dataset, write_tfrecord


@pytest.mark.parametrize("shape", [(17,), (5, 7), (3, 4, 2), (96, 64)])
def test_tfrecord_round_trip(tmp_path, shape):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=shape).astype(np.float32) for _ in range(3)]
    path = tmp_path / "x.tfrecord"
    assert write_tfrecord(path, arrays, files=["a.wav", "b.wav", "c.wav"], start_frames=[0, 32, 64]) == 3
    records = read_tfrecord(path)
    assert [r["file"] for r in records] == ["a.wav", "b.wav", "c.wav"]
    assert [r["start_frame"] for r in records] == [0, 32, 64]
    for a, r in zip(arrays, records):
        assert r["array"].shape == shape
        np.testing.assert_array_equal(r["array"], a)


def test_mel_shape_parameters_and_json(tmp_path):
    cfg = MelConfig()
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax) == (16000, 2048, 512, 96, 125.0, 7600.0)
    assert cfg.patch_seconds == pytest.approx(2.048)
    t = np.arange(16000 * 3) / 16000
    mel = mel_scaled(0.1 * np.sin(2 * np.pi * 440 * t), cfg)
    assert mel.shape == (96, 16000 * 3 // 512 + 1)
    assert 0.0 <= mel.min() and mel.max() <= 1.0
    # 440 Hz lands in the band whose centre is nearest to it.
    import librosa
    centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
    assert abs(centres[mel[:, 20:-20].mean(axis=1).argmax()] - 440) < 40
    cfg.save(tmp_path / "mel_params.json")
    assert MelConfig.load(tmp_path / "mel_params.json") == cfg
    assert json.loads((tmp_path / "mel_params.json").read_text())["db_min"] == -100.0


def test_scaling_round_trip_numpy_and_tensor():
    cfg = MelConfig()
    db = np.linspace(-100, 20, 121, dtype=np.float32)
    np.testing.assert_allclose(scale_db(db, cfg)[[0, -1]], [0.0, 1.0])
    np.testing.assert_allclose(unscale_db(scale_db(db, cfg), cfg), db, atol=1e-4)
    t = unscale_db(scale_db(tf.constant(db), cfg), cfg)
    np.testing.assert_allclose(t.numpy(), db, atol=1e-4)


@pytest.mark.parametrize("n_frames,hop", [(301, 64), (301, 32), (200, 48), (10, 32), (64, 64)])
def test_patch_cut_stitch_is_exact(n_frames, hop):
    x = np.random.default_rng(1).random((96, n_frames)).astype(np.float32)
    patches = cut_patches(x, 64, hop)
    assert patches.shape[1:] == (96, 64)
    np.testing.assert_allclose(stitch_patches(patches, n_frames, hop), x, atol=1e-6)
    # weighing the overlaps by any scores still gives back the cut array: every patch holds the same frames
    scores = np.random.default_rng(2).normal(0, 100, patches.shape[::2])
    np.testing.assert_allclose(stitch_patches(patches, n_frames, hop, scores, temperature=5.0), x, atol=1e-6)


def test_select_stitching_prefers_the_patch_that_scores_lower_in_each_overlap():
    n_frames, hop = 160, 32
    patches = np.stack([np.full((3, 64), float(i)) for i in range(4)])     # patch i holds the value i everywhere
    scores = np.zeros((4, 64))
    scores[1, :32] = 10.0          # overlap 0|1 (frames 32-63): patch 0 scores lower
    scores[1, 32:] = -10.0         # overlap 1|2 (frames 64-95): patch 1 scores lower
    scores[2, 32:] = scores[3, :32] = 5.0      # overlap 2|3 (frames 96-127): a tie
    hard = stitch_patches(patches, n_frames, hop, scores, temperature=1e-3)
    np.testing.assert_allclose(hard[:, 32:64], 0.0)
    np.testing.assert_allclose(hard[:, 64:96], 1.0)
    crossfade = stitch_patches(patches, n_frames, hop)
    np.testing.assert_allclose(hard[:, 96:], crossfade[:, 96:])           # a tie, and the last patch alone
    # a temperature far above the score differences gives back the cross-fade; in between, a blend leaning to the winner
    np.testing.assert_allclose(stitch_patches(patches, n_frames, hop, scores, temperature=1e9), crossfade, atol=1e-6)
    soft = stitch_patches(patches, n_frames, hop, scores, temperature=32 * 20.0)
    assert (soft[:, 32:64] < crossfade[:, 32:64]).all() and (soft[:, 32:64] > 0).all()
    with pytest.raises(ValueError, match="scores of shape"):
        stitch_patches(patches, n_frames, hop, scores[:, :10])


def test_save_load_mel(tmp_path):
    mel = np.random.default_rng(2).random((96, 50)).astype(np.float32)
    save_mel(tmp_path / "m.npy", mel)
    np.testing.assert_array_equal(load_mel(tmp_path / "m.npy"), mel)


def test_wav_dataset_yields_mono_audio(rendered):
    root, _ = rendered
    files = sorted((root / "train" / "piano").glob("*.wav"))[:2]
    items = list(wav_dataset(files, 16000))
    assert len(items) == 2 and all(a.shape.rank == 1 and a.shape[0] > 16000 for _, a in items)


def test_tfrecords_built_per_split_and_source(mel_dir):
    summary = json.loads((mel_dir / "summary.json").read_text())
    for key in ("train/piano", "train/violin", "test/piano", "test/violin"):
        assert summary["patches"][key] > 0
    batch = next(iter(source_patch_dataset(mel_dir, "train", "violin", batch_size=8)))
    assert batch.shape == (8, 96, 64, 1) and batch.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0
    # A finite test pass sees every test patch exactly once.
    n = sum(int(b.shape[0]) for b in source_patch_dataset(mel_dir, "test", "piano", 4, shuffle=False, repeat=False))
    assert n == summary["patches"]["test/piano"]


def test_training_patches_are_deterministic_without_shuffle(mel_dir):
    a = next(iter(source_patch_dataset(mel_dir, "train", "piano", 4, shuffle=False, repeat=False)))
    b = next(iter(source_patch_dataset(mel_dir, "train", "piano", 4, shuffle=False, repeat=False)))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_spectral_tilt_is_a_linear_db_slope_that_keeps_silence():
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    patch = rng.uniform(0.2, 0.8, size=(96, 64, 1)).astype(np.float32)
    patch[:, :5] = 0.0                                           # silent frames
    seed = tf.constant([3, 4], tf.int32)
    tilted = random_spectral_tilt(tf.constant(patch), 30.0, cfg, seed).numpy()
    assert np.all(tilted[:, :5] == 0.0)
    shift_db = unscale_db(tilted[:, 5:], cfg) - unscale_db(patch[:, 5:], cfg)      # [96, 59, 1]
    np.testing.assert_allclose(shift_db, np.broadcast_to(shift_db[:, :1], shift_db.shape), atol=1e-3)  # per band
    per_band = shift_db[:, 0, 0]
    np.testing.assert_allclose(np.diff(per_band), np.diff(per_band)[0], atol=1e-3)  # linear in the band index
    slope = per_band[-1] - per_band[0]
    assert 0.0 < abs(slope) <= 30.0 and abs(per_band[47] + per_band[48]) < 1e-2     # centred on the middle
    np.testing.assert_array_equal(random_spectral_tilt(tf.constant(patch), 30.0, cfg, seed).numpy(), tilted)
    other = random_spectral_tilt(tf.constant(patch), 30.0, cfg, tf.constant([5, 6], tf.int32)).numpy()
    assert not np.allclose(other, tilted)


def test_tilted_training_patches_stay_in_range_and_differ_from_the_data(mel_dir):
    plain = next(iter(source_patch_dataset(mel_dir, "train", "piano", 4, shuffle=False, repeat=False)))
    tilted = next(iter(source_patch_dataset(mel_dir, "train", "piano", 4, shuffle=False, repeat=False, tilt_db=40.0)))
    assert tilted.shape == plain.shape
    assert 0.0 <= float(tf.reduce_min(tilted)) and float(tf.reduce_max(tilted)) <= 1.0
    assert not np.allclose(tilted.numpy(), plain.numpy())
    np.testing.assert_array_equal(tilted.numpy() == 0.0, plain.numpy() == 0.0)


def test_separation_dataset_aligns_mixture_and_sources(rendered):
    root, _ = rendered
    cfg = MelConfig()
    batch = next(iter(separation_dataset(root / "test", cfg, batch_size=4)))
    assert batch["mix"].shape[1:] == (96, 64, 1) and batch["mix_stft"].shape[1:] == (1025, 64)
    # In power, the mixture is close to the sum of the sources where they do not interfere.
    to_power = lambda x: 10 ** (unscale_db(x.numpy(), cfg) / 10)
    ratio = to_power(batch["mix"]) / (to_power(batch["piano"]) + to_power(batch["violin"]))
    assert 0.5 < np.median(ratio) < 2.0


def test_missing_mel_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="mel folder not found"):
        source_patch_dataset(tmp_path / "nope", "train", "piano", 4)
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match="mel_params.json"):
        source_patch_dataset(tmp_path, "train", "piano", 4)
