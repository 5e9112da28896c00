"""Per-track SDR across evaluation sets and Langevin draws: collect them, tabulate them, pool them.

``per_track.json`` maps ``estimate label -> set name -> track -> {piano, violin}`` (SDR in dB, the BSS Eval v4
median over 1-s frames of one track). Three sub-commands:

    # copy one method's per-track SDR out of a bench/separation.py or bss_eval_v4.py report
    python tools/spread_table.py add --report results/demo/separation.json --method BASIS-ncsn \\
        --set demo8 --label "BASIS fp32 seed 0" --table results/eval_spread/per_track.json
    # per_track.md: one table per set (tracks, median, mean), then every set pooled
    python tools/spread_table.py render --table results/eval_spread/per_track.json --out results/eval_spread/per_track.md
    # B - A per track, for pairs of labels that share sets (the same seed, another prior or schedule), pooled
    python tools/spread_table.py paired --table results/eval_spread/per_track.json \\
        --pair "BASIS shipped seed 0" "BASIS new seed 0" --pair "BASIS shipped seed 1" "BASIS new seed 1"

The pooled table lists, per estimate label, the median and mean over all tracks of the sets that label has,
and names those sets, so a row pooled over fewer sets is never read as the same ruler as a longer one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.audio_io import atomic_output  # noqa: E402
from pipeline.errors import UserError, read_json, run_cli  # noqa: E402

SOURCES = ("piano", "violin")


def per_track_sdr(report: dict, method: str, path: Path) -> dict[str, dict[str, float]]:
    """``{track: {source: SDR}}`` of ``method`` in a BSS Eval report (``{"per_track": {method: {track: ...}}}``)."""
    tracks = report.get("per_track", {})
    if method not in tracks:
        raise UserError(f"{path}: no method {method!r}; it has {', '.join(tracks) or 'none'}")
    return {track: {s: round(float(scores[s]["SDR"]), 2) for s in SOURCES} for track, scores in tracks[method].items()}


def summary(values: Sequence[dict[str, float]]) -> tuple[str, str]:
    """``('median piano / violin', 'mean piano / violin')`` over tracks, NaN tracks left out."""
    cols = {s: np.array([v[s] for v in values], dtype=float) for s in SOURCES}
    med = " / ".join(f"{np.nanmedian(cols[s]):.2f}" for s in SOURCES)
    mean = " / ".join(f"{np.nanmean(cols[s]):.2f}" for s in SOURCES)
    return med, mean


def render(table: dict) -> str:
    """Markdown: a per-track table for every set, then the pooled medians of every label."""
    sets = list(dict.fromkeys(name for by_set in table.values() for name in by_set))
    lines = []
    for name in sets:
        labels = [label for label in table if name in table[label]]
        tracks = list(dict.fromkeys(t for label in labels for t in table[label][name]))
        short = [Path(t).stem for t in tracks]
        lines += [f"{name}: SDR piano / violin per track, then the median and the mean over tracks", "",
                  "| estimate | " + " | ".join(short) + " | median | mean |",
                  "|---|" + "---|" * (len(tracks) + 2)]
        for label in labels:
            scores = table[label][name]
            cells = [" / ".join(f"{scores[t][s]:.1f}" for s in SOURCES) if t in scores else "–" for t in tracks]
            med, mean = summary([scores[t] for t in tracks if t in scores])
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {med} | {mean} |")
        lines.append("")
    lines += ["Every set of a label pooled: median and mean SDR piano / violin over all its tracks", "",
              "| estimate | sets | tracks | median | mean |", "|---|---|---|---|---|"]
    for label, by_set in table.items():
        values = [v for scores in by_set.values() for v in scores.values()]
        med, mean = summary(values)
        lines.append(f"| {label} | {' + '.join(by_set)} | {len(values)} | {med} | {mean} |")
    return "\n".join(lines) + "\n"


def paired(table: dict, pairs: Sequence[tuple[str, str]], sets: Sequence[str] | None = None) -> str:
    """Markdown: the per-track difference B − A (SDR, dB) of every label pair on the sets both labels have.

    One row per pair and set (medians of A and B, mean difference), then the differences pooled per set name and
    over everything: mean ± standard error, and on how many tracks B is ahead. Tracks are matched by name, so A
    and B must be runs on the same mixtures; a pair is most informative when only one thing differs (same seed).
    ``sets`` keeps only those evaluation sets (e.g. the held-out ones a decision rule names).
    """
    for a, b in pairs:
        for label in (a, b):
            if label not in table:
                raise UserError(f"no label {label!r} in the table; it has {len(table)} labels (see its render)")
    lines = ["| A | B | set | tracks | A median | B median | mean B − A |", "|---|---|---|---|---|---|---|"]
    pooled: dict[str, dict[str, list[float]]] = {}
    for a, b in pairs:
        shared = [name for name in table[a] if name in table[b] and (sets is None or name in sets)]
        if not shared:
            raise UserError(f"labels {a!r} and {b!r} share no evaluation set" + (f" among {', '.join(sets)}" if sets else ""))
        for name in shared:
            tracks = [t for t in table[a][name] if t in table[b][name]]
            diff = {s: np.array([table[b][name][t][s] - table[a][name][t][s] for t in tracks]) for s in SOURCES}
            med_a, _ = summary([table[a][name][t] for t in tracks])
            med_b, _ = summary([table[b][name][t] for t in tracks])
            mean = " / ".join(f"{np.nanmean(diff[s]):+.2f}" for s in SOURCES)
            lines.append(f"| {a} | {b} | {name} | {len(tracks)} | {med_a} | {med_b} | {mean} |")
            for key in (name, "all"):
                for s in SOURCES:
                    pooled.setdefault(key, {src: [] for src in SOURCES})[s] += list(diff[s])
    lines += ["", "Pooled B − A per track: mean ± standard error, tracks where B is ahead", "",
              "| set | track-draws | piano | violin | B ahead (piano / violin) |", "|---|---|---|---|---|"]
    for key in [k for k in pooled if k != "all"] + ["all"]:
        d = {s: np.array(pooled[key][s])[~np.isnan(pooled[key][s])] for s in SOURCES}      # NaN tracks left out
        se = {s: np.std(d[s], ddof=1) / np.sqrt(len(d[s])) if len(d[s]) > 1 else float("nan") for s in SOURCES}
        cells = " | ".join(f"{np.mean(d[s]):+.2f} ± {se[s]:.2f}" for s in SOURCES)
        n = " / ".join(str(len(d[s])) for s in SOURCES)
        ahead = " / ".join(str(int(np.sum(d[s] > 0))) for s in SOURCES)
        lines.append(f"| {key} | {n} | {cells} | {ahead} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="copy one method's per-track SDR from a BSS Eval report into the table")
    add.add_argument("--report", required=True, help="separation.json of bench/separation.py (or bss_eval_v4.py's STEM.json)")
    add.add_argument("--method", required=True, help="method name in the report, e.g. BASIS-ncsn or NMF")
    add.add_argument("--set", required=True, help="name of the evaluation set, e.g. demo8")
    add.add_argument("--label", required=True, help="row label in the table, e.g. 'BASIS fp32 seed 0'")
    add.add_argument("--table", required=True, help="per_track.json to update (created if missing)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing label/set entry")
    ren = sub.add_parser("render", help="write the markdown tables")
    ren.add_argument("--table", required=True, help="per_track.json")
    ren.add_argument("--out", required=True, help="markdown file to write")
    par = sub.add_parser("paired", help="per-track differences between labels run on the same mixtures")
    par.add_argument("--table", required=True, help="per_track.json")
    par.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"),
                     help="two labels; the table shows B - A (repeat for more pairs, e.g. one per seed)")
    par.add_argument("--sets", nargs="+", default=None, help="only these evaluation sets (default: every shared one)")
    par.add_argument("--out", default=None, help="markdown file to write as well as print")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    table_path = Path(args.table)
    if args.command == "add":
        table = read_json(table_path, "no such file") if table_path.exists() else {}
        report_path = Path(args.report)
        scores = per_track_sdr(read_json(report_path, "no such file"), args.method, report_path)
        if args.set in table.get(args.label, {}) and not args.replace:
            raise UserError(f"{table_path}: {args.label!r} already has set {args.set!r}; pass --replace to overwrite it")
        table.setdefault(args.label, {})[args.set] = scores
        with atomic_output(table_path) as tmp:
            tmp.write_text(json.dumps(table, indent=1) + "\n")
        print(f"{table_path}: {args.label} / {args.set}: {len(scores)} tracks")
    else:
        table = read_json(table_path, "no such file")
        text = render(table) if args.command == "render" else paired(table, args.pair, args.sets)
        if args.out:
            with atomic_output(Path(args.out)) as tmp:
                tmp.write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
