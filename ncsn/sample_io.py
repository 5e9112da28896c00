"""Writing prior samples where a person can look at and listen to them.

- :func:`save_image_grid`: images ``[N, H, W, C]`` in [0, 1] tiled into one PNG.
- :func:`save_mel_grid`: scaled mel patches ``[N, n_mels, frames, 1]`` as a PNG of spectrograms (dB colour map).
- :func:`mel_patch_to_audio`: a scaled mel patch inverted to a waveform (mel filterbank pseudo-inverse, then
  Griffin-Lim phase retrieval; Griffin & Lim 1984), so a short sample can be heard as a wav.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.audio_io import atomic_output, save_audio
from pipeline.mel import MelConfig, db_to_power, mel_basis, unscale_db


def tile_images(images: np.ndarray, n_columns: int | None = None, padding: int = 1, upscale: int = 1) -> np.ndarray:
    """``[N, H, W, C]`` in [0, 1] -> one uint8 image ``[rows·(H+p)+p, cols·(W+p)+p, C]`` (C = 1 or 3)."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
    n, height, width, channels = images.shape
    n_columns = n_columns or int(math.ceil(math.sqrt(n)))
    n_rows = int(math.ceil(n / n_columns))
    grid = np.ones((n_rows * (height + padding) + padding, n_columns * (width + padding) + padding, channels),
                   np.float32)
    for i, image in enumerate(images):
        top, left = padding + (i // n_columns) * (height + padding), padding + (i % n_columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return np.round(grid * 255.0).astype(np.uint8)


def save_image_grid(images: np.ndarray, path: str | Path, min_size: int = 128) -> Path:
    """Tile ``images [N, H, W, C]`` (values in [0, 1]) into a PNG at ``path``.

    Small images are enlarged (nearest neighbour) by an integer factor of at most 4, towards ``min_size`` pixels.
    """
    height = images.shape[1]
    upscale = max(1, min(4, min_size // height))
    png = tf.io.encode_png(tile_images(images, upscale=upscale)).numpy()
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(png)
    return Path(path)


def save_mel_grid(mel_patches: np.ndarray, cfg: MelConfig, path: str | Path, label: str = "sample",
                  n_columns: int = 4) -> Path:
    """Scaled mel patches ``[N, n_mels, frames, 1]`` in [0, 1] drawn as dB spectrograms in one PNG.

    Panels are titled ``"<label> <first>-<last>: #<i>"`` (one row per ``n_columns`` patches).
    """
    from pipeline.figures import plot_mel_grid
    mel_db = unscale_db(np.asarray(mel_patches)[..., 0], cfg)
    rows = {}
    for start in range(0, len(mel_db), n_columns):
        stop = min(start + n_columns, len(mel_db))
        rows[f"{label} {start + 1}-{stop}"] = {f"#{i + 1}": mel_db[i] for i in range(start, stop)}
    plot_mel_grid(rows, cfg, path)
    return Path(path)


def mel_patch_to_audio(mel_patch: np.ndarray, cfg: MelConfig, n_iter: int = 32) -> np.ndarray:
    """Waveform ``[(frames - 1) · hop_length]`` float32 of one scaled mel patch ``[n_mels, frames]`` (or ``[..., 1]``).

    Mel power -> STFT power by the filterbank's pseudo-inverse (negative values set to 0), then
    ``n_iter`` Griffin-Lim iterations for the phase.
    """
    import librosa
    from pipeline.masks import mel_to_linear_power
    mel_scaled = np.asarray(mel_patch, np.float32).reshape(cfg.n_mels, -1)
    power = db_to_power(unscale_db(np.clip(mel_scaled, 0.0, 1.0), cfg))
    magnitude = np.sqrt(mel_to_linear_power(power, mel_basis(cfg), method="pinv")).astype(np.float32)
    audio = librosa.griffinlim(magnitude, n_iter=n_iter, hop_length=cfg.hop_length, n_fft=cfg.n_fft, window="hann",
                               center=True, length=(mel_scaled.shape[1] - 1) * cfg.hop_length,
                               random_state=0)
    return audio.astype(np.float32)


def save_mel_wavs(mel_patches: np.ndarray, cfg: MelConfig, path_prefix: str | Path) -> list[Path]:
    """Each patch of ``[N, n_mels, frames, 1]`` as ``<path_prefix>_<i>.wav`` (Griffin-Lim); returns the paths."""
    paths = []
    for i, patch in enumerate(mel_patches):
        path = Path(f"{path_prefix}_{i}.wav")
        save_audio(path, mel_patch_to_audio(patch, cfg), cfg.sample_rate)
        paths.append(path)
    return paths
