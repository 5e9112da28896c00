"""Time-frequency masks: ratio/binary masks from source magnitudes, and mel -> STFT-resolution masks.

Shapes: source magnitudes or powers ``[n_sources, n_bins, n_frames]``; mel powers
``[n_sources, n_mels, n_frames]``; a mixture STFT ``[n_bins, n_frames]`` (complex).

The mel route is what turns separated mel spectrograms into audio (and gives the mel-domain
oracle): each source's mel power is brought back to STFT resolution with the pseudo-inverse, a
non-negative least-squares fit, or the transpose of the mel filterbank, and the ratio of those
powers masks the mixture STFT (a single-channel Wiener filter).
"""
from __future__ import annotations

import numpy as np

EPS = 1e-12
MEL_INVERSES = ("pinv", "nnls", "transpose")


def ratio_masks(magnitudes: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``|S_j|^alpha / sum_k |S_k|^alpha``; alpha 1: magnitude ratio (IRM), 2: power ratio (Wiener)."""
    weighted = np.abs(magnitudes) ** alpha
    total = weighted.sum(axis=0, keepdims=True)
    n_sources = magnitudes.shape[0]
    return np.where(total > EPS, weighted / np.maximum(total, EPS), 1.0 / n_sources)


def binary_masks(magnitudes: np.ndarray, alpha: float = 1.0, theta: float = 0.5) -> np.ndarray:
    """1 where the source's ratio mask exceeds ``theta`` (0.5 with two sources: the dominant source)."""
    return (ratio_masks(magnitudes, alpha) > theta).astype(np.float32)


def mel_to_linear_power(mel_power: np.ndarray, basis: np.ndarray, method: str = "pinv") -> np.ndarray:
    """Mel power ``[..., n_mels, n_frames]`` -> non-negative STFT power ``[..., n_bins, n_frames]``.

    ``basis``: mel filterbank ``[n_mels, n_bins]``. ``pinv``: Moore-Penrose pseudo-inverse, negative
    values set to 0; ``nnls``: non-negative least squares (librosa.util.nnls); ``transpose``: ``basis.T``
    (a smooth interpolation; its overall scale is irrelevant to masks).
    """
    mel_power = np.asarray(mel_power, dtype=np.float64)
    if method == "pinv":
        return np.maximum(np.einsum("fm,...mt->...ft", np.linalg.pinv(basis.astype(np.float64)), mel_power), 0.0)
    if method == "transpose":
        return np.einsum("mf,...mt->...ft", basis.astype(np.float64), mel_power)
    if method == "nnls":
        import librosa
        flat = mel_power.reshape(-1, *mel_power.shape[-2:])
        out = np.stack([librosa.util.nnls(basis.astype(np.float64), m) for m in flat])
        return out.reshape(*mel_power.shape[:-2], basis.shape[1], mel_power.shape[-1])
    raise ValueError(f"unknown mel inverse {method!r}; choose one of {MEL_INVERSES}")


def fill_uncovered_bins(masks: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Copy, into STFT bins no mel band covers (below fmin, above fmax), the mask of the nearest covered bin."""
    covered = np.flatnonzero(basis.sum(axis=0) > 0)
    nearest = covered[np.clip(np.searchsorted(covered, np.arange(basis.shape[1])), 0, len(covered) - 1)]
    below = np.arange(basis.shape[1]) < covered[0]
    nearest[below] = covered[0]
    return masks[:, nearest, :]


def mel_ratio_masks(mel_powers: np.ndarray, basis: np.ndarray, method: str = "transpose") -> np.ndarray:
    """Wiener-style masks ``[n_sources, n_bins, n_frames]`` from source mel powers ``[n_sources, n_mels, n_frames]``."""
    linear = mel_to_linear_power(mel_powers, basis, method)
    return fill_uncovered_bins(ratio_masks(linear, alpha=1.0), basis)


def apply_masks(mix_stft: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Masked mixture STFTs ``[n_sources, n_bins, n_frames]``."""
    return masks * mix_stft[None]
