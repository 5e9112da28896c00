#!/usr/bin/env python
"""Fine-tune a trained Glow on noisy data x + N(0, sigma^2), one checkpoint per sigma (the noisy Glow of BASIS).

sigma is in the model's input units ([0, 1]-scaled mel or pixels), the units BASIS anneals in. The runs are
chained from the smallest sigma upwards, each starting from the previous one (Jayaram & Thickstun 2020).
Load them with flow_models.flow_builder.load_noisy_flows(OUT_DIR).

Example:
    python train_noisy_glow.py --clean-run runs/glow_piano --out-dir runs/noisy_glow_piano --steps 2000
"""
from __future__ import annotations

import argparse

import train_utils
from flow_models.training import train_noisy_family
from ncsn.sigmas import geometric_sigmas
from pipeline.errors import UserError, run_cli

TRAIN_DEFAULTS = train_utils.TrainConfig(run_dir="(one per sigma under --out-dir)", steps=2000, batch_size=32,
                                         learning_rate=1e-4, warmup_steps=100, grad_clip_norm=50.0,
                                         ema_decay=0.999, log_every=100, checkpoint_every=500)


def parse_sigmas(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sigmas: expected comma-separated numbers, got {text!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean-run", required=True, help="run folder of the clean Glow (train_glow.py --run-dir); "
                                                           "it must use --preprocess centre")
    parser.add_argument("--out-dir", help="folder for the per-sigma runs (default: <clean-run>_noisy)")
    parser.add_argument("--sigma-max", type=float, default=1.0, help="largest noise std, input units (default 1.0)")
    parser.add_argument("--sigma-min", type=float, default=0.01, help="smallest noise std (default 0.01)")
    parser.add_argument("--n-sigmas", type=int, default=10,
                        help="geometric levels from --sigma-max to --sigma-min, as BASIS/NCSN (default 10)")
    parser.add_argument("--sigmas", type=parse_sigmas,
                        help="explicit comma-separated noise levels instead of the geometric schedule")
    parser.add_argument("--eval-examples", type=int, default=1000,
                        help="held-out examples for the bits/dim of the noisy data (default 1000)")
    parser.add_argument("--n-samples", type=int, default=32, help="samples per figure; 0: no sample figures (default 32)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    train_utils.add_train_arguments(parser, TRAIN_DEFAULTS)
    args = parser.parse_args(argv)
    if args.sigmas:
        sigmas = args.sigmas
    else:
        if not 0 < args.sigma_min < args.sigma_max or args.n_sigmas < 2:
            raise UserError("--sigma-min/--sigma-max/--n-sigmas: need 0 < sigma-min < sigma-max and n-sigmas >= 2")
        sigmas = geometric_sigmas(args.sigma_max, args.sigma_min, args.n_sigmas)
    out_dir = args.out_dir or args.clean_run.rstrip("/") + "_noisy"
    train_cfg = train_utils.train_config_from_args(args)
    for sigma, bits in train_noisy_family(args.clean_run, out_dir, sigmas, train_cfg, args.eval_examples,
                                          args.n_samples, args.temperature):
        print(f"sigma {sigma:.4f}: held-out bits/dim of noisy data {bits:.4f}")
    print(f"noisy flows in {out_dir} (load with flow_models.flow_builder.load_noisy_flows)")
    return 0


if __name__ == "__main__":
    run_cli(main)
