#!/usr/bin/env python
"""Turn a finished training run into a small shipped prior under ``pretrained/``.

Keeps what separation needs and what a reader needs to trust it, and nothing else::

    OUT/config.json                    the run's config (model, data, training settings)
    OUT/checkpoints/ckpt-<step>.*      the EMA weights only (no optimizer state): a third of a training checkpoint;
                                       ``--raw-weights`` exports the optimizer's own weights instead (to measure EMA)
    OUT/metrics.json                   the last held-out metrics logged by the run, step, parameter count
    OUT/PRIOR.md                       the exact training command, the data recipe, the metrics
    OUT/basis.json                     (``--basis``) BASIS step settings tuned for this prior, which
                                       run_basis_sep.py uses unless its flags say otherwise

A noisy-Glow family (``--kind noisy_glow``, a folder of ``sigma_*`` runs) is exported run by run.

    python tools/export_prior.py --kind ncsn --run runs/prior_ncsn_piano --out pretrained/ncsn_piano \\
        --command "python train_ncsn.py ..." --data-recipe "python -m pipeline.render ..."
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import UserError, log, run_cli  # noqa: E402


def load_trained(kind: str, run: Path, use_ema: bool = True):
    if kind == "ncsn":
        from ncsn.training import load_score_model
        return load_score_model(run, use_ema=use_ema)
    from flow_models.flow_builder import load_flow
    return load_flow(run, use_ema=use_ema)


def export_run(kind: str, run: Path, out: Path, command: str, data_recipe: str, notes: str,
               use_ema: bool = True) -> dict:
    import numpy as np
    import train_utils
    step = train_utils.checkpoint_step(run)
    if step == 0:
        raise UserError(f"{run}: no checkpoint to export")
    model = load_trained(kind, run, use_ema)
    weights = "EMA" if use_ema else "raw (not averaged)"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = json.loads((run / train_utils.CONFIG_FILE).read_text())
    mel_dir = (config.get("model", {}).get("data") or {}).get("mel_dir")
    if (config.get("model", {}).get("data") or {}).get("dataset") == "melspec":
        params = Path(mel_dir or "") / "mel_params.json"
        if not params.is_file():
            raise UserError(f"{run}: trained on mel patches from {mel_dir}, but {params} is missing; the shipped prior "
                            "must carry its mel parameters")
        config["mel_params"] = json.loads(params.read_text())    # the training data's folder is not shipped
    (out / train_utils.CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    for extra in ("samples/sampler.json",):                 # NCSN sampler settings live beside the config
        if (run / extra).is_file():
            (out / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(run / extra, out / extra)
    train_utils.export_weights(model, out, step)
    scalars = train_utils.read_scalars(run / train_utils.LOG_DIR)
    metrics = {tag.split("/", 1)[1]: values[-1][1] for tag, values in scalars.items() if tag.startswith("eval/")}
    metrics_step = max((values[-1][0] for tag, values in scalars.items() if tag.startswith("eval/")), default=None)
    parameters = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    size_mb = sum(p.stat().st_size for p in (out / train_utils.CHECKPOINT_DIR).iterdir()) / 2**20
    record = {"kind": kind, "step": step, "weights": weights, "parameters": parameters, "checkpoint_mb": round(size_mb, 2),
              "held_out": metrics, "held_out_step": metrics_step, "exported_from": str(run), "command": command, "data_recipe": data_recipe,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    (out / "metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [f"# {out.name}", "", f"{kind} prior, {parameters:,} parameters, {weights} weights at step {step} "
             f"({size_mb:.1f} MB), exported {record['date']} from `{run}`.", "",
             "## Training command", "", "```", command, "```", "", "## Data recipe", "", "```", data_recipe, "```", "",
             f"## Held-out metrics (last evaluation of the run, step {metrics_step})", "",
             *[f"- {name}: {value:.4f}" for name, value in sorted(metrics.items())], ""]
    if notes:
        lines += ["## Notes", "", notes, ""]
    (out / "PRIOR.md").write_text("\n".join(lines))
    log.info("%s: exported %s step %d (%.1f MB)", out, run, step, size_mb)
    return record


def yes_no(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, not {text!r}")
    return text.lower() == "true"


# the BasisConfig fields run_basis_sep.py reads, and its --refine-levels and --flow-inputs
BASIS_KEYS = {"n_steps_per_level": int, "step_lr": float, "gamma_scale": float, "init": str, "n_chains": int,
              "selection_draws": int, "select_after_levels": int, "stitch": str, "stitch_temperature": float,
              "refine_levels": int, "flow_inputs": str, "score_rms_limit": float, "box_pull": yes_no}


def parse_basis(pairs: list[str], note: str) -> dict:
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in BASIS_KEYS or not value:
            raise UserError(f"--basis {pair}: expected KEY=VALUE with KEY one of {', '.join(BASIS_KEYS)}")
        try:
            settings[key] = BASIS_KEYS[key](value)
        except ValueError as e:
            raise UserError(f"--basis {pair}: {e}") from None
    if settings and not note:
        raise UserError("--basis needs --basis-note: say where the settings were measured")
    return {**settings, "note": note} if settings else {}


def write_basis(out: Path, basis: dict) -> None:
    if basis:
        (out / "basis.json").write_text(json.dumps(basis, indent=1) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--kind", required=True, choices=("ncsn", "glow", "noisy_glow"), help="prior family")
    p.add_argument("--run", required=True, help="training run folder (noisy_glow: the folder of sigma_* runs)")
    p.add_argument("--out", required=True, help="output folder, e.g. pretrained/ncsn_piano (replaced)")
    p.add_argument("--command", required=True, help="the exact command that trained the run")
    p.add_argument("--data-recipe", required=True, help="the commands that made its training data")
    p.add_argument("--notes", default="", help="free text appended to PRIOR.md")
    p.add_argument("--raw-weights", action="store_true",
                   help="export the optimizer's weights instead of their moving average (EMA), e.g. to measure EMA")
    p.add_argument("--basis", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"tuned BASIS settings for basis.json ({', '.join(BASIS_KEYS)}), with --basis-note saying "
                        "where they were measured")
    p.add_argument("--basis-note", default="", help="how the --basis values were chosen (kept in basis.json)")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    if not run.is_dir():
        raise UserError(f"{run}: run folder not found")
    basis = parse_basis(args.basis, args.basis_note)
    if args.kind != "noisy_glow":
        export_run(args.kind, run, out, args.command, args.data_recipe, args.notes, not args.raw_weights)
        write_basis(out, basis)
        return 0
    members = sorted(p.parent for p in run.glob("sigma_*/config.json"))
    if not members:
        raise UserError(f"{run}: no sigma_*/config.json runs (train them with train_noisy_glow.py)")
    if out.exists():
        shutil.rmtree(out)
    for member in members:
        export_run("glow", member, out / member.name, args.command, args.data_recipe, args.notes, not args.raw_weights)
    write_basis(out, basis)
    return 0


if __name__ == "__main__":
    run_cli(main)
