#!/usr/bin/env python
"""Benchmark of the flow priors on mel patches: Glow train-step time and held-out bits/dim, tfp-bijector vs
Keras-layer implementation of the same model, and the input pipeline's share of a step.

Measurements (all on the same Glow config):

1. ``train``: a short :func:`train_utils.train` run (the real loop: compiled step, Adam, EMA, checkpoints);
   seconds per step from the TensorBoard ``steps_per_second`` scalars after the first (tracing) window, and the
   held-out bits/dim after those steps (a smoke figure: a useful model needs far more steps, see docs/flows.md).
2. ``implementations``: compiled loss + gradient of one batch, median over ``--repeats`` calls, for
   ``tfp_distribution`` (``TransformedDistribution.log_prob``: TFP's generic Chain evaluates each coupling
   network twice), ``tfp_one_pass`` (``Flow.log_prob``: the same bijectors walked once), ``keras_layers`` (the
   Keras-layer twins, same initial weights), and ``tfp_one_pass_xla`` (``jit_compile=True``).
3. ``input_pipeline``: seconds to pull a batch from ``source_patch_dataset`` alone, and the share of a step
   spent waiting for data: ``1 - t(step on a cached batch) / t(step pulling from the pipeline)``.

Example:
    python bench/flows.py --mel-dir data/demo/mel --out results/bench_flows.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

import train_utils  # noqa: E402
from flow_models import training  # noqa: E402
from flow_models.config import FlowConfig  # noqa: E402
from flow_models.flow_builder import Flow, build_bijector  # noqa: E402
from flow_models.flow_tfk_layers import KerasBlocks  # noqa: E402
from flow_models.flow_tfp_bijectors import data_dependent_init, inverse_and_log_det  # noqa: E402
from flow_models.utils import print_summary  # noqa: E402
from bench.timing import cpu_name, logged_scalars, median_seconds  # noqa: E402
from pipeline.errors import run_cli  # noqa: E402


def gradient_step(loss_of, variables, jit_compile: bool = False):
    """Compiled ``x -> (mean loss, gradients)`` for a loss ``loss_of(x) -> [B]``."""
    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_of(x))
        return loss, tape.gradient(loss, variables)
    return step


def bench_train(flow_cfg, data, args) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        window = max(1, args.train_steps // 4)
        cfg = train_utils.TrainConfig(run_dir=run_dir, steps=args.train_steps, batch_size=args.batch_size,
                                      learning_rate=1e-3, warmup_steps=min(100, args.train_steps // 2),
                                      grad_clip_norm=50.0, ema_decay=0.99, log_every=window,
                                      checkpoint_every=args.train_steps)
        start = time.perf_counter()
        flow = training.train_flow(flow_cfg, data, cfg, eval_examples=args.eval_examples, n_samples=4)
        total = time.perf_counter() - start
        rates = logged_scalars(Path(run_dir) / "logs", "train/steps_per_second")
    steady = rates[1:] or rates
    return {"steps": args.train_steps, "seconds_per_step": 1.0 / statistics.mean(steady),
            "first_window_seconds_per_step_incl_tracing": 1.0 / rates[0] if rates else None,
            "wall_seconds_incl_init_eval_checkpoint": total,
            "held_out_bits_per_dim": flow.held_out_metrics["bits_per_dim"], "n_parameters": print_summary(
                flow, print_fn=lambda *_: None)}


def bench_implementations(flow_cfg, data, batch, args) -> dict:
    flow = Flow(flow_cfg)
    keras_flow = build_bijector(flow_cfg, blocks=KerasBlocks)
    x = flow.training_input(batch)
    with data_dependent_init():            # same seeds and the same init batch: the same initial weights
        inverse_and_log_det(flow.bijector, x)
        keras_flow(x)
    base_log_prob = flow.base_log_prob

    def keras_log_prob(x):
        z, log_det = keras_flow(x)
        return base_log_prob(z) + log_det

    difference = float(tf.reduce_max(tf.abs(keras_log_prob(x) - flow.log_prob(x))))
    candidates = {
        "tfp_distribution": (lambda v: -flow.distribution.log_prob(v), flow.trainable_variables, False),
        "tfp_one_pass": (lambda v: -flow.log_prob(v), flow.trainable_variables, False),
        "keras_layers": (lambda v: -keras_log_prob(v), keras_flow.trainable_variables, False),
        "tfp_one_pass_xla": (lambda v: -flow.log_prob(v), flow.trainable_variables, True),
    }
    results = {"max_abs_log_prob_difference_keras_vs_tfp": difference}
    for name, (loss_of, variables, jit) in candidates.items():
        step = gradient_step(loss_of, variables, jit_compile=jit)
        try:
            results[name] = {"seconds_per_loss_and_gradient": median_seconds(lambda: step(x), args.repeats)}
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:   # XLA may refuse an op
            results[name] = {"error": str(err).splitlines()[0][:200]}
    return results


def bench_input_pipeline(flow_cfg, data, args) -> dict:
    iterator = iter(training.train_dataset(data, args.batch_size, seed=0))
    for _ in range(5):
        next(iterator)
    n_batches = 20 * args.repeats                 # throughput over many pulls: the prefetch buffer drains
    start = time.perf_counter()
    for _ in range(n_batches):
        next(iterator).numpy()
    seconds_per_batch = (time.perf_counter() - start) / n_batches
    flow = training.initialized_flow(flow_cfg, data, args.batch_size)
    step = gradient_step(flow.loss, flow.trainable_variables)
    cached = next(iterator)
    timings = {"cached": [], "pipeline": []}
    for call in range(args.repeats + 2):          # interleaved, so load from other processes hits both alike
        for name, get_batch in (("cached", lambda: cached), ("pipeline", lambda: next(iterator))):
            start = time.perf_counter()
            step(get_batch())[0].numpy()
            if call >= 2:
                timings[name].append(time.perf_counter() - start)
    on_cached, on_pipeline = (statistics.median(timings[k]) for k in ("cached", "pipeline"))
    return {"seconds_per_batch_pipeline_alone": seconds_per_batch, "seconds_per_step_cached_batch": on_cached,
            "seconds_per_step_from_pipeline": on_pipeline,
            "pipeline_share_of_step": max(0.0, 1.0 - on_cached / on_pipeline),
            "pipeline_alone_vs_step": seconds_per_batch / on_cached}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mel-dir", default="data/demo/mel", help="mel TFRecords (default data/demo/mel)")
    parser.add_argument("--source", default="piano", choices=training.SOURCES, help="instrument (default piano)")
    parser.add_argument("--n-levels", type=int, default=3, help="Glow levels L (default 3)")
    parser.add_argument("--n-steps", type=int, default=8, help="Glow steps per level K (default 8)")
    parser.add_argument("--hidden-width", type=int, default=128, help="coupling-net channels (default 128)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per step (default 16)")
    parser.add_argument("--train-steps", type=int, default=100, help="steps of the training run (default 100)")
    parser.add_argument("--eval-examples", type=int, default=256, help="held-out patches (default 256)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (default 10)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("train", "implementations", "input_pipeline"),
                        help="parts to leave out")
    parser.add_argument("--out", default="results/bench_flows.json", help="JSON output (default "
                                                                          "results/bench_flows.json)")
    args = parser.parse_args(argv)
    data = training.DataConfig(dataset="melspec", mel_dir=args.mel_dir, source=args.source)
    image_shape, num_levels = training.image_shape_and_levels(data)
    flow_cfg = FlowConfig(architecture="glow", image_shape=image_shape, n_levels=args.n_levels, n_steps=args.n_steps,
                          hidden_width=args.hidden_width, num_levels=num_levels)
    batch = training.first_batch(data, args.batch_size)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{cpu_name()}, {os.cpu_count()} cores, load average at start "
                         f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}, "
                         f"devices {[d.name for d in tf.config.list_logical_devices()]}",
              "tensorflow": tf.__version__, "config": {"flow": vars(args) | {"image_shape": image_shape}}}
    if "implementations" not in args.skip:
        report["implementations"] = bench_implementations(flow_cfg, data, batch, args)
        print(json.dumps(report["implementations"], indent=1), flush=True)
    if "input_pipeline" not in args.skip:
        report["input_pipeline"] = bench_input_pipeline(flow_cfg, data, args)
        print(json.dumps(report["input_pipeline"], indent=1), flush=True)
    if "train" not in args.skip:
        report["train"] = bench_train(flow_cfg, data, args)
        print(json.dumps(report["train"], indent=1), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
