#!/usr/bin/env python
"""Held-out denoising score matching (DSM) loss of NCSN priors on any mel TFRecord folder: a table, one row per
prior and checkpoint.

A run logs ``eval/dsm_loss`` on the test split of its own training data. This scores the same quantity on
another set, e.g. the stems of the `make demo` test mixtures, rendered with a SoundFont and melodies no prior
was trained on, so checkpoints and fine-tuned priors can be compared on the sounds they will separate::

    python tools/eval_prior.py --mel-dir data/demo/mel --priors pretrained/ncsn_piano runs/ft_ncsn_piano \\
        --steps 1000 2000 --out results/prior_loss.json

Each prior is scored on its own instrument (``source`` in its config.json) unless --source says otherwise.
Without --steps each folder's latest checkpoint is scored; with --steps every listed ``ckpt-<step>`` (a folder
that lacks one is an error). The noise is fixed (seeded), so two priors see the same noisy examples.
Units as in training: per example, σ²-weighted squared error summed over the mel bins, mean over the levels.

``--refine-levels F`` scores each prior on its schedule made F times denser (:mod:`ncsn.levels`), and
``--per-level`` adds the loss at every level, so interpolated levels can be compared with their trained
neighbours::

    python tools/eval_prior.py --mel-dir data/demo/mel --priors pretrained/ncsn_piano --refine-levels 2 --per-level
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncsn.precision import CONV_DTYPES, resolve_conv_dtype  # noqa: E402
from ncsn.training import SOURCES  # noqa: E402
from pipeline.audio_io import atomic_output  # noqa: E402
from pipeline.errors import UserError, log, run_cli  # noqa: E402

COLUMNS = ("prior", "step", "source", "examples", "conv_dtype", "dsm_loss", "dsm_loss_level_first", "dsm_loss_level_last")


def checkpoints_of(prior: Path, steps: Sequence[int] | None) -> list[tuple[int, str]]:
    """``[(step, checkpoint prefix)]`` of ``prior``: its latest checkpoint, or the ones of ``steps``."""
    import tensorflow as tf
    from train_utils import CHECKPOINT_DIR
    ckpt_dir = prior / CHECKPOINT_DIR
    if not steps:
        latest = tf.train.latest_checkpoint(str(ckpt_dir))
        if not latest:
            raise UserError(f"{ckpt_dir}: no checkpoint found (a run folder or a pretrained/ prior?)")
        return [(int(re.search(r"ckpt-(\d+)$", latest).group(1)), latest)]
    found = []
    for step in steps:
        prefix = ckpt_dir / f"ckpt-{step}"
        if not Path(f"{prefix}.index").is_file():
            raise UserError(f"{prefix}.index: no checkpoint of step {step} in {prior}")
        found.append((step, str(prefix)))
    return found


def score_prior(prior: Path, mel_dir: Path, steps: Sequence[int] | None, source: str | None,
                max_examples: int, conv_dtype: str = "float32", refine_levels: int = 1,
                per_level: bool = False) -> list[dict]:
    """One row (see :data:`COLUMNS`) per checkpoint of ``prior``."""
    from ncsn.levels import refine_levels as refine
    from ncsn.training import DataConfig, load_score_model, make_eval_fn, read_run_configs
    network, _, trained_on = read_run_configs(prior)
    if not trained_on.is_mel:
        raise UserError(f"{prior}: an NCSN of {trained_on.dataset}, not of mel spectrograms")
    data = DataConfig(dataset="melspec", mel_dir=str(mel_dir), source=source or trained_on.source)
    if tuple(data.image_shape()) != tuple(network.image_shape):
        raise UserError(f"{mel_dir}: patches {tuple(data.image_shape())} do not match {prior}'s "
                        f"{tuple(network.image_shape)} (other mel parameters)")
    examples = data.examples("test", max_examples)
    eval_fn = make_eval_fn(examples, per_level=per_level)
    dtype = resolve_conv_dtype(conv_dtype)
    rows = []
    for step, checkpoint in checkpoints_of(prior, steps):
        model = refine(load_score_model(prior, checkpoint=checkpoint), refine_levels).set_conv_dtype(dtype)
        metrics = eval_fn(model)
        rows.append({"prior": str(prior), "step": step, "source": data.source, "examples": len(examples),
                     "conv_dtype": dtype.name, "levels": int(model.sigma_levels.shape[0]), **metrics})
        log.info("%s step %d (%s): dsm_loss %.2f", prior, step, data.source, metrics["dsm_loss"])
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS) + " |")
    if rows and "dsm_loss_per_level" in rows[0]:
        lines += ["", "DSM loss per level (σ_1 first):", ""]
        lines += [f"- {row['prior']} step {row['step']}, {row['levels']} levels: "
                  + " ".join(f"{v:.1f}" for v in row["dsm_loss_per_level"]) for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--mel-dir", required=True, type=Path,
                   help="TFRecord folder of pipeline.wav_to_spec with a test/ split, e.g. data/demo/mel")
    p.add_argument("--priors", nargs="+", required=True, type=Path,
                   help="NCSN run folders or shipped priors (each with config.json and checkpoints/)")
    p.add_argument("--steps", nargs="+", type=int, help="checkpoint steps to score (default: each folder's latest)")
    p.add_argument("--source", choices=SOURCES,
                   help="instrument to score every prior on (default: each prior's own)")
    p.add_argument("--max-examples", type=int, default=1000, help="at most this many test patches (default 1000)")
    p.add_argument("--conv-dtype", choices=CONV_DTYPES, default="float32",
                   help="dtype of the networks' convolutions (bfloat16: what it costs in loss; auto: as run_basis_sep.py)")
    p.add_argument("--refine-levels", type=int, default=1, metavar="F",
                   help="score each prior on its σ schedule made F times denser (ncsn/levels.py)")
    p.add_argument("--per-level", action="store_true", help="also report the loss at every σ level")
    p.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if not (args.mel_dir / "test").is_dir():
        raise UserError(f"{args.mel_dir}/test: folder not found (make one with python -m pipeline.wav_to_spec)")
    rows = [row for prior in args.priors
            for row in score_prior(prior, args.mel_dir, args.steps, args.source, args.max_examples, args.conv_dtype,
                                          args.refine_levels, args.per_level)]
    print(markdown(rows))
    if args.out:
        with atomic_output(args.out) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1) + "\n")
        log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    run_cli(main)
