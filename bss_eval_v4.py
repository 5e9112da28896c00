"""BSS Eval v4 scores of separated piano/violin estimates, through ``museval.metrics`` (Stöter et al. 2018).

For each track, SDR/SIR/SAR/ISR are computed framewise (1 s windows, 1 s hops, time-invariant
distortion filters: BSS Eval v4 as in SiSEC 2018), the median is taken over frames (frames where a
reference is silent give NaN: they are dropped and counted), then over tracks.

Reference dither: synthetic stems have exact spectral holes (nothing above the SoundFont samples'
band, digital silence between notes), which makes museval's 512-tap projection ill-conditioned:
SIR/SAR/ISR then come out as large cancelling terms (e.g. IRM oracle SAR ≈ 0 dB with SDR ≈ 21 dB).
White noise at -100 dBFS (std 1e-5, seeded) added to the references regularises the projection;
SDR moves by < 0.1 dB and SIR/SAR/ISR become meaningful (IRM: SAR ≈ 21 dB). Set 0 to disable.

Folders: ``--references DIR`` holds ``{piano,violin}/NAME.wav`` (and ``mix/NAME.wav`` for the
mixture baseline); each ``--estimates [LABEL=]DIR`` holds ``{piano,violin}/NAME.wav``.

CLI: ``python bss_eval_v4.py --references data/wav/test --estimates results/oracles/* --mixture --out results/table``
writes ``table.json`` (per-track scores) and ``table.md`` (medians), and prints the table.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import atomic_output, list_audio, load_audio
from pipeline.errors import UserError, log, run_cli

SOURCES = ("piano", "violin")
METRICS = ("SDR", "SIR", "SAR", "ISR")


def _museval_metrics():
    try:
        import museval.metrics
    except RuntimeError as err:          # stempeg refuses to import without ffmpeg/ffprobe
        raise UserError(f"museval cannot be imported ({err}); run `make setup` (it installs Debian's ffmpeg)") from None
    return museval.metrics


REFERENCE_DITHER = 1e-5      # std of the white noise added to references (-100 dBFS); see module docstring


def framewise_scores(references: np.ndarray, estimates: np.ndarray, sample_rate: int,
                     window_seconds: float = 1.0, hop_seconds: float = 1.0,
                     reference_dither: float = REFERENCE_DITHER) -> dict[str, np.ndarray]:
    """BSS Eval v4 per frame: ``references``, ``estimates`` ``[n_sources, n_samples]`` (mono) or
    ``[n_sources, n_samples, n_channels]`` -> ``{metric: [n_sources, n_frames]}`` in dB (NaN: silent reference)."""
    refs = references[..., None] if references.ndim == 2 else references
    ests = estimates[..., None] if estimates.ndim == 2 else estimates
    assert refs.shape == ests.shape, f"shape mismatch {refs.shape} vs {ests.shape}"
    refs = refs.astype(np.float64)
    if reference_dither > 0:
        silent = ~np.any(refs, axis=(1, 2))              # keep silent references silent: their frames stay NaN
        dither = np.random.default_rng(0).normal(scale=reference_dither, size=refs.shape)
        refs = refs + dither * ~silent[:, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sdr, isr, sir, sar, _ = _museval_metrics().bss_eval(
            refs, ests.astype(np.float64), window=int(window_seconds * sample_rate),
            hop=int(hop_seconds * sample_rate), compute_permutation=False, framewise_filters=False,
            bsseval_sources_version=False)
    return {"SDR": sdr, "SIR": sir, "SAR": sar, "ISR": isr}


def track_scores(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> dict[str, dict]:
    """Per source: median over frames of each metric, frames counted and NaN frames dropped."""
    frames = framewise_scores(references, estimates, sample_rate)
    result = {}
    for j, source in enumerate(SOURCES[: len(references)]):
        values = {m: frames[m][j] for m in METRICS}
        nan = int(np.sum(~np.isfinite(values["SDR"])))
        result[source] = {m: (float(np.nanmedian(v)) if np.any(np.isfinite(v)) else float("nan")) for m, v in values.items()}
        result[source].update(n_frames=int(len(values["SDR"])), nan_frames=nan)
    return result


def _match_length(estimate: np.ndarray, n: int, path: Path) -> np.ndarray:
    if len(estimate) != n:
        log.warning("%s: %d samples, reference has %d; %s to match", path, len(estimate), n,
                    "trimmed" if len(estimate) > n else "zero-padded")
        estimate = estimate[:n] if len(estimate) > n else np.pad(estimate, (0, n - len(estimate)))
    return estimate


def evaluate_folder(ref_dir: str | Path, est_dir: str | Path | None, sample_rate: int, progress: bool = True) -> dict[str, dict]:
    """Scores of every reference track; ``est_dir=None`` scores the mixture itself as both estimates."""
    from tqdm import tqdm
    ref_dir = Path(ref_dir)
    names = [p.name for p in list_audio(ref_dir / SOURCES[0], "reference wavs")]
    scores = {}
    for name in tqdm(names, desc=f"bss_eval {Path(est_dir).name if est_dir else 'mixture'}", disable=not progress, leave=False):
        refs = [load_audio(ref_dir / s / name, sample_rate) for s in SOURCES]
        n = min(len(r) for r in refs)
        if any(len(r) != n for r in refs):
            log.warning("%s: references differ in length; trimmed to %d samples", name, n)
        refs = np.stack([r[:n] for r in refs])
        if est_dir is None:
            mix_path = ref_dir / "mix" / name
            ests = np.stack([_match_length(load_audio(mix_path, sample_rate), n, mix_path)] * len(SOURCES))
        else:
            paths = [Path(est_dir) / s / name for s in SOURCES]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise UserError(f"{missing[0]}: estimate missing for reference {ref_dir / SOURCES[0] / name}")
            ests = np.stack([_match_length(load_audio(p, sample_rate), n, p) for p in paths])
        for source, ref in zip(SOURCES, refs):
            if not np.any(ref):
                log.warning("%s: silent %s reference; its frames are NaN and dropped", name, source)
        scores[name] = track_scores(refs, ests, sample_rate)
    return scores


def summarize(scores: dict[str, dict]) -> dict[str, dict]:
    """Median over tracks of the per-track medians, per source; NaN frames summed."""
    summary = {}
    for source in SOURCES:
        rows = [track[source] for track in scores.values()]
        summary[source] = {m: float(np.nanmedian([r[m] for r in rows])) if any(np.isfinite(r[m]) for r in rows) else float("nan")
                           for m in METRICS}
        summary[source].update(tracks=len(rows), nan_frames=sum(r["nan_frames"] for r in rows),
                               frames=sum(r["n_frames"] for r in rows))
    return summary


def markdown_table(summaries: dict[str, dict], extra: dict[str, str] | None = None) -> str:
    """One row per (method, instrument): median SDR/SIR/SAR/ISR in dB; ``extra`` adds one column per method."""
    extra_name = next(iter(extra)) if extra else None
    header = "| method | instrument | SDR | SIR | SAR | ISR | tracks | NaN frames |" + (f" {extra_name} |" if extra else "")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for method, summary in summaries.items():
        for source in SOURCES:
            s = summary[source]
            row = f"| {method} | {source} | " + " | ".join(f"{s[m]:.2f}" for m in METRICS) + f" | {s['tracks']} | {s['nan_frames']}/{s['frames']} |"
            if extra:
                row += f" {extra[extra_name].get(method, '')} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def evaluate_methods(ref_dir: str | Path, estimates: dict[str, str | Path | None], sample_rate: int = 16000,
                     progress: bool = True) -> tuple[dict, dict]:
    """Per-track scores and summaries of every ``{label: estimate folder}`` (``None``: the mixture)."""
    per_track, summaries = {}, {}
    for label, folder in estimates.items():
        if folder is not None and not Path(folder).is_dir():
            raise UserError(f"{folder}: estimates folder not found")
        per_track[label] = evaluate_folder(ref_dir, folder, sample_rate, progress)
        summaries[label] = summarize(per_track[label])
    return per_track, summaries


def write_report(out: str | Path, per_track: dict, summaries: dict, extra: dict[str, str] | None = None) -> str:
    """Write ``out.json`` (per-track scores and medians) and ``out.md`` (the table); returns the table."""
    out = Path(out)
    table = markdown_table(summaries, extra)
    with atomic_output(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"median": summaries, "per_track": per_track}, indent=1) + "\n")
    with atomic_output(out.with_suffix(".md")) as tmp:
        tmp.write_text(table)
    return table


def parse_estimates(specs: Sequence[str]) -> dict[str, str]:
    """``LABEL=DIR`` or ``DIR`` (label: the folder name) -> ``{label: dir}``."""
    out = {}
    for spec in specs:
        label, _, folder = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        out[label] = folder
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--references", required=True, help="folder with {piano,violin}/*.wav (and mix/ for --mixture)")
    p.add_argument("--estimates", nargs="*", default=[], help="[LABEL=]DIR with {piano,violin}/*.wav; one table row pair each")
    p.add_argument("--mixture", action="store_true", help="add the mixture itself as a baseline row (references/mix/)")
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz; files at other rates are resampled")
    p.add_argument("--out", default="results/bss_eval", help="output path stem: writes STEM.json and STEM.md")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    estimates: dict[str, str | None] = {"mixture": None} if a.mixture else {}
    estimates.update(parse_estimates(a.estimates))
    if not estimates:
        raise UserError("nothing to evaluate: give --estimates DIR ... and/or --mixture")
    per_track, summaries = evaluate_methods(a.references, estimates, a.sample_rate)
    print(write_report(a.out, per_track, summaries))
    return 0


if __name__ == "__main__":
    run_cli(main)
