#!/usr/bin/env python
"""Separation quality against the cost of the annealing schedule: median SDR vs Langevin steps.

For each schedule ``T[:δ[:γ_scale]]`` of ``--schedules`` (T steps per noise level, step size δ, likelihood
scale; the levels are the priors' own σ schedule, L of them; δ and γ default to the priors' basis.json),
BASIS separates every mixture of ``--data`` (``{mix,piano,violin}/*.wav``), the separated mels are inverted
with Wiener masks, and BSS Eval v4 scores them. Writes ``OUT/schedule.json`` / ``.md`` (median SDR per
instrument, wall time per second of audio, for L×T) and ``OUT/schedule.png`` (SDR against L·T, with the
mixture as a floor), so the cheapest schedule that keeps the quality can be picked.

    python bench/schedule.py --data runs/eval_subset --ncsn pretrained/ncsn_piano pretrained/ncsn_violin \\
        --schedules 2 5 10 20 5:2e-5 10:2e-5 --out results/schedule
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.separation import audio_seconds, run_basis  # noqa: E402
from pipeline.errors import UserError, run_cli  # noqa: E402
from pipeline.mel import MelConfig  # noqa: E402
from pipeline.plotting import pyplot, save_figure  # noqa: E402

SOURCES = ("piano", "violin")


def plot(rows: list[dict], mixture: dict, title: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for source, colour in zip(SOURCES, ("tab:blue", "tab:orange")):
        for (lr, gamma), style in zip(sorted({(r["step_lr"], r["gamma_scale"]) for r in rows}, reverse=True), ("o-", "s--", "^-.", "d:")):
            chosen = [r for r in rows if (r["step_lr"], r["gamma_scale"]) == (lr, gamma)]
            ax.plot([r["total_steps"] for r in chosen], [r["sdr"][source] for r in chosen], style, color=colour,
                    label=f"BASIS {source}, δ={lr:g}, γ×{gamma:g}")
        ax.axhline(mixture[source], color=colour, ls=":", lw=1, label=f"mixture {source}")
    ax.set_xscale("log")
    ax.set_xlabel("Langevin steps L·T")
    ax.set_ylabel("median SDR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def parse_schedule(text: str) -> tuple[int, float | None, float | None]:
    """``"T"``, ``"T:δ"`` or ``"T:δ:γ"`` → ``(T, δ or None, γ or None)``."""
    parts = text.split(":")
    try:
        steps = int(parts[0])
        lr, gamma = (float(parts[i]) if len(parts) > i else None for i in (1, 2))
    except ValueError:
        raise UserError(f"--schedules {text}: expected T[:δ[:γ]] such as 10 or 10:1e-4 or 10:1e-4:1") from None
    if steps < 1 or len(parts) > 3 or (lr is not None and lr <= 0) or (gamma is not None and gamma <= 0):
        raise UserError(f"--schedules {text}: T >= 1, δ > 0 and γ > 0 expected")
    return steps, lr, gamma


def main(argv: Sequence[str] | None = None) -> int:
    from bss_eval_v4 import evaluate_methods
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    p.add_argument("--prior", default="ncsn", choices=("ncsn", "glow", "noisy_glow"), help="prior family")
    p.add_argument("--ncsn", "--runs", dest="runs", nargs=2, required=True, metavar=("PIANO_RUN", "VIOLIN_RUN"),
                   help="run folders of the two priors")
    p.add_argument("--schedules", nargs="+", default=["2", "5", "10", "20"], metavar="T[:δ[:γ]]",
                   help="schedules to compare: steps per level, optionally step size δ and γ scale")
    p.add_argument("--batch-size", type=int, default=16, help="patches per compiled call")
    p.add_argument("--hop-frames", type=int, help="hop between patches (default: half a patch)")
    p.add_argument("--seed", type=int, default=0, help="BASIS seed")
    p.add_argument("--out", default="results/schedule", help="output folder")
    args = p.parse_args(argv)
    data_dir, out = Path(args.data), Path(args.out)
    if not (data_dir / "mix").is_dir():
        raise UserError(f"{data_dir}: expected {{mix,piano,violin}}/*.wav triplets")
    schedules = [parse_schedule(text) for text in args.schedules]
    from run_basis_sep import tuned_settings
    from separation.basis import BasisConfig
    tuned = tuned_settings(args.runs[0])
    default_lr, default_gamma = tuned.get("step_lr", BasisConfig.step_lr), tuned.get("gamma_scale", BasisConfig.gamma_scale)
    from separation.priors import load_prior
    own_levels = load_prior(args.prior, args.runs[0]).sigma_levels
    n_levels = len(own_levels) if own_levels is not None else 10          # a clean flow: run_basis_sep's default
    seconds = audio_seconds(data_dir, MelConfig())
    est_root = out / "estimates"
    rows = []
    _, baseline = evaluate_methods(data_dir, {"mixture": None}, progress=False)
    mixture = {s: baseline["mixture"][s]["SDR"] for s in SOURCES}
    for steps, lr, gamma in schedules:
        lr, gamma = lr or default_lr, gamma or default_gamma
        label = f"T{steps}_lr{lr:g}_g{gamma:g}"
        wall = run_basis(data_dir, est_root, args.prior, *args.runs, steps, args.batch_size, args.seed,
                         label=label, hop_frames=args.hop_frames, extra=["--step-lr", str(lr), "--gamma-scale", str(gamma)])
        _, summary = evaluate_methods(data_dir, {label: est_root / label}, progress=False)
        rows.append({"levels": n_levels, "steps_per_level": steps, "step_lr": lr, "gamma_scale": gamma,
                     "total_steps": n_levels * steps, "sdr": {s: summary[label][s]["SDR"] for s in SOURCES},
                     "seconds_per_audio_second": wall / seconds})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| schedule L×T | δ | γ scale | steps | SDR piano | SDR violin | s per s of audio |", "|---|---|---|---|---|---|---|",
             f"| mixture | – | – | 0 | {mixture['piano']:.2f} | {mixture['violin']:.2f} | 0 |"]
    lines += [f"| {r['levels']}×{r['steps_per_level']} | {r['step_lr']:g} | {r['gamma_scale']:g} | {r['total_steps']} | {r['sdr']['piano']:.2f} | "
              f"{r['sdr']['violin']:.2f} | {r['seconds_per_audio_second']:.2f} |" for r in rows]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "schedule.json").write_text(json.dumps({"data": str(data_dir), "prior": args.prior, "runs": args.runs,
                                                   "audio_seconds": seconds, "mixture": mixture, "rows": rows}, indent=1) + "\n")
    (out / "schedule.md").write_text(f"{args.prior} priors {' + '.join(args.runs)} on {data_dir} ({seconds:.0f} s of audio)\n\n{table}\n")
    plot(rows, mixture, f"BASIS-{args.prior}, {data_dir.name}, {seconds:.0f} s of audio", out / "schedule.png")
    print(table)
    return 0


if __name__ == "__main__":
    run_cli(main)
