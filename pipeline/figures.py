"""Figures people look at: mel spectrograms of a mixture, its sources and their estimates.

CLI: ``python -m pipeline.figures --data DIR [--estimates LABEL=DIR ...] --out results/mels.png``
plots the first (or ``--name``) triplet of ``DIR/{mix,piano,violin}`` and, for each estimate folder,
its piano and violin estimates.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import load_audio
from pipeline.errors import UserError, run_cli
from pipeline.mel import MelConfig, mel_basis, mel_power, power_to_db
from pipeline.plotting import pyplot, save_figure
from pipeline.triplets import list_triplets, load_triplet


def plot_mel_grid(rows: dict[str, dict[str, np.ndarray]], cfg: MelConfig, path: str | Path, title: str = "",
                  max_seconds: float = 12.0) -> None:
    """One row per entry of ``rows`` (``{row label: {panel label: mel_db [n_mels, n_frames]}}``), saved as PNG."""
    plt = pyplot()
    n_rows = len(rows)
    n_cols = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 2.4 * n_rows), squeeze=False, sharex=True, sharey=True)
    max_frames = int(max_seconds * cfg.sample_rate / cfg.hop_length)
    image = None
    for i, (row_label, panels) in enumerate(rows.items()):
        for j in range(n_cols):
            ax = axes[i, j]
            if j >= len(panels):
                ax.axis("off")
                continue
            label, mel_db = list(panels.items())[j]
            mel_db = mel_db[:, :max_frames]
            seconds = mel_db.shape[1] * cfg.hop_length / cfg.sample_rate
            image = ax.imshow(mel_db, origin="lower", aspect="auto", cmap="magma", vmin=cfg.db_min, vmax=cfg.db_max,
                              extent=(0, seconds, 0, cfg.n_mels))
            ax.set_title(f"{row_label}: {label}" if label else row_label, fontsize=9)
            if j == 0:
                ax.set_ylabel("mel band")
            if i == n_rows - 1:
                ax.set_xlabel("time (s)")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="dB")
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=90)


def plot_separation(data_dir: str | Path, estimates: dict[str, str | Path], out: str | Path, cfg: MelConfig,
                    name: str | None = None) -> Path:
    """Mixture / truth / each method's estimates of one track, as a PNG at ``out``."""
    name = name or list_triplets(data_dir)[0]
    basis = mel_basis(cfg)
    to_db = lambda audio: power_to_db(mel_power(audio, cfg, basis), cfg)
    audio = load_triplet(data_dir, name, cfg.sample_rate)
    rows = {"mixture": {"": to_db(audio["mix"])},
            "truth": {"piano": to_db(audio["piano"]), "violin": to_db(audio["violin"])}}
    for label, folder in estimates.items():
        rows[label] = {s: to_db(load_audio(Path(folder) / s / name, cfg.sample_rate)) for s in ("piano", "violin")}
    plot_mel_grid(rows, cfg, out, title=name)
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    p.add_argument("--estimates", nargs="*", default=[], help="LABEL=DIR folders with {piano,violin}/*.wav")
    p.add_argument("--name", help="file name of the track to plot (default: the first)")
    p.add_argument("--out", required=True, help="output PNG")
    a = p.parse_args(argv)
    estimates = {}
    for spec in a.estimates:
        if "=" not in spec:
            raise UserError(f"--estimates {spec}: expected LABEL=DIR")
        label, folder = spec.split("=", 1)
        estimates[label] = folder
    print(plot_separation(a.data, estimates, a.out, MelConfig(), a.name))
    return 0


if __name__ == "__main__":
    run_cli(main)
