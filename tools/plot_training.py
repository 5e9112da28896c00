#!/usr/bin/env python
"""Training curves of one or more runs, read from their TensorBoard logs, as one figure and a table.

One panel per tag (e.g. ``eval/dsm_loss`` for NCSN, ``eval/bits_per_dim`` for Glow), one line per run; the
printed table gives each run's first and last logged value of each tag and the step of its minimum::

    python tools/plot_training.py --runs runs/prior_ncsn_piano runs/prior_ncsn_violin \\
        --tags eval/dsm_loss train/loss --out docs/img/ncsn_prior_training.png

Runs resumed several times log into several event files; the curves join them in step order (a step logged
twice keeps its last value).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import UserError, log, run_cli  # noqa: E402
from pipeline.plotting import pyplot, save_figure  # noqa: E402

Curve = list[tuple[int, float]]


def run_curves(run: Path, tags: Sequence[str]) -> dict[str, Curve]:
    """``{tag: [(step, value), ...]}`` of ``run``'s logs, ascending step, one value per step."""
    import train_utils
    log_dir = run / train_utils.LOG_DIR
    if not log_dir.is_dir():
        raise UserError(f"{run}: no {train_utils.LOG_DIR}/ folder (not a training run folder?)")
    scalars = train_utils.read_scalars(log_dir)
    missing = [tag for tag in tags if tag not in scalars]
    if missing:
        raise UserError(f"{run}: no scalar {', '.join(missing)} in its logs; it has {', '.join(sorted(scalars)) or 'none'}")
    return {tag: sorted(dict(scalars[tag]).items()) for tag in tags}


def summary_rows(curves: dict[str, dict[str, Curve]]) -> list[str]:
    """Markdown table: run, tag, first (step), last (step), minimum (step)."""
    rows = ["| run | tag | first | last | minimum |", "|---|---|---|---|---|"]
    for run, by_tag in curves.items():
        for tag, curve in by_tag.items():
            low = min(curve, key=lambda point: point[1])
            (s0, v0), (s1, v1) = curve[0], curve[-1]
            rows.append(f"| {run} | {tag} | {v0:.4g} (step {s0}) | {v1:.4g} (step {s1}) | {low[1]:.4g} (step {low[0]}) |")
    return rows


def plot(curves: dict[str, dict[str, Curve]], tags: Sequence[str], out: Path, log_y: bool) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tags), figsize=(5 * len(tags), 3.6), squeeze=False)
    for ax, tag in zip(axes[0], tags):
        for run, by_tag in curves.items():
            steps, values = zip(*by_tag[tag])
            ax.plot(steps, values, marker="." if len(steps) < 60 else None, label=run)
        ax.set(title=tag, xlabel="optimizer step", yscale="log" if log_y else "linear")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--runs", nargs="+", required=True, help="training run folders (each with logs/)")
    p.add_argument("--tags", nargs="+", default=["eval/dsm_loss", "train/loss"],
                   help="scalars to plot, one panel each (default: eval/dsm_loss train/loss)")
    p.add_argument("--out", required=True, help="figure path (.png)")
    p.add_argument("--log-y", action="store_true", help="logarithmic value axis")
    args = p.parse_args(argv)
    curves = {Path(run).name: run_curves(Path(run), args.tags) for run in args.runs}
    if len(curves) < len(args.runs):
        raise UserError(f"--runs: two runs share a folder name ({', '.join(args.runs)}); the legend needs distinct names")
    plot(curves, args.tags, Path(args.out), args.log_y)
    print("\n".join(summary_rows(curves)))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    run_cli(main)
