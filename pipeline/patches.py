"""Cutting spectrograms into fixed-size patches and stitching them back without seams.

A spectrogram ``[n_rows, n_frames]`` is cut into patches ``[n_patches, n_rows, patch_frames]`` at a
hop of ``hop_frames``; the end is padded (with ``pad_value``) so every frame is covered. Stitching
overlap-adds the patches with a window that is flat where only one patch covers a frame and
cross-fades linearly where two overlap, then divides by the summed weights: stitching the cut of
any array gives it back exactly, whatever the hop.

Where overlapping patches were estimated independently (BASIS separates each patch on its own), they
hold different estimates of the same frames, and a blend of two estimates is often worse than either.
Given a score per patch frame (lower is better: the priors' −log density of each frame's estimate),
stitching can prefer, segment by segment (``hop_frames`` frames each), the patch that scores best there:
each patch's cross-fade weight is multiplied by a softmax over the patches covering the segment of
−(mean frame score · segment length) / ``temperature``. Equal scores give the plain cross-fade, a
temperature near 0 a hard pick.
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


def crossfade_weights(n_patches: int, patch_frames: int, hop_frames: int) -> np.ndarray:
    """``[n_patches, patch_frames]`` overlap-add weights: linear cross-fades, none before the first patch or
    after the last."""
    weights = np.tile(_crossfade_window(patch_frames, hop_frames), (n_patches, 1))
    weights[0, : patch_frames - hop_frames] = 1.0                                   # nothing before the first patch
    weights[-1, hop_frames:] = np.maximum(weights[-1, hop_frames:], 1.0)           # nothing after the last one
    return weights


def selection_weights(scores: np.ndarray, n_frames: int, hop_frames: int, temperature: float) -> np.ndarray:
    """``[n_patches, patch_frames]`` factors that favour, in every ``hop_frames`` segment, the patch with the
    lowest score there (module docstring); ``scores [n_patches, patch_frames]``, only frames < ``n_frames`` count."""
    n_patches, patch_frames = scores.shape
    frames = np.arange(n_patches)[:, None] * hop_frames + np.arange(patch_frames)[None]   # [n_patches, patch_frames]
    segments = frames // hop_frames
    n_segments = int(segments.max()) + 1
    valid = frames < n_frames
    rows = np.broadcast_to(np.arange(n_patches)[:, None], frames.shape)
    total = np.zeros((n_patches, n_segments))
    count = np.zeros((n_patches, n_segments))
    np.add.at(total, (rows[valid], segments[valid]), scores[valid])
    np.add.at(count, (rows[valid], segments[valid]), 1.0)
    covered = count > 0
    mean = np.where(covered, total / np.maximum(count, 1.0), np.inf)                  # [n_patches, n_segments]
    best = mean.min(axis=0, keepdims=True)
    energy = np.where(covered, (mean - np.where(np.isfinite(best), best, 0.0)) * hop_frames / temperature, 0.0)
    preference = np.where(covered, np.exp(-energy), 0.0)
    norm = preference.sum(axis=0, keepdims=True)
    # segments wholly past n_frames (the padded end) hold no valid frame: their weights are left alone
    preference = np.where(norm > 0, preference / np.maximum(norm, 1e-300) * covered.sum(axis=0, keepdims=True), 1.0)
    return preference[rows, segments]


def stitch_patches(patches: np.ndarray, n_frames: int, hop_frames: int, scores: np.ndarray | None = None,
                   temperature: float = 50.0) -> np.ndarray:
    """Inverse of :func:`cut_patches`: patches ``[n_patches, n_rows, patch_frames]`` -> ``[n_rows, n_frames]``.

    ``scores [n_patches, patch_frames]`` (lower is better, e.g. nats): where patches overlap, prefer the one
    that scores best in each segment (:func:`selection_weights`, ``temperature`` in the scores' units);
    ``None``: the plain cross-fade.
    """
    n_patches, n_rows, patch_frames = patches.shape
    weights = crossfade_weights(n_patches, patch_frames, hop_frames)
    if scores is not None:
        if np.shape(scores) != (n_patches, patch_frames):
            raise ValueError(f"scores of shape {np.shape(scores)} for {n_patches} patches of {patch_frames} frames")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        weights = weights * selection_weights(np.asarray(scores, np.float64), n_frames, hop_frames, temperature)
    total = (n_patches - 1) * hop_frames + patch_frames
    acc = np.zeros((n_rows, total), dtype=np.float64)
    weight = np.zeros(total, dtype=np.float64)
    for i in range(n_patches):
        s = i * hop_frames
        acc[:, s:s + patch_frames] += patches[i] * weights[i]
        weight[s:s + patch_frames] += weights[i]
    return (acc[:, :n_frames] / weight[:n_frames]).astype(patches.dtype)
