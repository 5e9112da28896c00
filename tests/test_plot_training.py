"""tools/plot_training.py: curves and table from a run's TensorBoard logs; clear errors on bad runs or tags."""
import sys
from pathlib import Path

import pytest

from pipeline.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import plot_training  # noqa: E402


def test_curves_follow_the_logged_steps_and_the_table_names_them(tiny_ncsn_run, tmp_path, capsys):
    curves = plot_training.run_curves(tiny_ncsn_run, ["eval/dsm_loss", "train/loss"])
    assert [step for step, _ in curves["eval/dsm_loss"]] == [2, 4]       # --checkpoint-every 2, --steps 4
    assert all(value > 0 for _, value in curves["train/loss"])
    out = tmp_path / "fig" / "curves.png"
    assert plot_training.main(["--runs", str(tiny_ncsn_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    table = capsys.readouterr().out
    assert f"| {tiny_ncsn_run.name} | eval/dsm_loss |" in table and "(step 4)" in table


def test_unknown_tag_and_missing_logs_are_user_errors(tiny_ncsn_run, tmp_path):
    with pytest.raises(UserError, match="no scalar eval/nope.*it has .*eval/dsm_loss"):
        plot_training.run_curves(tiny_ncsn_run, ["eval/nope"])
    with pytest.raises(UserError, match="no logs/ folder"):
        plot_training.run_curves(tmp_path, ["train/loss"])
