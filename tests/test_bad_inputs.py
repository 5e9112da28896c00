"""Bad input gets one line naming the file, never a traceback, never a half-written output."""
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bss_eval_v4 import evaluate_folder
from pipeline.audio_io import atomic_output, load_audio
from pipeline.dataloader import source_patch_dataset
from pipeline.errors import UserError
from pipeline.mel import MelConfig
from pipeline.preprocessing import read_tfrecord
from pipeline.render import resolve_soundfont
from pipeline.wav_to_spec import build_tfrecords

ROOT = Path(__file__).resolve().parents[1]


def tone(seconds, rate=16000, freq=440.0, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_cli_reports_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.wav_to_spec", "--wav", str(tmp_path / "missing"), "--out", str(tmp_path / "mel")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'missing'}: folder not found")


def test_non_audio_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(UserError, match=r"notes\.wav: not a readable audio file"):
        load_audio(path, 16000)


def test_nan_samples(tmp_path):
    audio = tone(1.0)
    audio[100] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match=r"nan\.wav: contains NaN"):
        load_audio(tmp_path / "nan.wav", 16000)


def test_stereo_44k_is_downmixed_and_resampled_with_log_lines(tmp_path, caplog):
    stereo = np.stack([tone(2.0, 44100), tone(2.0, 44100)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, 44100)
    with caplog.at_level(logging.INFO, logger="basis"):
        audio = load_audio(tmp_path / "stereo.wav", 16000)
    assert audio.ndim == 1 and abs(len(audio) - 32000) <= 1
    assert "stereo.wav: 2 channels, downmixed to mono" in caplog.text
    assert "stereo.wav: resampled from 44100 Hz to 16000 Hz" in caplog.text


def make_wav_tree(root, files):
    for rel, audio in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, audio, 16000)


def test_short_and_silent_files_are_skipped_with_a_warning(tmp_path, caplog):
    good = tone(5.0)
    files = {f"{split}/{src}/good.wav": good for split in ("train", "test") for src in ("piano", "violin")}
    files["train/piano/short.wav"] = tone(1.0)
    files["train/violin/silent.wav"] = np.zeros(16000 * 5, np.float32)
    make_wav_tree(tmp_path / "wav", files)
    with caplog.at_level(logging.WARNING, logger="basis"):
        summary = build_tfrecords(tmp_path / "wav", tmp_path / "mel", MelConfig(), progress=False)
    assert "short.wav: shorter than one patch" in caplog.text
    assert "silent.wav: silent" in caplog.text
    assert {Path(s["file"]).name for s in summary["skipped"]} == {"short.wav", "silent.wav"}
    assert (tmp_path / "mel" / "mel_params.json").is_file()


def test_folder_with_only_unusable_files_is_an_error(tmp_path):
    files = {f"{split}/{src}/short.wav": tone(0.5) for split in ("train", "test") for src in ("piano", "violin")}
    make_wav_tree(tmp_path / "wav", files)
    with pytest.raises(UserError, match="no usable patches"):
        build_tfrecords(tmp_path / "wav", tmp_path / "mel", MelConfig(), progress=False)
    assert not (tmp_path / "mel" / "mel_params.json").exists()      # incomplete build is not marked complete


def test_an_evaluation_only_folder_builds_its_test_split_and_a_folder_without_splits_is_an_error(tmp_path):
    make_wav_tree(tmp_path / "wav", {f"test/{src}/piece.wav": tone(5.0) for src in ("piano", "violin")})
    summary = build_tfrecords(tmp_path / "wav", tmp_path / "mel", MelConfig(), progress=False)
    assert set(summary["patches"]) == {"test/piano", "test/violin"} and summary["patches"]["test/piano"] > 0
    assert (tmp_path / "mel" / "mel_params.json").is_file() and not (tmp_path / "mel" / "train").exists()
    make_wav_tree(tmp_path / "flat", {"piano/piece.wav": tone(5.0)})
    with pytest.raises(UserError, match=r"flat: neither train/ nor test/ found"):
        build_tfrecords(tmp_path / "flat", tmp_path / "mel2", MelConfig(), progress=False)
    make_wav_tree(tmp_path / "half", {"test/piano/piece.wav": tone(5.0)})
    with pytest.raises(UserError, match=r"test/violin: folder not found"):
        build_tfrecords(tmp_path / "half", tmp_path / "mel3", MelConfig(), progress=False)


def test_corrupt_tfrecord_is_named(mel_dir, tmp_path):
    broken = tmp_path / "mel"
    shutil.copytree(mel_dir, broken)
    shard = sorted((broken / "train").glob("piano-*.tfrecord"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] + b"\x00garbage" + data[len(data) // 2 + 8:])
    with pytest.raises(UserError, match=rf"{shard.name}: corrupt TFRecord"):
        read_tfrecord(shard)
    with pytest.raises(UserError, match=rf"{shard.name}: corrupt TFRecord"):
        source_patch_dataset(broken, "train", "piano", 4)


def test_estimates_of_other_length_are_matched_with_a_warning(tmp_path, caplog):
    for src in ("piano", "violin"):
        make_wav_tree(tmp_path, {f"ref/{src}/a.wav": tone(3.0, freq=300 if src == "piano" else 700),
                                 f"est/{src}/a.wav": tone(2.5, freq=300 if src == "piano" else 700)})
    with caplog.at_level(logging.WARNING, logger="basis"):
        scores = evaluate_folder(tmp_path / "ref", tmp_path / "est", 16000, progress=False)
    assert "a.wav: 40000 samples, reference has 48000; zero-padded" in caplog.text
    assert scores["a.wav"]["piano"]["n_frames"] == 3 and not np.isnan(scores["a.wav"]["piano"]["SDR"])


def test_missing_estimate_is_an_error(tmp_path):
    for src in ("piano", "violin"):
        make_wav_tree(tmp_path, {f"ref/{src}/a.wav": tone(2.0)})
    make_wav_tree(tmp_path, {"est/piano/a.wav": tone(2.0)})
    with pytest.raises(UserError, match=r"est/violin/a\.wav: estimate missing"):
        evaluate_folder(tmp_path / "ref", tmp_path / "est", 16000, progress=False)


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_missing_soundfont(tmp_path):
    with pytest.raises(UserError, match="SoundFont not found"):
        resolve_soundfont(str(tmp_path / "none.sf2"))
