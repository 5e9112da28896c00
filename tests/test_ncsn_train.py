"""End-to-end tests of train_ncsn.py: training lowers the loss, resume continues, samples are written."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import train_ncsn
from ncsn.model import ScoreNetwork
from ncsn.sample_io import mel_patch_to_audio
from ncsn.sigmas import max_pairwise_distance
from ncsn.training import DataConfig, load_score_model, make_eval_fn, read_run_configs
from pipeline.errors import UserError
from pipeline.mel import MelConfig, mel_scaled
from pipeline.preprocessing import write_tfrecord
from train_utils import checkpoint_step

TINY_NET = ["--width", "8", "--n-steps-per-level", "2", "--n-samples", "4", "--eval-examples", "32"]
TWO_STAGES = ["--channel-multipliers", "1,2", "--downsample", "0,1", "--dilations", "1,2", "--n-res-blocks", "1"]


def test_short_digits_run_lowers_the_held_out_loss_and_writes_samples(tmp_path):
    run_dir = tmp_path / "digits"
    train_ncsn.main(["--dataset", "digits", "--run-dir", str(run_dir), "--steps", "60", "--batch-size", "32",
                     "--learning-rate", "2e-3", "--log-every", "20", "--checkpoint-every", "60", *TINY_NET, *TWO_STAGES])
    network, sampler, data = read_run_configs(run_dir)
    assert network.image_shape == (8, 8, 1) and network.width == 8 and data.dataset == "digits"
    assert sampler.n_steps_per_level == 2
    eval_fn = make_eval_fn(DataConfig("digits").examples("test", 64))
    before = eval_fn(ScoreNetwork(network, seed=0))["dsm_loss"]      # the run's initial weights (seed 0)
    after = eval_fn(load_score_model(run_dir))["dsm_loss"]
    assert after < 0.85 * before, (before, after)
    png = tf.io.decode_png(tf.io.read_file(str(run_dir / "samples" / "step_0000060.png"))).numpy()
    assert png.ndim == 3 and png.shape[0] > 8 and png.std() > 0
    saved = json.loads((run_dir / "config.json").read_text())["model"]["sigma_levels"]
    np.testing.assert_allclose(saved, load_score_model(run_dir).sigma_levels.numpy(), rtol=1e-6)


def test_resume_continues_the_step_count_and_ema_weights_load(tmp_path, caplog):
    run_dir = tmp_path / "resume"
    args = ["--dataset", "digits", "--run-dir", str(run_dir), "--batch-size", "16", "--log-every", "2",
            "--checkpoint-every", "2", "--ema-decay", "0.9", *TINY_NET, *TWO_STAGES]
    train_ncsn.main([*args, "--steps", "4"])
    assert checkpoint_step(run_dir) == 4
    caplog.clear()
    caplog.set_level(logging.INFO, logger="basis")
    train_ncsn.main([*args, "--steps", "8", "--n-steps-per-level", "1"])   # sampler flags may change
    assert read_run_configs(run_dir)[1].n_steps_per_level == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("resuming" in m and "from step 4" in m for m in messages), messages
    assert any("step 6/8" in m for m in messages) and not any("step 2/8" in m for m in messages), messages
    assert checkpoint_step(run_dir) == 8
    x = tf.random.uniform((2, 8, 8, 1), seed=0)
    ema, raw = load_score_model(run_dir), load_score_model(run_dir, use_ema=False)
    assert not np.allclose(ema(x, 3).numpy(), raw(x, 3).numpy())
    (run_dir / "samples" / "step_0000008.png").unlink()
    train_ncsn.main(["--run-dir", str(run_dir), "--sample-only", "--n-samples", "2", "--n-steps-per-level", "1"])
    assert (run_dir / "samples" / "step_0000008.png").is_file()
    assert read_run_configs(run_dir)[1].n_samples == 2
    with pytest.raises(UserError, match="different model config"):
        train_ncsn.main([*args, "--steps", "10", "--width", "16"])


def test_init_from_starts_a_new_run_at_the_other_runs_weights(tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = ["--dataset", "digits", "--batch-size", "16", "--log-every", "2", *TINY_NET, *TWO_STAGES]
    train_ncsn.main([*common, "--run-dir", str(base), "--steps", "20", "--checkpoint-every", "20", "--ema-decay", "0.9"])
    x = tf.random.uniform((2, 8, 8, 1), seed=1)
    # One step at a tiny learning rate: the new run's EMA weights stay those of base (and not seed 0's init).
    train_ncsn.main([*common, "--run-dir", str(tuned), "--steps", "1", "--checkpoint-every", "1", "--ema-decay", "0.9",
                     "--learning-rate", "1e-9", "--init-from", str(base)])
    assert checkpoint_step(tuned) == 1
    np.testing.assert_allclose(load_score_model(tuned)(x, 2).numpy(), load_score_model(base)(x, 2).numpy(),
                               rtol=1e-4, atol=1e-4)
    fresh = ScoreNetwork(read_run_configs(base)[0], seed=0)
    assert not np.allclose(fresh(x, 2).numpy(), load_score_model(tuned)(x, 2).numpy(), atol=1e-3)
    assert json.loads((tuned / "config.json").read_text())["model"]["init_from"] == str(base)
    with pytest.raises(UserError, match="differs in width"):
        train_ncsn.main([*common, "--run-dir", str(tmp_path / "other"), "--steps", "1", "--width", "16",
                         "--init-from", str(base)])
    with pytest.raises(UserError, match="no NCSN run"):
        train_ncsn.main([*common, "--run-dir", str(tmp_path / "other"), "--steps", "1",
                         "--init-from", str(tmp_path / "missing")])


def test_load_score_model_of_a_missing_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        load_score_model(tmp_path / "nothing")


def small_mel_dir(tmp_path, cfg: MelConfig):
    """A mel TFRecord folder of random patches (the loader and CLI only need its layout)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for source in ("piano", "violin"):
            patches = rng.uniform(0.2, 0.8, (n, cfg.n_mels, cfg.patch_frames)).astype(np.float32)
            write_tfrecord(tmp_path / split / f"{source}-00000.tfrecord", patches)
    cfg.save(tmp_path / "mel_params.json")
    return tmp_path


def test_melspec_run_writes_a_figure_and_wavs_and_uses_the_data_for_sigma_max(tmp_path):
    cfg = MelConfig(n_mels=32, patch_frames=16)
    mel_dir = small_mel_dir(tmp_path / "mel", cfg)
    run_dir = tmp_path / "violin"
    train_ncsn.main(["--dataset", "melspec", "--mel-dir", str(mel_dir), "--source", "violin",
                     "--run-dir", str(run_dir), "--steps", "2", "--batch-size", "8", "--width", "4",
                     "--n-steps-per-level", "1", "--n-samples", "3", "--n-wavs", "2", "--eval-examples", "8",
                     "--sigma-max", "auto", "--scale-by-sigma", *TWO_STAGES])
    network, _, data = read_run_configs(run_dir)
    assert network.image_shape == (32, 16, 1) and data.source == "violin" and network.scale_by_sigma
    train_patches = DataConfig("melspec", mel_dir=str(mel_dir), source="violin").examples("train", 100)
    assert network.sigma_max == pytest.approx(max_pairwise_distance(train_patches), rel=1e-6)
    samples = run_dir / "samples"
    assert (samples / "step_0000002.png").is_file()
    wavs = sorted(samples.glob("step_0000002_*.wav"))
    assert len(wavs) == 2
    audio, rate = sf.read(str(wavs[0]))
    assert rate == cfg.sample_rate and len(audio) == (cfg.patch_frames - 1) * cfg.hop_length
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_mel_inversion_keeps_the_pitch_of_a_tone():
    cfg = MelConfig()
    t = np.arange(2 * cfg.sample_rate) / cfg.sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    patch = mel_scaled(tone, cfg)[:, :cfg.patch_frames]
    audio = mel_patch_to_audio(patch, cfg)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    peak_hz = np.argmax(spectrum) * cfg.sample_rate / len(audio)
    assert abs(peak_hz - 440.0) < 25.0, peak_hz   # mel bands near 440 Hz are ~30 Hz wide
