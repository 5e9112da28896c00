"""tools/export_prior.py: a slim shipped prior restores the run's EMA (or raw) weights exactly and records its recipe."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ncsn.training import load_score_model
from pipeline.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import export_prior  # noqa: E402

def test_exported_ncsn_matches_the_run_and_is_smaller(tiny_ncsn_run, tmp_path):
    run, out = tiny_ncsn_run, tmp_path / "pretrained" / "ncsn_digits"
    assert export_prior.main(["--kind", "ncsn", "--run", str(run), "--out", str(out), "--command", "python train_ncsn.py X",
                              "--data-recipe", "sklearn digits"]) == 0
    original, shipped = load_score_model(run), load_score_model(out)
    x = tf.random.stateless_uniform((3, 8, 8, 1), [1, 2])
    levels = tf.constant([0, 4, 9])
    np.testing.assert_array_equal(original(x, levels).numpy(), shipped(x, levels).numpy())
    record = json.loads((out / "metrics.json").read_text())
    assert record["step"] == 4 and record["command"] == "python train_ncsn.py X" and "dsm_loss" in record["held_out"]
    size = lambda folder: sum(p.stat().st_size for p in (folder / "checkpoints").glob("ckpt-4.data*"))
    assert size(out) < 0.5 * size(run)                 # no Adam moments, no second copy of the weights
    assert "python train_ncsn.py X" in (out / "PRIOR.md").read_text()


def test_export_of_a_run_without_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no checkpoint to export"):
        export_prior.main(["--kind", "ncsn", "--run", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                           "--command", "c", "--data-recipe", "d"])


def test_raw_weights_export_holds_the_optimizer_weights_not_their_average(tiny_ncsn_run, tmp_path):
    run = tiny_ncsn_run
    common = ["--kind", "ncsn", "--run", str(run), "--command", "c", "--data-recipe", "d"]
    export_prior.main([*common, "--out", str(tmp_path / "ema")])
    export_prior.main([*common, "--out", str(tmp_path / "raw"), "--raw-weights"])
    x = tf.random.stateless_uniform((2, 8, 8, 1), [3, 4])
    levels = tf.constant([0, 9])
    out = lambda model: model(x, levels).numpy()
    np.testing.assert_array_equal(out(load_score_model(tmp_path / "raw")), out(load_score_model(run, use_ema=False)))
    assert not np.allclose(out(load_score_model(tmp_path / "raw")), out(load_score_model(tmp_path / "ema")))
    assert json.loads((tmp_path / "raw" / "metrics.json").read_text())["weights"].startswith("raw")
    assert "raw (not averaged) weights" in (tmp_path / "raw" / "PRIOR.md").read_text()


def test_tuned_basis_settings_round_trip_to_run_basis_sep(tiny_ncsn_run, tmp_path):
    import argparse
    import run_basis_sep
    out = tmp_path / "shipped"
    export_prior.main(["--kind", "ncsn", "--run", str(tiny_ncsn_run), "--out", str(out), "--command", "c", "--data-recipe", "d",
                       "--basis", "n_steps_per_level=4", "refine_levels=4", "stitch=select", "stitch_temperature=50",
                       "score_rms_limit=1", "box_pull=True", "--basis-note", "measured somewhere"])
    assert run_basis_sep.tuned_settings(out) == {"n_steps_per_level": 4, "stitch": "select", "stitch_temperature": 50.0,
                                                 "score_rms_limit": 1.0, "box_pull": True}
    assert run_basis_sep.refine_factor(argparse.Namespace(refine_levels=None, steps=None), out) == 4
    assert run_basis_sep.refine_factor(argparse.Namespace(refine_levels=2, steps=8), out) == 2
    with pytest.raises(UserError, match="KEY one of"):
        export_prior.parse_basis(["refine=4"], "note")
    with pytest.raises(UserError, match="true or false"):
        export_prior.parse_basis(["box_pull=yes"], "note")
