#!/usr/bin/env python
"""Blend the weights of two priors of one architecture: θ = (1 − α) θ_A + α θ_B, written as a shipped prior.

The use it was written for is WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"):
A is a shipped prior, B the same prior fine-tuned on other data; the blends between them may keep A's
behaviour on data neither saw while taking some of what B learnt. Both must have the same network (the
``model`` section of their ``config.json`` may differ only in ``data`` and ``init_from``). Each side loads
its EMA weights when it has them (a shipped prior holds only those).

    OUT/config.json      A's config, with an ``"interpolated"`` record (A, B, α)
    OUT/checkpoints/     the blended weights, as tools/export_prior.py writes them
    OUT/basis.json       A's, when it has one (its BASIS settings were tuned for A)
    OUT/metrics.json     the record (A, B, α, parameters, date); no held-out metric: score the blend yourself
    OUT/PRIOR.md         the same in prose, with the command that made it

    python tools/interpolate_prior.py --kind ncsn --a pretrained/ncsn_piano --b runs/s19_ft_ncsn_piano \\
        --alpha 0.5 --out runs/wise_ncsn_piano_a0.5
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import UserError, log, read_json, run_cli  # noqa: E402
from tools.export_prior import load_trained  # noqa: E402

DATA_KEYS = ("data", "init_from")     # parts of a config's model section that do not shape the network


def architecture(config: dict) -> dict:
    """The ``model`` section of a config without what describes the data (two priors blend when these match)."""
    return {key: value for key, value in config.get("model", {}).items() if key not in DATA_KEYS}


def blend_weights(model_a, model_b, alpha: float) -> None:
    """Set ``model_a``'s trainable variables to (1 − α) A + α B, in place; shapes must match variable by variable."""
    variables_a, variables_b = list(model_a.trainable_variables), list(model_b.trainable_variables)
    if [tuple(v.shape) for v in variables_a] != [tuple(v.shape) for v in variables_b]:
        raise UserError("--a and --b: the networks' variables differ in number or shape")
    for a, b in zip(variables_a, variables_b):
        a.assign((1.0 - alpha) * a + alpha * b)


def interpolate(kind: str, a: Path, b: Path, alpha: float, out: Path, command: str) -> dict:
    import numpy as np
    import train_utils
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha must be in [0, 1] (0 gives A, 1 gives B), not {alpha}")
    missing = "not found; --a and --b must be prior or run folders"
    config_a, config_b = read_json(a / "config.json", missing), read_json(b / "config.json", missing)
    net_a, net_b = architecture(config_a), architecture(config_b)
    if net_a != net_b:
        differs = sorted(k for k in set(net_a) | set(net_b) if net_a.get(k) != net_b.get(k))
        raise UserError(f"--a {a} and --b {b}: their networks differ ({', '.join(differs)} in config.json)")
    model, model_b = load_trained(kind, a), load_trained(kind, b)
    blend_weights(model, model_b, alpha)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    record = {"kind": kind, "a": str(a), "b": str(b), "alpha": alpha,
              "step_a": train_utils.checkpoint_step(a), "step_b": train_utils.checkpoint_step(b),
              "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
              "command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    (out / train_utils.CONFIG_FILE).write_text(json.dumps({**config_a, "interpolated": record}, indent=2) + "\n")
    for extra in ("basis.json", "samples/sampler.json"):
        if (a / extra).is_file():
            (out / extra).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(a / extra, out / extra)
    train_utils.export_weights(model, out, record["step_a"])
    (out / "metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "PRIOR.md").write_text("\n".join([
        f"# {out.name}", "", f"{kind} prior, {record['parameters']:,} parameters: the weights "
        f"(1 − {alpha:g}) × `{a}` (step {record['step_a']}) + {alpha:g} × `{b}` (step {record['step_b']}), "
        f"made {record['date']}. Config and basis.json are A's. Not trained as such: no held-out metric.", "",
        "## Command", "", "```", command, "```", ""]))
    log.info("%s: %.2f x %s + %.2f x %s", out, 1 - alpha, a, alpha, b)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--kind", required=True, choices=("ncsn", "glow"), help="prior family of both")
    p.add_argument("--a", required=True, help="first prior or run folder (α = 0 gives it back)")
    p.add_argument("--b", required=True, help="second prior or run folder (α = 1 gives it back)")
    p.add_argument("--alpha", required=True, type=float, help="weight of B, in [0, 1]")
    p.add_argument("--out", required=True, help="output folder (replaced)")
    args = p.parse_args(argv)
    for side in (args.a, args.b):
        if not Path(side).is_dir():
            raise UserError(f"{side}: prior folder not found")
    command = "python tools/interpolate_prior.py " + " ".join(sys.argv[1:] if argv is None else argv)
    interpolate(args.kind, Path(args.a), Path(args.b), args.alpha, Path(args.out), command)
    return 0


if __name__ == "__main__":
    run_cli(main)
