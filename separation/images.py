"""Superposed-image separation, as in the BASIS paper: mixtures m = (x_1 + x_2) / 2 of test images.

PSNR of a separated pair is taken for the better of the two orderings (the priors are exchangeable),
averaged over the two images; images are in [0, 1], so PSNR = −10 log10(MSE).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.audio_io import atomic_output
from pipeline.plotting import pyplot, save_figure


def make_image_mixtures(images: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``[2, n_pairs, H, W, C]`` of distinct test images and their mixtures ``[n_pairs, H, W, C]``."""
    order = np.random.default_rng(seed).permutation(len(images))[: 2 * n_pairs]
    pairs = np.stack([images[order[:n_pairs]], images[order[n_pairs:]]])
    return pairs, pairs.mean(axis=0)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR in dB per image of ``[N, H, W, C]`` arrays in [0, 1]."""
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    return -10 * np.log10(np.maximum(mse, 1e-10))


def pair_psnr(truth: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Per pair ``[N]``: mean PSNR of the two images for the better ordering; inputs ``[2, N, H, W, C]``."""
    same = (psnr(truth[0], estimates[0]) + psnr(truth[1], estimates[1])) / 2
    swapped = (psnr(truth[0], estimates[1]) + psnr(truth[1], estimates[0])) / 2
    return np.maximum(same, swapped)


def plot_image_separation(mixtures: np.ndarray, truth: np.ndarray, estimates: np.ndarray, path: str | Path,
                          n_show: int = 8, title: str = "") -> None:
    """Columns: pairs; rows: mixture, truth 1, truth 2, estimate 1, estimate 2."""
    plt = pyplot()
    n = min(n_show, len(mixtures))
    rows = [("mixture", mixtures), ("truth 1", truth[0]), ("truth 2", truth[1]), ("estimate 1", estimates[0]), ("estimate 2", estimates[1])]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.4 * len(rows)), squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n):
            image = np.clip(images[j], 0, 1)
            axes[i, j].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=100)


def write_image_report(path: str | Path, scores: np.ndarray, extra: dict) -> dict:
    """JSON with the PSNR mean/median/per pair and the settings; returns the summary."""
    summary = {"psnr_mean": float(np.mean(scores)), "psnr_median": float(np.median(scores)), "n_pairs": int(len(scores)), **extra}
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(json.dumps({**summary, "psnr_per_pair": [round(float(s), 3) for s in scores]}, indent=1) + "\n")
    return summary
