"""Evaluation in one command: every method on a folder of ``{mix,piano,violin}/*.wav`` triplets.

Methods: the mixture itself, supervised NMF, BASIS with each prior given (NCSN, Glow, noisy Glow; mel
separation + Wiener-mask inversion), the mel-domain oracle, IRM, IBM and MWF. Writes under ``--out``:
``separation.md`` / ``separation.json`` (BSS Eval v4 medians with wall time per second of audio),
``separation.png`` (mel spectrograms of one mixture, truth and every estimate) and the estimate wavs.

    python bench/separation.py --data data/demo/wav/test --nmf-train data/demo/wav \\
        --ncsn pretrained/ncsn_piano pretrained/ncsn_violin --out results/separation
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import UserError, log, run_cli  # noqa: E402
from pipeline.mel import MelConfig  # noqa: E402


def audio_seconds(data_dir: Path, cfg: MelConfig) -> float:
    import soundfile as sf
    from pipeline.triplets import list_triplets
    return sum(sf.info(str(data_dir / "mix" / name)).duration for name in list_triplets(data_dir))


def run_oracle_methods(data_dir: Path, est_root: Path, cfg: MelConfig) -> dict[str, float]:
    """IBM, IRM, MWF and the mel oracle; returns the wall time of each."""
    from oracle_systems import run_oracles
    timings = {}
    for method in ("mel_oracle", "IRM", "IBM", "MWF"):
        start = time.perf_counter()
        run_oracles(data_dir, est_root, cfg, methods=[method], progress=False)
        timings[method] = time.perf_counter() - start
    return timings


def run_basis(data_dir: Path, est_root: Path, kind: str, piano: str, violin: str, steps: int | None, batch_size: int = 16,
              seed: int = 0, jit: bool = False, label: str | None = None, hop_frames: int | None = None,
              extra: Sequence[str] = ()) -> float:
    """BASIS with ``kind`` priors + Wiener-mask inversion into ``est_root/<label>`` (default ``BASIS-<kind>``);
    returns the wall time of both."""
    import run_basis_sep
    from separation.inversion import InversionConfig, invert_folder
    label = label or f"BASIS-{kind}"
    sep_dir = est_root / f"_mels_{label}"
    start = time.perf_counter()
    run_basis_sep.main(["--dataset", "melspec", "--prior", kind, "--piano", piano, "--violin", violin,
                        "--input", str(data_dir / "mix"), "--out", str(sep_dir),
                        "--batch-size", str(batch_size), "--seed", str(seed)] + (["--jit"] if jit else [])
                       + run_basis_sep.cli_flags({"--steps": steps, "--hop-frames": hop_frames}) + list(extra))
    invert_folder(sep_dir, est_root / label, InversionConfig(route="wiener"), layout="per-source", progress=False)
    return time.perf_counter() - start


def run_nmf(data_dir: Path, est_root: Path, train_wav: str | None, model: str | None) -> float:
    from separation import nmf
    if model:
        nmf_model = nmf.NMFModel.load(model)
    else:
        nmf_model = nmf.train(train_wav, nmf.NMFConfig(), progress=False)
        nmf_model.save(est_root / "_nmf_model.npz")
    start = time.perf_counter()                      # time of the separation alone, as for the other methods
    nmf.separate_folder(nmf_model, data_dir, est_root / "NMF", progress=False)
    return time.perf_counter() - start


def basis_flags(args, kind: str) -> list[str]:
    """The ``run_basis_sep.py`` flags of the BASIS settings given on this command line, for priors of ``kind``
    (``--stitch`` and ``--refine-levels`` go to NCSN priors only: a flow's density does not split by frame, so flows
    cross-fade, and a flow has no levels to refine; ``--flow-inputs``, ``--score-rms-limit`` and ``--box-pull`` go
    to flows only)."""
    from run_basis_sep import cli_flags
    flow = kind != "ncsn"
    pull = [] if not flow or args.box_pull is None else ["--box-pull" if args.box_pull else "--no-box-pull"]
    return cli_flags({"--step-lr": args.step_lr, "--chains": args.chains, "--selection-draws": args.selection_draws,
                      "--select-after-levels": args.select_after_levels,
                      "--stitch": args.stitch if kind == "ncsn" else None,
                      "--refine-levels": args.refine_levels if kind == "ncsn" else None,
                      "--flow-inputs": args.flow_inputs if flow else None,
                      "--score-rms-limit": args.score_rms_limit if flow else None}) + pull


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    p.add_argument("--out", default="results/separation", help="output folder")
    p.add_argument("--nmf-train", help="wav folder with train/{piano,violin}/ to learn the NMF dictionaries from")
    p.add_argument("--nmf-model", help="NMF dictionaries already trained (.npz from `python -m separation.nmf train`)")
    for kind in ("ncsn", "glow", "noisy_glow"):
        p.add_argument(f"--{kind.replace('_', '-')}", nargs=2, metavar=("PIANO_RUN", "VIOLIN_RUN"),
                       help=f"BASIS with {kind} priors (run folders)")
    p.add_argument("--steps", type=int, help="BASIS Langevin steps per level (default: the priors' basis.json, else 100)")
    p.add_argument("--step-lr", type=float, metavar="DELTA", help="BASIS step size δ at the last level (default: the "
                   "priors' basis.json)")
    p.add_argument("--chains", type=int, help="BASIS chains per patch, the most probable kept (default: the priors' "
                   "basis.json, else 1)")
    p.add_argument("--selection-draws", type=int, help="BASIS with --chains: noise draws per σ level of the NCSN "
                   "density bound that ranks the chains (default: the priors' basis.json, else 8)")
    p.add_argument("--select-after-levels", type=int, help="BASIS with --chains: rank the chains after this many "
                   "annealing levels (default: the priors' basis.json, else on the final sources)")
    p.add_argument("--stitch", choices=("crossfade", "select"), help="BASIS-NCSN: how overlapping patches join "
                   "(default: the priors' basis.json, else crossfade; flows always cross-fade)")
    p.add_argument("--refine-levels", type=int, metavar="F", help="BASIS-NCSN: F - 1 interpolated σ levels between "
                   "each pair of trained ones (run_basis_sep.py --refine-levels; pair it with --steps; default: the "
                   "priors' basis.json, else 1)")
    p.add_argument("--flow-inputs", choices=("clip", "raw"), help="BASIS with flows: score the chain projected onto "
                   "[0, 1] or as it is (run_basis_sep.py --flow-inputs; default: the priors' basis.json, else clip)")
    p.add_argument("--score-rms-limit", type=float, metavar="C", help="BASIS with flows: cap σ·RMS(score) at C "
                   "(run_basis_sep.py --score-rms-limit; default: the priors' basis.json, else no cap)")
    p.add_argument("--box-pull", action=argparse.BooleanOptionalAction, default=None, help="BASIS with flows scoring "
                   "the projection onto [0, 1]: pull the chain back into it (run_basis_sep.py --box-pull; default: the "
                   "priors' basis.json, else off)")
    p.add_argument("--hop-frames", type=int, help="BASIS hop between mel patches in frames (default: half a patch)")
    p.add_argument("--batch-size", type=int, default=16, help="BASIS patches per compiled call")
    p.add_argument("--seed", type=int, default=0, help="BASIS seed")
    p.add_argument("--jit", action="store_true", help="XLA-compile the BASIS loop")
    p.add_argument("--from-nmf", action="store_true", help="also BASIS-NCSN started from NMF's estimates "
                   "(run_basis_sep.py --start-from; row BASIS-ncsn-from-NMF, its time includes NMF's)")
    p.add_argument("--start-level", type=int, metavar="L", help="with --from-nmf: the level the chains start at "
                   "(default: the NCSN priors' basis.json)")
    p.add_argument("--no-oracles", action="store_true", help="skip IBM/IRM/MWF/mel oracle")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from bss_eval_v4 import evaluate_methods, write_report
    from pipeline.figures import plot_separation
    from run_basis_sep import cli_flags
    args = build_parser().parse_args(argv)
    data_dir, out = Path(args.data), Path(args.out)
    if not (data_dir / "mix").is_dir():
        raise UserError(f"{data_dir}: expected {{mix,piano,violin}}/*.wav triplets")
    if args.from_nmf and not (args.ncsn and (args.nmf_train or args.nmf_model)):
        raise UserError("--from-nmf needs --ncsn PIANO_RUN VIOLIN_RUN and NMF (--nmf-train or --nmf-model)")
    if args.start_level is not None and not args.from_nmf:
        raise UserError("--start-level goes with --from-nmf")
    cfg = MelConfig()
    est_root = out / "estimates"
    seconds = audio_seconds(data_dir, cfg)
    timings: dict[str, float] = {}
    if args.nmf_train or args.nmf_model:
        timings["NMF"] = run_nmf(data_dir, est_root, args.nmf_train, args.nmf_model)
    for kind in ("ncsn", "glow", "noisy_glow"):
        runs = getattr(args, kind)
        if runs:
            timings[f"BASIS-{kind}"] = run_basis(data_dir, est_root, kind, runs[0], runs[1], args.steps,
                                                 args.batch_size, args.seed, args.jit, hop_frames=args.hop_frames,
                                                 extra=basis_flags(args, kind))
    if args.from_nmf:
        label = "BASIS-ncsn-from-NMF"
        timings[label] = timings["NMF"] + run_basis(
            data_dir, est_root, "ncsn", args.ncsn[0], args.ncsn[1], args.steps, args.batch_size, args.seed, args.jit,
            label=label, hop_frames=args.hop_frames, extra=basis_flags(args, "ncsn") + ["--start-from", str(est_root / "NMF")]
            + cli_flags({"--start-level": args.start_level}))
    if not args.no_oracles:
        timings.update(run_oracle_methods(data_dir, est_root, cfg))
    methods = {"mixture": None, **{m: est_root / m for m in timings}}
    per_track, summaries = evaluate_methods(data_dir, methods)
    rtf = {m: (f"{timings[m] / seconds:.3f}" if m in timings else "0") for m in methods}
    table = write_report(out / "separation", per_track, summaries, extra={"s per s of audio": rtf})
    plot_separation(data_dir, {m: est_root / m for m in timings}, out / "separation.png", cfg)
    print(f"{seconds:.1f} s of audio in {data_dir}\n")
    print(table)
    log.info("table: %s  figure: %s  wavs: %s", out / "separation.md", out / "separation.png", est_root)
    return 0


if __name__ == "__main__":
    run_cli(main)
