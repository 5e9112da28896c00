#!/usr/bin/env python
"""Benchmark of the NCSN score network and its annealed Langevin sampler.

For each shape (``--shapes``: digits 8x8x1, mnist 28x28x1, cifar10 32x32x3, melspec 96x64x1) and width:

- ``parameters``: trainable parameters of :class:`ncsn.model.ScoreNetwork`;
- ``forward_ms``: one compiled forward pass on a batch of ``--batch-size``, median of ``--repeats``;
- ``train_step_ms``: compiled DSM loss + gradients of one batch (no optimizer update), median;
- ``langevin_step_ms``: one step of the compiled sampler loop, measured as the time of a run of
  ``--timing-levels`` x ``--timing-steps`` steps divided by their number (tracing excluded);
- ``langevin_over_forward``: ``langevin_step_ms / forward_ms`` (1.0 = the loop adds nothing to the network);
- ``samples_per_s``: ``batch / (L · T · langevin_step)`` for the full schedule L = 10 levels x T = ``--T`` steps
  (derived from the measured step time, since a full CPU run takes many minutes);
- ``peak_memory_mb``: GPU: TensorFlow's peak allocated device memory; CPU: the process's peak resident set size
  (everything the Python process holds, TensorFlow's runtime included).

Example:
    python bench/ncsn.py --shapes digits melspec --widths 16 32 --out results/bench_ncsn.json
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

from ncsn.config import NCSNConfig  # noqa: E402
from ncsn.losses import random_dsm_loss  # noqa: E402
from ncsn.model import ScoreNetwork  # noqa: E402
from ncsn.sampling import AnnealedLangevin  # noqa: E402
from bench.timing import device_description, median_seconds, peak_memory_mb, reset_peak_memory  # noqa: E402
from pipeline.errors import UserError, run_cli  # noqa: E402

SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3), "melspec": (96, 64, 1)}


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms (see :func:`bench.timing.median_seconds`)."""
    return 1e3 * median_seconds(fn, repeats, warmup)


def bench_one(shape, width: int, batch_size: int, repeats: int, timing_levels: int, timing_steps: int,
              full_steps_per_level: int, jit_compile: bool) -> dict:
    reset_peak_memory()
    model = ScoreNetwork(NCSNConfig(image_shape=shape, width=width))
    x = tf.random.uniform((batch_size, *shape), seed=0)
    levels = tf.zeros([batch_size], tf.int32)
    forward = tf.function(lambda: model(x, levels), jit_compile=jit_compile)

    @tf.function(jit_compile=jit_compile)
    def loss_and_grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(random_dsm_loss(model, x, model.sigma_levels, tf.constant([0, 1])))
        grads = tape.gradient(loss, model.trainable_variables)
        return loss + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])   # fetch depends on every gradient

    forward_ms = median_ms(forward, repeats)
    train_ms = median_ms(loss_and_grads, repeats)
    sampler = AnnealedLangevin(model, model.sigma_levels[:timing_levels], n_steps_per_level=timing_steps,
                               final_denoise=False, jit_compile=jit_compile)
    n_steps = timing_levels * timing_steps
    step_ms = median_ms(lambda: sampler.sample(x, seed=0), max(1, repeats // 2)) / n_steps
    n_levels = int(model.sigma_levels.shape[0])
    return {"shape": list(shape), "width": width, "batch_size": batch_size, "parameters": model.n_parameters(),
            "forward_ms": round(forward_ms, 3), "train_step_ms": round(train_ms, 3),
            "langevin_step_ms": round(step_ms, 3), "langevin_over_forward": round(step_ms / forward_ms, 3),
            "samples_per_s": round(batch_size / (n_levels * full_steps_per_level * step_ms / 1e3), 4),
            "full_schedule": f"L={n_levels} x T={full_steps_per_level}",
            "peak_memory_mb": round(peak_memory_mb(), 1), "jit_compile": jit_compile}


def markdown(rows: list[dict]) -> str:
    head = ("| shape | width | params | batch | forward ms | train step ms | Langevin step ms | step/forward "
            "| samples/s (L·T) | peak MB |")
    lines = [head, "|---" * 10 + "|"]
    for r in rows:
        lines.append(f"| {'x'.join(map(str, r['shape']))} | {r['width']} | {r['parameters']:,} | {r['batch_size']} "
                     f"| {r['forward_ms']:.1f} | {r['train_step_ms']:.1f} | {r['langevin_step_ms']:.1f} "
                     f"| {r['langevin_over_forward']:.2f} | {r['samples_per_s']:.3g} ({r['full_schedule']}) "
                     f"| {r['peak_memory_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["digits", "mnist", "melspec"],
                   help="input shapes to time (default digits mnist melspec)")
    p.add_argument("--widths", nargs="+", type=int, default=[32], help="network widths (default 32)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per batch (default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per measurement; the median is kept "
                                                          "(default 5)")
    p.add_argument("--timing-levels", type=int, default=2, help="noise levels in the timed sampler run (default 2)")
    p.add_argument("--timing-steps", type=int, default=10, help="steps per level in the timed sampler run "
                                                                "(default 10)")
    p.add_argument("--T", type=int, default=100, help="steps per level of the full schedule that samples/s "
                                                      "refers to (default 100, as in NCSN)")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=False,
                   help="XLA-compile the forward pass, train step and sampler (default off; slower on CPU here)")
    p.add_argument("--out", help="write the results as JSON here (and a .md table beside it)")
    args = p.parse_args(argv)
    if min(args.batch_size, args.repeats, args.timing_levels, args.timing_steps, args.T, *args.widths) < 1:
        raise UserError("--batch-size, --repeats, --timing-levels, --timing-steps, --T and --widths must be >= 1")
    rows = []
    for name in args.shapes:
        for width in args.widths:
            row = bench_one(SHAPES[name], width, args.batch_size, args.repeats, args.timing_levels,
                            args.timing_steps, args.T, args.jit_compile)
            row["dataset"] = name
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = markdown(rows)
    print(table)
    if args.out:
        result = {"device": device_description(), "tensorflow": tf.__version__,
                  "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "rows": rows}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(f"{result['device']}, TF {result['tensorflow']}, {result['date']}\n\n"
                                          f"{table}\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
