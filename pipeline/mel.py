"""Mel-spectrogram parameters, the dB <-> [0, 1] scaling, and STFT/mel transforms.

Conventions used everywhere in the toolkit (defaults as in the original project):

- audio: mono float32 at ``sample_rate`` (16 kHz);
- STFT: ``librosa.stft`` with ``n_fft`` 2048, ``hop_length`` 512, Hann window, ``center=True``;
  complex array ``[n_fft // 2 + 1, n_frames]``;
- mel power: ``mel_basis @ |STFT|**2`` with librosa's Slaney-normalised filterbank,
  ``[n_mels, n_frames]`` (96 bands, 125-7600 Hz);
- mel dB: ``10 * log10(max(mel_power, 1e-10))`` clipped to ``[db_min, db_max]`` = [-100, 20] dB;
- scaled: ``(mel_db - db_min) / (db_max - db_min)`` in [0, 1]; this is what the priors model;
- patches: ``patch_frames`` (64) consecutive frames, ≈ 2.04 s, stored as ``[n_mels, patch_frames]``
  and fed to the networks as images ``[n_mels, patch_frames, 1]``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram parameters; saved as ``mel_params.json`` beside the TFRecords."""
    sample_rate: int = 16000     # Hz
    n_fft: int = 2048            # samples
    hop_length: int = 512        # samples
    n_mels: int = 96
    fmin: float = 125.0          # Hz
    fmax: float = 7600.0         # Hz
    db_min: float = -100.0       # dB, lower clip
    db_max: float = 20.0         # dB, upper clip
    patch_frames: int = 64       # frames per patch (≈ 2.04 s at the defaults)

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "MelConfig":
        path = Path(path)
        try:
            fields = json.loads(path.read_text())
            return cls(**fields)
        except FileNotFoundError:
            raise UserError(f"{path}: mel parameter file not found (written by wav_to_spec.py)") from None
        except (json.JSONDecodeError, TypeError) as err:
            raise UserError(f"{path}: not a valid mel parameter file ({err})") from None


def mel_basis(cfg: MelConfig) -> np.ndarray:
    """Slaney-normalised mel filterbank, ``[n_mels, n_fft // 2 + 1]`` float32."""
    import librosa
    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                               fmin=cfg.fmin, fmax=cfg.fmax).astype(np.float32)


def stft(audio: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Complex STFT ``[n_fft // 2 + 1, n_frames]`` of mono ``audio [n_samples]``."""
    import librosa
    return librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                        window="hann", center=True)


def istft(spec: np.ndarray, cfg: MelConfig, length: int) -> np.ndarray:
    """Inverse of :func:`stft`; returns ``[length]`` float32 samples."""
    import librosa
    return librosa.istft(spec, hop_length=cfg.hop_length, window="hann", center=True,
                         length=length).astype(np.float32)


def mel_power(audio: np.ndarray, cfg: MelConfig, basis: np.ndarray | None = None) -> np.ndarray:
    """Mel power spectrogram ``[n_mels, n_frames]`` of mono ``audio [n_samples]``."""
    basis = mel_basis(cfg) if basis is None else basis
    return basis @ (np.abs(stft(audio, cfg)) ** 2)


def power_to_db(power: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Power -> dB, clipped to ``[db_min, db_max]``."""
    return np.clip(10.0 * np.log10(np.maximum(power, POWER_FLOOR)), cfg.db_min, cfg.db_max).astype(np.float32)


def db_to_power(mel_db: np.ndarray) -> np.ndarray:
    """dB -> power (no clipping)."""
    return np.power(10.0, np.asarray(mel_db, dtype=np.float64) / 10.0)


def scale_db(mel_db, cfg: MelConfig):
    """dB in ``[db_min, db_max]`` -> [0, 1]. Works on numpy arrays and tensors."""
    return (mel_db - cfg.db_min) / (cfg.db_max - cfg.db_min)


def unscale_db(mel_scaled, cfg: MelConfig):
    """[0, 1] -> dB; the inverse of :func:`scale_db`. Works on numpy arrays and tensors."""
    return mel_scaled * (cfg.db_max - cfg.db_min) + cfg.db_min


def mel_scaled(audio: np.ndarray, cfg: MelConfig, basis: np.ndarray | None = None) -> np.ndarray:
    """Scaled mel spectrogram ``[n_mels, n_frames]`` in [0, 1] of mono ``audio``."""
    return scale_db(power_to_db(mel_power(audio, cfg, basis), cfg), cfg).astype(np.float32)
