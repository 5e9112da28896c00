"""Separate mixtures with BASIS (Jayaram & Thickstun 2020) and trained priors.

Audio (``--dataset melspec``): every wav of ``--input`` (a file, a folder, or a folder with ``mix/``) is
separated into piano and violin mel spectrograms, written under ``--out/<name>/`` (see
``separation/audio.py``); turn them into wavs with ``melspec_inversion_basis.py``::

    python run_basis_sep.py --dataset melspec --prior ncsn --piano pretrained/ncsn_piano \\
        --violin pretrained/ncsn_violin --input my_mixtures/ --out results/sep

``--start-from nmf`` first separates the input with the shipped NMF model and starts the chains at its
estimates (results/warm_start/: +1.5 / +2.1 dB SDR per track piano / violin over starting from noise, 70
track-draws of four test sets).

Images (``--dataset digits|mnist_subset|mnist|cifar10``): mixtures (x_1 + x_2) / 2 of test images are
separated with one prior (``--checkpoint``) for both sources; prints PSNR (best ordering) and writes a
figure and a JSON report under ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import UserError, log, read_json, run_cli
from pipeline.image_datasets import IMAGE_DATASETS
from separation.basis import STITCH_MODES, BasisConfig
from ncsn.precision import CONV_DTYPES
from separation.priors import FLOW_INPUTS, PRIOR_KINDS


def build_parser() -> argparse.ArgumentParser:
    d = BasisConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, choices=("melspec",) + IMAGE_DATASETS, help="what to separate")
    p.add_argument("--prior", default="ncsn", choices=PRIOR_KINDS, help="prior family")
    p.add_argument("--piano", help="melspec: run folder of the piano prior (noisy_glow: folder of sigma_* runs); "
                   "default: the shipped pretrained/<prior>_piano")
    p.add_argument("--violin", help="melspec: run folder of the violin prior; default: pretrained/<prior>_violin")
    p.add_argument("--checkpoint", help="images: run folder of the prior used for both sources; default: the "
                   "shipped pretrained/<prior>_mnist for MNIST")
    p.add_argument("--input", help="melspec: a mixture wav, a folder of wavs, or a folder with mix/")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-dir", help="images: folder holding mnist.npz / cifar-10-batches-py")
    p.add_argument("--n-pairs", type=int, default=64, help="images: number of mixtures to separate")
    g = p.add_argument_group("schedule (defaults: the prior's own σ levels, and the step settings in the prior run's "
                             f"basis.json when it has one, else T={d.n_steps_per_level}, δ={d.step_lr}, γ scale "
                             f"{d.gamma_scale}, init {d.init}, {d.n_chains} chain, {d.stitch} stitching; a clean Glow uses σ 1 → 0.01, 10 levels)")
    g.add_argument("--sigma-max", type=float, help="σ_1, model input units (clean Glow only)")
    g.add_argument("--sigma-min", type=float, help="σ_L (clean Glow only)")
    g.add_argument("--n-levels", type=int, help="L (clean Glow only)")
    g.add_argument("--refine-levels", type=int, metavar="F", help="NCSN: F - 1 extra σ levels between each "
                   "pair of trained ones, their conditioning interpolated in ln σ (10 levels -> 9F + 1); T stays per level, "
                   "so pass --steps to keep the work; the density bound (chains, select stitching) keeps to the trained "
                   "levels (default: the prior run's basis.json, else 1; results/levels/)")
    g.add_argument("--steps", type=int, help="Langevin steps per level (T)")
    g.add_argument("--step-lr", type=float, help="δ: η_i = δ σ_i² / σ_L²")
    g.add_argument("--gamma-scale", type=float, help="γ_i = gamma_scale · σ_i")
    g.add_argument("--init", choices=("uniform", "mixture"), help="initial sources")
    g.add_argument("--chains", type=int, help="chains per mixture (patch), run as one batch; each mixture keeps the "
                   "chain most probable under the priors (K times the work)")
    g.add_argument("--average-top", type=int, metavar="M", help="with --chains > 1: output the mean of the M most "
                   "probable chains, each with its sources ordered like the most probable chain's (an estimate of the "
                   "posterior mean: higher PSNR, softer images; default 1, the pick)")
    g.add_argument("--selection-draws", type=int, help="noise draws per σ level of the NCSN density bound that "
                   "ranks the chains (with --chains > 1)")
    g.add_argument("--select-after-levels", type=int, metavar="L", help="with --chains > 1: rank the chains after "
                   "the first L annealing levels and anneal only the kept one through the rest (default: rank the "
                   "final sources)")
    g.add_argument("--stitch", choices=STITCH_MODES, help="melspec: how overlapping patches join: crossfade, or "
                   "select, which weighs each overlap towards the patch whose sources the priors find more probable "
                   "there (NCSN priors; the density bound adds about 0.13x the separation time)")
    g.add_argument("--stitch-temperature", type=float, metavar="NATS", help="with --stitch select: overlapping "
                   "patches weigh exp(-(their bound over the overlap) / NATS); near 0: a hard pick")
    g.add_argument("--score-rms-limit", type=float, metavar="C", help="scale each source's prior score down where "
                   "σ·RMS(score) > C (a smoothed density's is at most about 1; a clean flow's is 10^2-10^5 times that: "
                   "results/flows/) (default: the prior run's basis.json, else no cap)")
    g.add_argument("--box-pull", action=argparse.BooleanOptionalAction, default=None, help="flows scoring the "
                   "chain's projection onto [0, 1] (--flow-inputs clip): add the smoothed box's pull -(x - clip(x))/σ² "
                   "back into it (default: the prior run's basis.json, else off)")
    g.add_argument("--no-denoise", action="store_true", help="skip the final Tweedie denoising step (NCSN)")
    g.add_argument("--flow-inputs", choices=FLOW_INPUTS, help="flows: score the chain projected onto [0, 1] (clip) "
                   "or as it is (raw, as the paper; centre-preprocessed flows only) (default: the prior run's "
                   "basis.json, else clip)")
    w = p.add_argument_group("start from other estimates (melspec; results/warm_start/)")
    w.add_argument("--start-from", metavar="FROM", help="the chains start at another method's estimates' mels plus "
                   "noise of σ at --start-level and anneal from that level on, instead of from noise at σ_1. FROM: "
                   "`nmf` (the shipped supervised NMF, pretrained/nmf/model.npz, run first on the input), an NMF model "
                   "file (.npz, from `python -m separation.nmf train`), or a folder of estimates, "
                   "{piano,violin}/<mixture name>.wav")
    w.add_argument("--start-level", type=int, metavar="L", help="with --start-from: the level the chains join the "
                   "schedule at, 0-based (the first L levels are skipped; default: the prior run's basis.json)")
    p.add_argument("--batch-size", type=int, default=16, help="patches or image pairs per compiled call (mel: at most; "
                   "balanced so that the last, padded batch wastes the least)")
    p.add_argument("--hop-frames", type=int, help="melspec: hop between patches in frames (default: half a patch)")
    p.add_argument("--shard", metavar="I/N", help="melspec: separate only every N-th mixture starting at I (0 <= I < N), "
                   "e.g. one process per GPU or host writing into the same --out; the last shard to finish writes "
                   "OUT/index.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and Langevin noise")
    p.add_argument("--jit", action="store_true", help="compile the loop with XLA (jit_compile=True)")
    p.add_argument("--conv-dtype", choices=CONV_DTYPES, default="float32",
                   help="NCSN convolutions in float32 or bfloat16 (1.2x faster forward on a CPU with AMX/AVX-512-BF16, "
                        "SDR not yet shown equal: docs/ncsn.md); auto: bfloat16 on such a CPU without GPU, else float32")
    return p


def schedule_of(priors, args) -> tuple[float, ...]:
    own = [p.sigma_levels for p in priors if p.sigma_levels is not None]
    if own:
        if any(v is not None for v in (args.sigma_max, args.sigma_min, args.n_levels)):
            log.warning("--sigma-max/--sigma-min/--n-levels ignored: %s priors carry their own schedule", args.prior)
        return tuple(float(s) for s in own[0])
    return tuple(np.geomspace(args.sigma_max or 1.0, args.sigma_min or 0.01, args.n_levels or 10))


STEP_SETTINGS = {"steps": "n_steps_per_level", "step_lr": "step_lr", "gamma_scale": "gamma_scale", "init": "init",
                 "chains": "n_chains", "average_top": "average_top", "selection_draws": "selection_draws",
                 "select_after_levels": "select_after_levels", "stitch": "stitch", "stitch_temperature": "stitch_temperature", "score_rms_limit": "score_rms_limit",
                 "box_pull": "box_pull"}
BASIS_FILE = "basis.json"


def cli_flags(given: dict[str, object]) -> list[str]:
    """``{"--flag": value}`` -> the argv of the flags that have a value (``None``: left to the defaults)."""
    return [part for flag, value in given.items() if value is not None for part in (flag, str(value))]


def basis_file(run_dir: str | Path | None) -> dict:
    """A prior run's ``basis.json`` (empty without one)."""
    path = Path(run_dir) / BASIS_FILE if run_dir else None
    return read_json(path) if path is not None and path.is_file() else {}


def tuned_settings(run_dir: str | Path | None) -> dict:
    """The BasisConfig fields recorded in a prior run's ``basis.json`` (empty without one)."""
    return {k: v for k, v in basis_file(run_dir).items() if k in STEP_SETTINGS.values()}


def refine_factor(args, run_dir: str | Path | None) -> int:
    """F of ``--refine-levels``: the command line, else the prior run's ``basis.json`` (``refine_levels``), else 1.

    The T of a ``basis.json`` goes with its F: one given on the command line without ``--steps`` gets a warning."""
    recorded = basis_file(run_dir)
    tuned_factor, tuned_steps = int(recorded.get("refine_levels", 1)), recorded.get("n_steps_per_level")
    if args.refine_levels is None:
        return tuned_factor
    if args.refine_levels != tuned_factor and args.steps is None and tuned_steps is not None:
        log.warning("--refine-levels %d without --steps: T=%d of %s was tuned for --refine-levels %d", args.refine_levels,
                    tuned_steps, Path(run_dir) / BASIS_FILE, tuned_factor)
    return args.refine_levels


def flow_inputs_of(args, run_dir: str | Path | None) -> str:
    """``--flow-inputs``: the command line, else the prior run's ``basis.json`` (``flow_inputs``), else clip."""
    return args.flow_inputs or basis_file(run_dir).get("flow_inputs", "clip")


def step_settings(args, run_dir: str | Path) -> dict:
    """T, δ, γ scale and init: the command line, else the prior run's ``basis.json``, else the defaults."""
    tuned = tuned_settings(run_dir)
    settings = {field: getattr(args, flag) if getattr(args, flag) is not None else tuned.get(field, getattr(BasisConfig, field))
                for flag, field in STEP_SETTINGS.items()}
    early = settings["select_after_levels"]
    cap = settings["score_rms_limit"]
    top = min(settings["average_top"], settings["n_chains"])
    if args.average_top is not None and top > 1 and early is not None:
        raise UserError(f"--average-top {args.average_top} averages chains that run to the end, but --select-after-levels "
                        f"{early} keeps one chain after {early} levels: use one of the two")
    log.info("BASIS steps: T=%d, δ=%g, γ scale %g, init %s, %d chain(s)%s%s, %s stitching%s%s", settings["n_steps_per_level"],
             settings["step_lr"], settings["gamma_scale"], settings["init"], settings["n_chains"],
             f", ranked after {early} levels" if settings["n_chains"] > 1 and early is not None else "",
             f", mean of the {top} most probable" if top > 1 and early is None else "",
             settings["stitch"], "" if cap is None else f", score capped at σ·RMS {cap:g}",
             f" (tuned values from {Path(run_dir) / BASIS_FILE})" if tuned else "")
    return settings


def make_separator(priors, mixing, args, run_dir: str | Path):
    from separation.basis import BasisSeparator
    cfg = BasisConfig(sigma_levels=schedule_of(priors, args), final_denoise=not args.no_denoise, jit_compile=args.jit,
                      **step_settings(args, run_dir))
    log.info("σ schedule: %d levels, %.3g -> %.3g (%s)", len(cfg.sigma_levels), cfg.sigma_levels[0], cfg.sigma_levels[-1],
             ", ".join(p.name for p in priors))
    return BasisSeparator(priors, mixing, cfg)


def separate_melspec(args) -> None:
    from pipeline.mel import MelConfig
    from separation.audio import mixture_files, parse_shard, separate_folder
    from separation.mixing import MelDbMixing
    from separation.priors import load_prior
    if not (args.piano and args.violin and args.input):
        raise UserError(f"--dataset melspec needs --input PATH and, without shipped {args.prior} priors under "
                        f"pretrained/, --piano RUN and --violin RUN")
    shard = parse_shard(args.shard)
    files = mixture_files(args.input)
    factor = refine_factor(args, args.piano)
    inputs = flow_inputs_of(args, args.piano)
    priors = [load_prior(args.prior, run, args.conv_dtype, factor, inputs) for run in (args.piano, args.violin)]
    cfg = mel_config_of(args.piano)
    if tuple(priors[0].image_shape) != (cfg.n_mels, cfg.patch_frames, 1):
        raise UserError(f"{args.piano}: prior models {priors[0].image_shape}, not mel patches ({cfg.n_mels}, {cfg.patch_frames}, 1)")
    separator = make_separator(priors, MelDbMixing(cfg), args, args.piano)
    start_level = start_level_of(args, args.piano, separator)
    start_from = start_folder(args.start_from, sorted(files)[shard[0]::shard[1]], args.out)
    outputs = separate_folder(files, args.out, separator, cfg, args.batch_size, args.hop_frames, args.seed, shard=shard,
                              start_from=start_from, start_level=start_level)
    what = f"shard {shard[0]}/{shard[1]}: " if shard[1] > 1 else ""
    print(f"{what}separated {len(outputs)} mixture(s) into {args.out}; next: python melspec_inversion_basis.py --sep {args.out} --out ...")


def start_level_of(args, run_dir: str | Path, separator) -> int:
    """``--start-level`` with ``--start-from``: the command line, else the prior run's ``basis.json``
    (``start_level``); 0 without ``--start-from``."""
    if args.start_from is None:
        if args.start_level is not None:
            raise UserError("--start-level needs --start-from DIR (the estimates the chains start from)")
        return 0
    recorded = basis_file(run_dir)
    level = args.start_level if args.start_level is not None else recorded.get("start_level")
    if level is None:
        raise UserError(f"--start-from needs --start-level L: {Path(run_dir) / BASIS_FILE} records no start_level")
    if args.start_level is None and args.refine_levels not in (None, recorded.get("refine_levels", 1)):
        log.warning("start level %d of %s counts the levels of --refine-levels %s; with --refine-levels %d pass "
                    "--start-level", level, Path(run_dir) / BASIS_FILE, recorded.get("refine_levels", 1), args.refine_levels)
    separator.check_start_level(level)
    sigmas = separator.config.sigma_levels
    log.info("starting from %s at level %d of %d (σ %.3g), %d of %d levels annealed", args.start_from, level,
             len(sigmas), sigmas[level], len(sigmas) - level, len(sigmas))
    return int(level)


SHIPPED_START = "nmf"


def start_folder(start_from: str | None, files: Sequence[Path], out: str | Path) -> str | None:
    """The folder of estimates ``--start-from`` names: itself, or, for ``nmf`` or an NMF model file, the folder
    under ``OUT/_start/`` where that model's estimates of ``files`` are made (only the missing ones)."""
    from separation import nmf
    if start_from is None:
        return None
    if start_from == SHIPPED_START:
        if Path(start_from).is_dir():
            raise UserError(f"--start-from {start_from}: ambiguous, ./{start_from} is a folder; pass ./{start_from} for "
                            f"its estimates or {nmf.SHIPPED_MODEL} for the shipped NMF")
        model = nmf.SHIPPED_MODEL
    elif Path(start_from).is_file():
        model = Path(start_from)
    else:
        return start_from
    if nmf.START_DIR in {Path(f).stem for f in files}:
        raise UserError(f"a mixture named {nmf.START_DIR}: its output folder would be OUT/{nmf.START_DIR}/, where the "
                        "NMF estimates to start from go; rename it")
    return str(nmf.estimates_for(model, files, Path(out) / nmf.START_DIR))


def mel_config_of(run_dir: str | Path):
    """The MelConfig a mel prior was trained with (its config.json's data section), else the defaults."""
    from pipeline.mel import MelConfig
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        candidates = sorted(Path(run_dir).glob("*/config.json"))      # noisy-Glow family: one run per σ
        if not candidates:
            return MelConfig()
        path = candidates[0]
    config = read_json(path)
    found = _find(config, "mel_params", dict)
    if found:
        return MelConfig(**found)
    mel_dir = _find(config, "mel_dir", str)
    if mel_dir and (Path(mel_dir) / "mel_params.json").is_file():
        return MelConfig.load(Path(mel_dir) / "mel_params.json")
    log.warning("%s: no mel parameters recorded; assuming the defaults", path)
    return MelConfig()


def _find(tree, key, kind):
    """The first value of type ``kind`` stored under ``key`` anywhere in a nested dict (depth first)."""
    if isinstance(tree, dict):
        if isinstance(tree.get(key), kind):
            return tree[key]
        for value in tree.values():
            found = _find(value, key, kind)
            if found:
                return found
    return None


def separate_images(args) -> None:
    from pipeline.image_datasets import crop_images, load_images, pad_images
    from separation.basis import check_finite
    from separation.images import make_image_mixtures, pair_psnr, plot_image_separation, write_image_report
    from separation.mixing import MeanMixing
    from separation.priors import load_prior
    if not args.checkpoint:
        raise UserError(f"--dataset {args.dataset} needs --checkpoint RUN (the prior of both sources)")
    if args.start_from is not None or args.start_level is not None:
        raise UserError("--start-from and --start-level are for --dataset melspec (estimate wavs to start from)")
    prior = load_prior(args.prior, args.checkpoint, args.conv_dtype, refine_factor(args, args.checkpoint),
                       flow_inputs_of(args, args.checkpoint))
    images = load_images(args.dataset, "test", args.data_dir)
    side = images.shape[1]
    # a multi-scale flow models images zero-padded to a multiple of 2^squeezes (MNIST 28 -> 32); it separates
    # the padded mixtures, and every score is taken on the dataset's own pixels, as for a prior at 28 x 28
    height, width, channels = prior.image_shape
    if height != width or height < side or channels != images.shape[3]:
        raise UserError(f"{args.checkpoint}: prior models images of shape {prior.image_shape}, "
                        f"but {args.dataset} gives {images.shape[1:]}")
    truth, mixtures = make_image_mixtures(images, args.n_pairs, args.seed)
    model_mixtures = pad_images(mixtures, height)
    separator = make_separator([prior, prior], MeanMixing(), args, args.checkpoint)
    estimates = np.concatenate([separator.separate(model_mixtures[i:i + args.batch_size], seed=args.seed + i).numpy()
                                for i in range(0, len(mixtures), args.batch_size)], axis=1)
    check_finite(estimates, [f"{args.dataset} test pair {i} (seed {args.seed})" for i in range(len(mixtures))], separator)
    estimates = crop_images(estimates, side)
    scores = pair_psnr(truth, estimates)
    mixture_scores = pair_psnr(truth, np.stack([mixtures, mixtures]))
    out = Path(args.out)
    plot_image_separation(mixtures, truth, estimates, out / f"{args.dataset}_{args.prior}_separation.png",
                          title=f"BASIS {args.prior} on {args.dataset}: PSNR {np.mean(scores):.2f} dB")
    summary = write_image_report(out / f"{args.dataset}_{args.prior}_psnr.json", scores,
                                 {"dataset": args.dataset, "prior": args.prior, "checkpoint": str(args.checkpoint),
                                  "prior_name": prior.name, "n_levels": len(separator.config.sigma_levels),
                                  "steps_per_level": separator.config.n_steps_per_level,
                                  "step_lr": separator.config.step_lr, "gamma_scale": separator.config.gamma_scale,
                                  "init": separator.config.init, "n_chains": separator.config.n_chains,
                                  "average_top": separator.config.average_top,
                                  "selection_draws": separator.config.selection_draws,
                                  "select_after_levels": separator.config.select_after_levels,
                                  "score_rms_limit": separator.config.score_rms_limit,
                                  "box_pull": separator.config.box_pull,
                                  "mixture_psnr_mean": float(np.mean(mixture_scores))})
    print(f"{args.dataset}: BASIS-{args.prior} PSNR {summary['psnr_mean']:.2f} dB (median {summary['psnr_median']:.2f}) "
          f"over {len(scores)} pairs; mixture as estimate {np.mean(mixture_scores):.2f} dB")


PRETRAINED = Path(__file__).resolve().parent / "pretrained"
SHIPPED_IMAGE_PRIOR = {"mnist_subset": "mnist", "mnist": "mnist"}


def fill_shipped_priors(args) -> None:
    """Point unset prior flags at the shipped priors under pretrained/ (when they exist)."""
    def shipped(name: str) -> str | None:
        path = PRETRAINED / f"{args.prior}_{name}"
        return str(path) if path.is_dir() else None
    if args.dataset == "melspec":
        for source in ("piano", "violin"):
            if getattr(args, source) is None and shipped(source):
                setattr(args, source, shipped(source))
                log.info("--%s: using the shipped prior %s", source, getattr(args, source))
    elif args.checkpoint is None and args.dataset in SHIPPED_IMAGE_PRIOR and shipped(SHIPPED_IMAGE_PRIOR[args.dataset]):
        args.checkpoint = shipped(SHIPPED_IMAGE_PRIOR[args.dataset])
        log.info("--checkpoint: using the shipped prior %s", args.checkpoint)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fill_shipped_priors(args)
    (separate_melspec if args.dataset == "melspec" else separate_images)(args)
    return 0


if __name__ == "__main__":
    run_cli(main)
