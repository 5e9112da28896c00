#!/usr/bin/env python
"""Score ways of stitching overlapping BASIS patches, from one separation.

BASIS separates a long mel spectrogram as overlapping patches (hop: half a patch), each on its own, so every
overlap holds two independent estimates of the same frames. This separates a folder once, records every
patch and its per-frame density bound (:meth:`separation.basis.BasisSeparator.frame_neg_log_densities`),
and stitches the same patches several ways: the even cross-fade; ``--stitch select`` at each temperature
(each overlap weighted towards the patch the priors find more probable there); a hard pick (temperature
→ 0); and, as controls that use no density, hard picks at random. Each is Wiener-inverted and scored with
BSS Eval v4: the rows differ only in the stitching.

    python bench/stitch.py --data data/demo/wav/test --seed 0 --out results/stitch/demo8_seed0

Writes ``OUT/stitch.md`` (median and mean SDR over tracks) and ``OUT/stitch.json`` (per track).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_report  # noqa: E402
from pipeline.errors import run_cli  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
HARD = 1e-3                     # a temperature (nats) far below any bound difference: a hard pick


class RecordedPatches:
    """A separator that returns the base one's sources (stitched by cross-fade) and records, per call, the
    sources ``[S, B, H, W, C]`` and their per-frame bound ``[B, W]``."""

    def __init__(self, separator):
        self.base = separator
        self.priors = separator.priors
        self.config = dataclasses.replace(separator.config, stitch="crossfade")
        self.records: list[tuple[np.ndarray, np.ndarray]] = []
        self.score_seconds = 0.0

    def separate(self, mixture, seed: int = 0):
        sources = self.base.separate(mixture, seed)
        start = time.perf_counter()
        scores = self.base.frame_neg_log_densities(sources, seed).numpy()
        self.score_seconds += time.perf_counter() - start
        self.records.append((sources.numpy()[..., 0], scores))
        return sources


def variants(temperatures: Sequence[float], random_draws: int) -> list[tuple[str, str, float | None]]:
    """(label, score source, temperature) rows: cross-fade, select at each temperature, hard pick, random picks."""
    rows = [("crossfade", "none", None)]
    rows += [(f"select, T = {t:g} nats", "bound", t) for t in temperatures]
    rows += [("select, hard pick", "bound", HARD)]
    rows += [(f"random hard pick {i + 1} (control)", f"random{i}", HARD) for i in range(random_draws)]
    return rows


def restitch(records, base_dir: Path, out_dir: Path, score_source: str, temperature: float | None, hop: int) -> None:
    """Write every mixture of ``base_dir`` again under ``out_dir``, its recorded patches stitched as asked."""
    from pipeline.patches import patch_starts, stitch_patches
    from pipeline.preprocessing import save_mel
    patches = np.concatenate([p for p, _ in records], axis=1)           # [S, N_padded, H, W]
    scores = np.concatenate([s for _, s in records], axis=0)            # [N_padded, W]
    if score_source.startswith("random"):       # one random score per patch: a random hard pick in each overlap
        rng = np.random.default_rng(int(score_source[6:]))
        scores = np.repeat(rng.normal(size=(len(scores), 1)), scores.shape[1], axis=1)
    offset = 0
    for folder in sorted(p for p in base_dir.iterdir() if (p / "meta.json").is_file()):
        n_frames = np.load(folder / "mix.npy").shape[1]
        n = len(patch_starts(n_frames, patches.shape[-1], hop))
        target = out_dir / folder.name
        for k, source in enumerate(("piano", "violin")):
            save_mel(target / f"{source}.npy", stitch_patches(patches[k, offset:offset + n], n_frames, hop,
                                                              None if score_source == "none" else scores[offset:offset + n],
                                                              temperature or 1.0))
        shutil.copy(folder / "mix.npy", target / "mix.npy")
        meta = json.loads((folder / "meta.json").read_text())
        meta["basis"].update(stitch="crossfade" if score_source == "none" else "select",
                             stitch_temperature=temperature, stitch_scores=score_source)
        (target / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        offset += n


def measure(args) -> tuple[list[dict], dict]:
    from bss_eval_v4 import evaluate_methods
    from run_basis_sep import build_parser as sep_parser, cli_flags, make_separator, mel_config_of
    from separation.audio import separate_folder
    from separation.inversion import InversionConfig, invert_folder
    from separation.mixing import MelDbMixing
    from separation.priors import load_prior
    data, out = Path(args.data), Path(args.out)
    priors = [load_prior("ncsn", run) for run in (args.piano, args.violin)]
    cfg = mel_config_of(args.piano)
    sep_args = sep_parser().parse_args(["--dataset", "digits", "--out", "-", "--stitch", "select"]
                                       + cli_flags({"--steps": args.steps, "--chains": args.chains,
                                                    "--selection-draws": args.selection_draws}))
    recorder = RecordedPatches(make_separator(priors, MelDbMixing(cfg), sep_args, args.piano))
    hop = args.hop_frames or cfg.patch_frames // 2
    scratch = out / "_mels"
    if scratch.exists():                        # this bench's own scratch: a finished folder would be skipped
        shutil.rmtree(scratch)
    start = time.perf_counter()
    separate_folder(sorted((data / "mix").glob("*.wav")), scratch / "base", recorder, cfg, args.batch_size, hop, args.seed)
    seconds = time.perf_counter() - start
    folders = {}
    for i, (label, source, temperature) in enumerate(variants(args.temperatures, args.random_draws)):
        mel_dir = scratch / f"v{i}"
        restitch(recorder.records, scratch / "base", mel_dir, source, temperature, hop)
        folders[label] = out / "wav" / f"v{i}"
        invert_folder(mel_dir, folders[label], InversionConfig(route="wiener"), layout="per-source", progress=False)
    per_track, summaries = evaluate_methods(data, folders, progress=False)
    rows = []
    for label in folders:
        sdr = {s: [per_track[label][t][s]["SDR"] for t in sorted(per_track[label])] for s in ("piano", "violin")}
        rows.append({"stitching": label, "median": {s: summaries[label][s]["SDR"] for s in sdr},
                     "mean": {s: float(np.mean(v)) for s, v in sdr.items()}, "per_track": sdr})
    extra = {"data": str(data), "priors": [args.piano, args.violin], "seed": args.seed, "hop_frames": hop,
             "basis": {k: getattr(recorder.base.config, k) for k in ("n_steps_per_level", "step_lr", "n_chains",
                                                                     "selection_draws")},
             "tracks": sorted(next(iter(per_track.values()))), "separation_seconds": seconds,
             "bound_seconds": recorder.score_seconds}
    return rows, extra


def table(rows: list[dict], extra: dict) -> str:
    lines = [f"{extra['data']}, seed {extra['seed']}, {len(extra['tracks'])} tracks, hop {extra.get('hop_frames', 32)} frames, "
             f"{extra['basis']['selection_draws']} bound draws per level; separation {extra['separation_seconds']:.0f} s, "
             f"of which the per-frame bound {extra['bound_seconds']:.0f} s", "",
             "| stitching | median SDR piano | violin | mean SDR piano | violin |", "|---|---|---|---|---|"]
    lines += [f"| {r['stitching']} | {r['median']['piano']:.2f} | {r['median']['violin']:.2f} | {r['mean']['piano']:.2f} | "
              f"{r['mean']['violin']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    p.add_argument("--piano", default=str(PRETRAINED / "ncsn_piano"), help="NCSN run folder of the piano prior")
    p.add_argument("--violin", default=str(PRETRAINED / "ncsn_violin"), help="NCSN run folder of the violin prior")
    p.add_argument("--temperatures", type=float, nargs="+", default=[20.0, 50.0, 100.0], help="select temperatures (nats)")
    p.add_argument("--random-draws", type=int, default=2, help="random hard-pick controls")
    p.add_argument("--steps", type=int, help="Langevin steps per level (default: the prior's basis.json)")
    p.add_argument("--chains", type=int, help="chains per patch (default: the prior's basis.json)")
    p.add_argument("--selection-draws", type=int, help="noise draws per σ level of the bound (default: basis.json)")
    p.add_argument("--hop-frames", type=int, help="hop between mel patches in frames (default: half a patch)")
    p.add_argument("--batch-size", type=int, default=16, help="patches per call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows, extra = measure(args)
    text = table(rows, extra)
    write_report(args.out, "stitch", {"rows": rows, **extra}, text)
    return 0


if __name__ == "__main__":
    run_cli(main)
