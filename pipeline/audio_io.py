"""Reading and writing wav files with the checks a user's folder needs.

Every reader returns mono float32 at the requested sample rate: stereo files are downmixed and
other rates resampled (both said in a log line). Problems a user can cause (missing file, not
audio, NaN samples, empty file) raise :class:`~pipeline.errors.UserError` naming the file.
Writers go through :func:`atomic_output`, so an interrupted run never leaves a half-written file
that looks complete.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from pipeline.errors import UserError, log

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes 0600 files; give the final file normal permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples ``[n_samples]`` of the audio file ``path`` at ``sample_rate`` Hz."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise UserError(f"{path}: not a readable audio file ({err})") from None
    if audio.shape[0] == 0:
        raise UserError(f"{path}: contains no samples")
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path}: contains NaN or infinite samples; re-export the file")
    if audio.shape[1] > 1:
        log.info("%s: %d channels, downmixed to mono", path, audio.shape[1])
    audio = audio.mean(axis=1)
    if file_rate != sample_rate:
        import soxr
        log.info("%s: resampled from %d Hz to %d Hz", path, file_rate, sample_rate)
        audio = soxr.resample(audio, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono ``audio [n_samples]`` as a 32-bit float wav, atomically."""
    audio = np.asarray(audio, dtype=np.float32)
    assert audio.ndim == 1, f"expected mono audio, got shape {audio.shape}"
    with atomic_output(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype="FLOAT", format="WAV")


def list_audio(folder: str | Path, what: str = "audio files") -> list[Path]:
    """Sorted audio files directly in ``folder``; a missing or empty folder is a :class:`UserError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: folder not found (expected {what})")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise UserError(f"{folder}: no {what} (.wav/.flac/.ogg) in this folder")
    return files


def is_silent(audio: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the peak level of ``audio`` is below ``threshold_db`` dBFS."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return peak <= 10.0 ** (threshold_db / 20.0)


def active_rms_db(audio: np.ndarray, sample_rate: int, frame_seconds: float = 0.05, gate_db: float = -40.0) -> float:
    """RMS level in dBFS over the frames within ``gate_db`` of the loudest frame (ignores silences)."""
    frame = max(1, int(frame_seconds * sample_rate))
    n = len(audio) // frame
    if n == 0:
        return -np.inf
    frame_power = np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1)
    if frame_power.max() <= 0:
        return -np.inf
    active = frame_power >= frame_power.max() * 10 ** (gate_db / 10)
    return float(10 * np.log10(frame_power[active].mean()))
