#!/usr/bin/env python
"""Train a RealNVP prior (Dinh et al. 2017) on mel patches or images and report held-out bits/dim.

Examples:
    python train_realnvp.py --dataset digits --run-dir runs/realnvp_digits --steps 2000
    python train_realnvp.py --dataset melspec --mel-dir data/demo/mel --source violin --run-dir runs/realnvp_violin

Re-running with the same --run-dir resumes. See docs/flows.md.
"""
from __future__ import annotations

from flow_models.config import FlowConfig
from flow_models.training import cli_main
from pipeline.errors import run_cli
from train_utils import TrainConfig

DEFAULTS = FlowConfig(architecture="realnvp", n_levels=3, n_steps=3, hidden_width=64, preprocess="logit")
TRAIN_DEFAULTS = TrainConfig(run_dir="runs/realnvp", steps=20000, batch_size=32, learning_rate=1e-3,
                             warmup_steps=500, grad_clip_norm=50.0, ema_decay=0.999, log_every=100,
                             checkpoint_every=1000)


def main(argv=None) -> int:
    return cli_main("realnvp", DEFAULTS, TRAIN_DEFAULTS, __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    run_cli(main)
