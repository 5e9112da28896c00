#!/usr/bin/env python
"""Median SDR against the mask exponent: how sharp the separation masks should be.

Both BASIS (its separated mels, through ``melspec_inversion_basis.py``'s Wiener route) and supervised NMF turn
source estimates into masks ``|S_j|^a / Σ_k |S_k|^a`` on the mixture STFT; ``a = 2`` is the power ratio (the
Wiener filter, the default of both), larger ``a`` tends to the binary mask. This re-inverts separated-mel
folders that ``run_basis_sep.py`` / ``bench/separation.py`` wrote and re-runs an NMF model (no new
separation), scores everything with BSS Eval v4, and writes ``OUT/masks.md`` / ``.json``.

    python bench/masks.py --data data/demo/wav/test --sep BASIS-ncsn=results/demo/estimates/_mels_BASIS-ncsn \\
        --nmf-model pretrained/nmf/model.npz --exponents 1 2 3 4 --out results/masks
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import UserError, run_cli  # noqa: E402

SOURCES = ("piano", "violin")


def parse_labelled(specs: Sequence[str]) -> dict[str, Path]:
    out = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise UserError(f"--sep: expected LABEL=FOLDER, got {spec!r}")
        out[label] = Path(path)
    return out


def estimate_folders(data: Path, seps: dict[str, Path], nmf_model: str | None, exponents: Sequence[float],
                     work: Path) -> dict[tuple[str, float], Path]:
    """Writes the per-source estimate wavs of every (method, exponent) under ``work``; returns their folders."""
    from separation import nmf
    from separation.inversion import InversionConfig, invert_folder
    folders = {}
    model = nmf.NMFModel.load(nmf_model) if nmf_model else None
    for a in exponents:
        for label, sep_dir in seps.items():
            folders[label, a] = work / f"{label}_a{a:g}"
            invert_folder(sep_dir, folders[label, a], InversionConfig(mask_exponent=a), layout="per-source",
                          mixture_dir=data / "mix", progress=False)
        if model is not None:
            folders["NMF", a] = work / f"NMF_a{a:g}"
            sharpened = nmf.NMFModel(dataclasses.replace(model.config, mask_exponent=a), model.dictionaries, model.info)
            nmf.separate_folder(sharpened, data, folders["NMF", a], progress=False)
    return folders


def table(rows: list[dict]) -> str:
    lines = ["| method | mask exponent a | SDR piano | SDR violin |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['exponent']:g} | {r['sdr']['piano']:.2f} | {r['sdr']['violin']:.2f} |" for r in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder with {mix,piano,violin}/*.wav (the separated mixtures)")
    p.add_argument("--sep", nargs="*", default=[], metavar="LABEL=FOLDER", help="separated-mel folders to re-invert")
    p.add_argument("--nmf-model", default=None, help="an NMF model (.npz from python -m separation.nmf train) to re-run")
    p.add_argument("--exponents", nargs="+", type=float, default=[1.0, 2.0, 3.0, 4.0], help="mask exponents a")
    p.add_argument("--out", default="results/masks", type=Path, help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    import bss_eval_v4
    seps = parse_labelled(a.sep)
    if not seps and not a.nmf_model:
        raise UserError("nothing to evaluate: give --sep LABEL=FOLDER and/or --nmf-model")
    if any(x <= 0 for x in a.exponents):
        raise UserError(f"--exponents: must be positive, got {a.exponents}")
    folders = dict(sorted(estimate_folders(a.data, seps, a.nmf_model, a.exponents, a.out / "estimates").items()))
    summaries = bss_eval_v4.evaluate_methods(a.data, folders, progress=False)[1]
    rows = [{"method": method, "exponent": exponent, "sdr": {s: summaries[method, exponent][s]["SDR"] for s in SOURCES}}
            for method, exponent in folders]
    text = table(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "masks.json").write_text(json.dumps({"data": str(a.data), "sep": {k: str(v) for k, v in seps.items()},
                                                  "nmf_model": a.nmf_model, "rows": rows}, indent=1) + "\n")
    (a.out / "masks.md").write_text(f"Median SDR (BSS Eval v4) on {a.data} against the mask exponent\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
