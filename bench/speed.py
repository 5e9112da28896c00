#!/usr/bin/env python
"""Where BASIS separation and prior training spend their time: one table, measured in one run.

For each prior family (NCSN, Glow; noisy Glow when ``--noisy-glow`` is given) on mel patches:

- ``net ms``: the network evaluations of one BASIS step alone, on the separation batch: the two priors'
  scores (NCSN: one forward pass each; Glow: forward + backward through each flow), compiled;
- ``BASIS step ms``: one step of the compiled annealed loop (both scores, the mixing model and its
  Jacobian, the Langevin noise), from the difference between a run of L·(1 + k) and one of L·1 steps, so
  tracing and the per-call overhead cancel; ``step/net`` is their ratio (1.0: the loop adds nothing);
- ``RTF``: seconds of wall time per second of audio for the default schedule (L levels × T steps,
  half-overlapping patches), derived from the measured step time; ``--rtf-seconds S`` also times the
  full ``separation.audio.separate_folder`` on an S-second mixture (tracing excluded);
- ``peak MB``: GPU: TensorFlow's peak device memory of the separation; CPU: the process's peak RSS so far;
- ``train step ms`` of the real training loop (:func:`train_utils.train`: input pipeline, optimizer, EMA,
  NaN guard), steady-state windows only, vs the bare compiled forward + backward on a cached batch
  (``train/bare``), and the input pipeline's share: the time to pull one batch alone / the train step
  (an upper bound: the pipeline prefetches while the step runs).

Priors come from ``--ncsn`` / ``--glow`` run folders (default: ``pretrained/<family>_{piano,violin}`` when
present); without them the benchmark builds untrained networks of the shipped shapes (the timings do not
depend on the weights). The training rows need mel TFRecords (``--mel-dir``, default data/demo/mel from
``make demo``).

Example:
    python bench/speed.py --out results/speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pipeline  # noqa: E402,F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

import train_utils  # noqa: E402
from bench.timing import device_description, logged_scalars, median_seconds, peak_memory_mb, reset_peak_memory  # noqa: E402
from ncsn.precision import CONV_DTYPES, resolve_conv_dtype  # noqa: E402
from pipeline.errors import UserError, run_cli  # noqa: E402
from pipeline.mel import MelConfig  # noqa: E402
from separation.basis import BasisConfig, BasisSeparator  # noqa: E402
from separation.mixing import MelDbMixing  # noqa: E402
from separation.priors import FlowPrior, NCSNPrior, load_prior  # noqa: E402

SOURCES = ("piano", "violin")
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
CLEAN_FLOW_SCHEDULE = tuple(np.geomspace(1.0, 0.01, 10))


# ------------------------------------------------------------------------------------------ priors

def untrained_priors(family: str, cfg: MelConfig, conv_dtype: str) -> list:
    """Two untrained priors of the shipped architecture (same cost as trained ones)."""
    shape = (cfg.n_mels, cfg.patch_frames, 1)
    if family == "ncsn":
        from ncsn.config import NCSNConfig
        from ncsn.model import ScoreNetwork
        network = NCSNConfig(image_shape=shape, width=16, n_res_blocks=1, scale_by_sigma=True)
        dtype = resolve_conv_dtype(conv_dtype)
        return [NCSNPrior(ScoreNetwork(network).set_conv_dtype(dtype), name=f"ncsn:untrained_{s}") for s in SOURCES]
    from flow_models.config import FlowConfig
    from flow_models.flow_builder import Flow
    flow_cfg = FlowConfig(architecture="glow", image_shape=shape, n_levels=3, n_steps=4, hidden_width=64, num_levels=256)
    priors = []
    for source in SOURCES:
        flow = Flow(flow_cfg)
        flow.initialize(tf.random.stateless_uniform((16, *shape), [0, 1]))
        priors.append(FlowPrior(flow, name=f"glow:untrained_{source}"))
    return priors


def default_steps(runs: list[str] | None) -> int:
    """T of the default schedule: the priors' basis.json when they have one, else BasisConfig's."""
    from run_basis_sep import tuned_settings
    return int(tuned_settings(runs[0] if runs else None).get("n_steps_per_level", BasisConfig.n_steps_per_level))


def priors_of(family: str, runs: list[str] | None, cfg: MelConfig, conv_dtype: str) -> tuple[list, str, int]:
    if runs is None:
        default = [PRETRAINED / f"{family}_{s}" for s in SOURCES]
        runs = [str(p) for p in default] if all(p.is_dir() for p in default) else None
    if runs is None:
        if family == "noisy_glow":
            return [], "", 0
        return untrained_priors(family, cfg, conv_dtype), "untrained, shipped shape", BasisConfig.n_steps_per_level
    return [load_prior(family, r, conv_dtype) for r in runs], " + ".join(runs), default_steps(runs)


def schedule_of(priors) -> tuple[float, ...]:
    own = priors[0].sigma_levels
    return tuple(float(s) for s in own) if own is not None else CLEAN_FLOW_SCHEDULE


# -------------------------------------------------------------------------------------- separation

def bench_separation(priors, cfg: MelConfig, mixture: tf.Tensor, steps: int, args) -> dict:
    """Network evaluations vs the full BASIS step on one batch of mixtures ``[B, n_mels, frames, 1]``."""
    sigmas = schedule_of(priors)
    n_levels = len(sigmas)
    mixing = MelDbMixing(cfg)
    sources = tf.stack([mixture, mixture])
    last = tf.constant(n_levels - 1)

    @tf.function(jit_compile=args.jit)
    def network_evaluations():
        return tf.stack([p.score(sources[k], last) for k, p in enumerate(priors)])

    reset_peak_memory()
    net = median_seconds(network_evaluations, args.repeats)

    def loop_seconds(steps_per_level: int) -> float:
        separator = BasisSeparator(priors, mixing, BasisConfig(sigma_levels=sigmas, n_steps_per_level=steps_per_level,
                                                               final_denoise=False, jit_compile=args.jit))
        return median_seconds(lambda: separator.separate(mixture, seed=0), max(1, args.repeats // 3))

    extra = args.timing_steps
    step = (loop_seconds(1 + extra) - loop_seconds(1)) / (n_levels * extra)
    hop_frames = cfg.patch_frames // 2
    patches_per_audio_second = cfg.sample_rate / cfg.hop_length / hop_frames
    batch = int(mixture.shape[0])
    rtf = step * n_levels * steps * patches_per_audio_second / batch
    row = {"batch": batch, "levels": n_levels, "net_ms": 1e3 * net, "step_ms": 1e3 * step, "step_over_net": step / net,
           "schedule": f"{n_levels}x{steps}", "rtf_derived": rtf, "peak_mb": peak_memory_mb()}
    if args.rtf_seconds:
        row["rtf_measured"] = measured_rtf(priors, mixing, cfg, sigmas, steps, args)
    return row


def measured_rtf(priors, mixing, cfg: MelConfig, sigmas, steps: int, args) -> float:
    """Wall time of ``separate_folder`` per second of audio on an ``--rtf-seconds`` mixture (after one warm-up)."""
    import soundfile as sf
    from separation.audio import separate_folder
    rng = np.random.default_rng(0)
    separator = BasisSeparator(priors, mixing, BasisConfig(sigma_levels=sigmas, n_steps_per_level=steps,
                                                           jit_compile=args.jit))
    with tempfile.TemporaryDirectory() as tmp:
        n = int(args.rtf_seconds * cfg.sample_rate)
        t = np.arange(n) / cfg.sample_rate
        audio = 0.05 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 660 * t)) + 1e-3 * rng.standard_normal(n)
        wav = Path(tmp) / "mix.wav"
        sf.write(wav, audio.astype(np.float32), cfg.sample_rate)
        separate_folder([wav], Path(tmp) / "warm", separator, cfg, args.batch_size, progress=False)   # tracing
        start = time.perf_counter()
        separate_folder([wav], Path(tmp) / "out", separator, cfg, args.batch_size, progress=False)
        return (time.perf_counter() - start) / args.rtf_seconds


# ---------------------------------------------------------------------------------------- training

def training_parts(family: str, priors, mel_dir: Path, batch_size: int):
    """``(build_model, loss_fn, dataset_fn)`` for training a prior of the same architecture as ``priors[0]``."""
    if family == "ncsn":
        from ncsn.model import ScoreNetwork
        from ncsn.training import DataConfig, make_loss_fn
        network = priors[0].model.config
        data = DataConfig(dataset="melspec", mel_dir=str(mel_dir), source="piano")
        return (lambda: ScoreNetwork(network), make_loss_fn(),
                lambda: data.dataset_fn("train", batch_size, shuffle=True, repeat=True))
    from flow_models.flow_builder import Flow
    from flow_models.training import DataConfig, flow_loss, train_dataset
    flow_cfg = priors[0].flow.config
    data = DataConfig(dataset="melspec", mel_dir=str(mel_dir), source="piano")

    def build():
        flow = Flow(flow_cfg)
        flow.initialize(next(iter(train_dataset(data, batch_size))))
        return flow
    return build, flow_loss, lambda: train_dataset(data, batch_size)


def bench_training(family: str, priors, mel_dir: Path, args) -> dict:
    build, loss_fn, dataset_fn = training_parts(family, priors, mel_dir, args.train_batch_size)
    window = max(1, args.train_steps // 4)
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = train_utils.TrainConfig(run_dir=run_dir, steps=args.train_steps, batch_size=args.train_batch_size,
                                      ema_decay=0.999, log_every=window, checkpoint_every=10 * args.train_steps,
                                      jit_compile=args.jit)
        model = train_utils.train(build, loss_fn, dataset_fn(), cfg, {"bench": family})
        rates = logged_scalars(Path(run_dir) / train_utils.LOG_DIR, "train/steps_per_second")
    train_step = 1.0 / statistics.mean(rates[1:] or rates)        # the first window includes tracing
    iterator = iter(dataset_fn())
    cached = next(iterator)
    variables = model.trainable_variables

    @tf.function(jit_compile=args.jit)
    def bare_forward_backward(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(model, batch))
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables) if g is not None]

    bare = median_seconds(lambda: bare_forward_backward(cached), args.repeats, warmup=2)
    for _ in range(3):
        next(iterator)
    n_pulls = 10 * args.repeats
    start = time.perf_counter()
    for _ in range(n_pulls):
        next(iterator).numpy()
    pipeline = (time.perf_counter() - start) / n_pulls
    return {"train_batch": args.train_batch_size, "train_step_ms": 1e3 * train_step, "bare_ms": 1e3 * bare,
            "train_over_bare": train_step / bare, "pipeline_share": pipeline / train_step}


# -------------------------------------------------------------------------------------------- report

def markdown(rows: list[dict]) -> str:
    lines = ["| prior | batch | net ms | BASIS step ms | step/net | RTF (schedule) | peak MB "
             "| train step ms | bare fwd+bwd ms | train/bare | input share |", "|---" * 11 + "|"]
    for r in rows:
        rtf = f"{r['rtf_derived']:.2f} ({r['schedule']})"
        if "rtf_measured" in r:
            rtf += f", measured {r['rtf_measured']:.2f}"
        train = (f"{r['train_step_ms']:.1f} | {r['bare_ms']:.1f} | {r['train_over_bare']:.2f} | {100 * r['pipeline_share']:.1f} %"
                 if "train_step_ms" in r else "– | – | – | –")
        lines.append(f"| {r['family']} | {r['batch']} | {r['net_ms']:.1f} | {r['step_ms']:.1f} | {r['step_over_net']:.2f} "
                     f"| {rtf} | {r['peak_mb']:.0f} | {train} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = BasisConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=["ncsn", "glow", "noisy_glow"], choices=("ncsn", "glow", "noisy_glow"),
                   help="prior families to time (noisy_glow only with --noisy-glow or pretrained/noisy_glow_*)")
    for family in ("ncsn", "glow", "noisy-glow"):
        p.add_argument(f"--{family}", nargs=2, metavar=("PIANO", "VIOLIN"), help=f"{family} run folders")
    p.add_argument("--mel-dir", default="data/demo/mel", help="mel TFRecords for the mixtures and the training rows")
    p.add_argument("--batch-size", type=int, default=16, help="separation batch (patches per compiled call)")
    p.add_argument("--steps", type=int, help="T of the schedule the RTF refers to (default: the priors' basis.json, "
                   f"else {d.n_steps_per_level})")
    p.add_argument("--timing-steps", type=int, default=3, help="k: the step time comes from runs of L·(1+k) and L·1 steps")
    p.add_argument("--rtf-seconds", type=float, default=0.0, help="also time separate_folder on a mixture this long "
                                                                  "with the full schedule (0: derived RTF only)")
    p.add_argument("--train-steps", type=int, default=40, help="steps of each timed training run (0: no training rows)")
    p.add_argument("--train-batch-size", type=int, default=16, help="training batch")
    p.add_argument("--repeats", type=int, default=6, help="timed calls per measurement (median)")
    p.add_argument("--jit", action="store_true", help="XLA-compile everything (jit_compile=True)")
    p.add_argument("--conv-dtype", choices=CONV_DTYPES, default="float32",
                   help="dtype of the NCSN convolutions in the separation rows (training rows: float32); "
                        "auto as in run_basis_sep.py")
    p.add_argument("--out", help="write JSON here and the table as .md beside it")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.batch_size, args.steps or 1, args.timing_steps, args.repeats) < 1 or args.train_steps < 0:
        raise UserError("--batch-size, --steps, --timing-steps and --repeats must be >= 1, --train-steps >= 0")
    mel_dir = Path(args.mel_dir)
    if not (mel_dir / "mel_params.json").is_file():
        raise UserError(f"{mel_dir}: no mel TFRecords (mel_params.json missing); run `make demo` first or pass --mel-dir")
    cfg = MelConfig.load(mel_dir / "mel_params.json")
    from pipeline.dataloader import source_patch_dataset
    mixture = next(iter(source_patch_dataset(mel_dir, "test", "piano", args.batch_size, shuffle=False, repeat=True)))
    rows = []
    for family in args.families:
        priors, origin, steps = priors_of(family, getattr(args, family), cfg, args.conv_dtype)
        if not priors:
            print(f"{family}: no run folders given and none under pretrained/; skipped", flush=True)
            continue
        row = {"family": family, "priors": origin, **bench_separation(priors, cfg, mixture, args.steps or steps, args)}
        if args.train_steps and family != "noisy_glow":        # noisy Glow trains like Glow
            row.update(bench_training(family, priors, mel_dir, args))
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = device_description()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = markdown(rows)
    conv_dtype = resolve_conv_dtype(args.conv_dtype).name
    setting = f"jit_compile={args.jit}, NCSN conv dtype {conv_dtype} (--conv-dtype {args.conv_dtype})"
    print(f"\n{device}, {date}, {setting}\n\n{table}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": device, "date": date, "jit_compile": args.jit,
                                   "conv_dtype": conv_dtype, "rows": rows}, indent=1) + "\n")
        out.with_suffix(".md").write_text(f"{device}, {date}, {setting}\n\n{table}\n")
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    run_cli(main)
