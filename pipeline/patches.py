"""Cutting spectrograms into fixed-size patches and stitching them back without seams.

A spectrogram ``[n_rows, n_frames]`` is cut into patches ``[n_patches, n_rows, patch_frames]`` at a
hop of ``hop_frames``; the end is padded (with ``pad_value``) so every frame is covered. Stitching
overlap-adds the patches with a window that is flat where only one patch covers a frame and
cross-fades linearly where two overlap, then divides by the summed weights: stitching the cut of
any array gives it back exactly, whatever the hop.
"""
from __future__ import annotations

import numpy as np


def patch_starts(n_frames: int, patch_frames: int, hop_frames: int) -> np.ndarray:
    """Start frames of the patches covering ``n_frames`` frames (the last one may run past the end)."""
    assert 0 < hop_frames <= patch_frames, "hop must be in 1..patch_frames"
    n_patches = max(1, int(np.ceil(max(n_frames - patch_frames, 0) / hop_frames)) + 1)
    return np.arange(n_patches) * hop_frames


def cut_patches(spec: np.ndarray, patch_frames: int, hop_frames: int, pad_value: float = 0.0) -> np.ndarray:
    """``spec [n_rows, n_frames]`` -> patches ``[n_patches, n_rows, patch_frames]`` (end padded with ``pad_value``)."""
    n_rows, n_frames = spec.shape
    starts = patch_starts(n_frames, patch_frames, hop_frames)
    padded_frames = starts[-1] + patch_frames
    padded = np.full((n_rows, padded_frames), pad_value, dtype=spec.dtype)
    padded[:, :n_frames] = spec
    return np.stack([padded[:, s:s + patch_frames] for s in starts])


def _crossfade_window(patch_frames: int, hop_frames: int) -> np.ndarray:
    overlap = patch_frames - hop_frames
    window = np.ones(patch_frames)
    if overlap > 0:
        ramp = (np.arange(overlap) + 0.5) / overlap
        window[:overlap] = ramp
        window[-overlap:] = ramp[::-1]
    return window


def stitch_patches(patches: np.ndarray, n_frames: int, hop_frames: int) -> np.ndarray:
    """Inverse of :func:`cut_patches`: patches ``[n_patches, n_rows, patch_frames]`` -> ``[n_rows, n_frames]``."""
    n_patches, n_rows, patch_frames = patches.shape
    window = _crossfade_window(patch_frames, hop_frames)
    total = (n_patches - 1) * hop_frames + patch_frames
    acc = np.zeros((n_rows, total), dtype=np.float64)
    weight = np.zeros(total, dtype=np.float64)
    for i in range(n_patches):
        s = i * hop_frames
        w = window.copy()
        if i == 0:                       # nothing before the first patch: no fade-in
            w[: patch_frames - hop_frames] = 1.0
        if i == n_patches - 1:           # nothing after the last one: no fade-out
            w[hop_frames:] = np.maximum(w[hop_frames:], 1.0)
        acc[:, s:s + patch_frames] += patches[i] * w
        weight[s:s + patch_frames] += w
    return (acc[:, :n_frames] / weight[:n_frames]).astype(patches.dtype)
