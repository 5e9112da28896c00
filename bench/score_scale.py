#!/usr/bin/env python
"""Is a prior's score on the scale annealed Langevin assumes? σ·‖s(x + σz, σ)‖ per dimension, on held-out data.

For the score of the σ-smoothed data density, σ ∇log p_σ(x + σz) = −E[z | x + σz], whose root mean square over
dimensions is at most about 1 (Jensen); for a Gaussian N(μ, v) it is σ / sqrt(v + σ²). BASIS and NCSN sampling
take steps η_i s with η_i ∝ σ_i², sized for that scale: a prior whose ratio is 100 at some σ takes steps 100 times
too long there. This measures, per σ level, the per-example root mean square of σ s(x + σz) over held-out
examples (median, 90th percentile, largest). A clean flow is scored at the noisy points as BASIS scores it, with
``--flow-inputs`` clip (projected onto [0, 1]) or raw.

Example (results/mnist/, session 20):
    python bench/score_scale.py --prior glow --checkpoint pretrained/glow_mnist --dataset mnist_subset \\
        --flow-inputs clip raw --out results/mnist/score_scale_glow.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from pipeline.errors import UserError, run_cli  # noqa: E402
from separation.priors import FLOW_INPUTS, PRIOR_KINDS  # noqa: E402


def score_scale(prior, examples: np.ndarray, sigma_levels: Sequence[float], seed: int = 0) -> np.ndarray:
    """``[L, N]``: for each level i and example n, the root mean square over dimensions of σ_i s(x_n + σ_i z, i)."""
    import tensorflow as tf
    x = tf.constant(examples, tf.float32)
    rows = []
    for level, sigma in enumerate(sigma_levels):
        noisy = x + float(sigma) * tf.random.stateless_normal(tf.shape(x), seed=[seed, level])
        score = prior.score(noisy, tf.constant(level, tf.int32)).numpy().reshape(len(examples), -1)
        rows.append(float(sigma) * np.sqrt(np.mean(np.square(score, dtype=np.float64), axis=1)))
    return np.stack(rows)


def held_out_examples(args, image_shape: Sequence[int]) -> np.ndarray:
    """The first ``--examples`` test examples, zero-padded to the prior's image side when it is larger (flows)."""
    from ncsn.training import DataConfig
    from pipeline.image_datasets import pad_images
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, mel_dir=args.mel_dir or "data/demo/mel",
                      source=args.source)
    examples = data.examples("test", args.examples)
    if not data.is_mel:
        examples = pad_images(examples, image_shape[0])
    if tuple(examples.shape[1:]) != tuple(image_shape):
        raise UserError(f"{args.checkpoint}: the prior models {tuple(image_shape)}, --dataset {args.dataset} gives "
                        f"{tuple(examples.shape[1:])}")
    return examples


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--prior", choices=PRIOR_KINDS, default="ncsn", help="prior family")
    p.add_argument("--checkpoint", required=True, help="the prior's run folder (noisy_glow: the folder of sigma_* runs)")
    p.add_argument("--dataset", required=True, help="held-out data: an image dataset or melspec")
    p.add_argument("--data-dir", help="images: folder holding mnist.npz / cifar-10-batches-py")
    p.add_argument("--mel-dir", help="melspec: TFRecord folder (pipeline.wav_to_spec) with test/")
    p.add_argument("--source", default="piano", help="melspec: instrument")
    p.add_argument("--examples", type=int, default=64, help="held-out examples")
    p.add_argument("--flow-inputs", nargs="+", choices=FLOW_INPUTS, default=["clip"], help="flows: one row set per mode")
    p.add_argument("--sigma-max", type=float, help="clean flows: σ_1 (default 1, as run_basis_sep.py)")
    p.add_argument("--sigma-min", type=float, help="clean flows: σ_L (default 0.01)")
    p.add_argument("--n-levels", type=int, help="clean flows: L (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--out", help="JSON file for the table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from run_basis_sep import schedule_of
    from separation.priors import load_prior
    args = build_parser().parse_args(argv)
    if args.examples < 1:
        raise UserError(f"--examples must be >= 1, not {args.examples}")
    modes = args.flow_inputs if "glow" in args.prior else ["-"]
    report, lines = {"prior": args.prior, "checkpoint": args.checkpoint, "dataset": args.dataset, "rows": []}, []
    lines += ["| inputs | σ | median | 90 % | largest |", "|---|---|---|---|---|"]
    for mode in modes:
        prior = load_prior(args.prior, args.checkpoint, flow_inputs="clip" if mode == "-" else mode)
        sigmas = schedule_of([prior], args)
        scale = score_scale(prior, held_out_examples(args, prior.image_shape), sigmas, args.seed)
        for sigma, values in zip(sigmas, scale):
            row = {"inputs": mode, "sigma": float(sigma), "median": float(np.median(values)),
                   "p90": float(np.percentile(values, 90)), "max": float(np.max(values))}
            report["rows"].append(row)
            lines.append(f"| {mode} | {sigma:.4g} | {row['median']:.3g} | {row['p90']:.3g} | {row['max']:.3g} |")
    print(f"σ·RMS(s(x + σz)) of the {args.prior} prior {args.checkpoint} on {args.examples} held-out {args.dataset} examples "
          f"(≤ about 1 for the smoothed density's score)\n" + "\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
