"""tools/eval_prior.py: held-out DSM loss of NCSN checkpoints on another mel folder; clear errors on bad input."""
import json
import sys
from pathlib import Path

import pytest

import train_ncsn
from pipeline.errors import UserError
from pipeline.mel import MelConfig
from test_ncsn_train import TWO_STAGES, small_mel_dir
from train_utils import read_scalars

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import eval_prior  # noqa: E402

SMALL_MEL = MelConfig(n_mels=32, patch_frames=16)


@pytest.fixture(scope="module")
def mel_run(tmp_path_factory):
    """A 4-step mel NCSN (piano) with checkpoints and held-out losses at steps 2 and 4, and its data."""
    root = tmp_path_factory.mktemp("eval_prior")
    mel_dir = small_mel_dir(root / "mel", SMALL_MEL)
    run = root / "piano"
    train_ncsn.main(["--dataset", "melspec", "--mel-dir", str(mel_dir), "--source", "piano", "--run-dir", str(run),
                     "--steps", "4", "--checkpoint-every", "2", "--batch-size", "8", "--width", "4",
                     "--learning-rate", "1e-2", "--ema-decay", "0.5", "--n-samples", "2", "--n-steps-per-level", "1",
                     "--n-wavs", "0", "--eval-examples", "8", *TWO_STAGES])
    return run, mel_dir


def test_scores_reproduce_the_loss_the_run_logged_at_each_checkpoint(mel_run):
    run, mel_dir = mel_run
    logged = dict(read_scalars(run / "logs")["eval/dsm_loss"])
    rows = eval_prior.score_prior(run, mel_dir, [2, 4], None, max_examples=8)
    assert [(r["step"], r["source"], r["examples"]) for r in rows] == [(2, "piano", 8), (4, "piano", 8)]
    for row in rows:           # same patches, same seeded noise, same EMA weights as the run's own evaluation
        assert row["dsm_loss"] == pytest.approx(logged[row["step"]], rel=1e-4)
    assert rows[0]["dsm_loss"] != pytest.approx(rows[1]["dsm_loss"], rel=1e-3)   # two checkpoints, two models


def test_cli_scores_the_latest_checkpoint_on_another_instrument_and_writes_json(mel_run, tmp_path, capsys):
    run, mel_dir = mel_run
    out = tmp_path / "loss.json"
    assert eval_prior.main(["--mel-dir", str(mel_dir), "--priors", str(run), "--source", "violin",
                            "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["step"], r["source"], r["examples"]) for r in rows] == [(4, "violin", 8)]
    assert rows[0]["dsm_loss"] > 0 and rows[0]["conv_dtype"] == "float32"
    assert f"| {run} | 4 | violin | 8 | float32 |" in capsys.readouterr().out


def test_bfloat16_convolutions_change_the_loss_only_by_rounding(mel_run):
    run, mel_dir = mel_run
    exact, = eval_prior.score_prior(run, mel_dir, [4], None, max_examples=8)
    rounded, = eval_prior.score_prior(run, mel_dir, [4], None, max_examples=8, conv_dtype="bfloat16")
    assert rounded["conv_dtype"] == "bfloat16"
    assert rounded["dsm_loss"] == pytest.approx(exact["dsm_loss"], rel=2e-2)
    assert rounded["dsm_loss"] != exact["dsm_loss"]


def test_missing_checkpoint_other_mel_parameters_and_missing_folder_are_user_errors(mel_run, tmp_path):
    run, mel_dir = mel_run
    with pytest.raises(UserError, match=r"ckpt-3\.index: no checkpoint of step 3"):
        eval_prior.score_prior(run, mel_dir, [3], None, max_examples=8)
    other = small_mel_dir(tmp_path / "mel48", MelConfig(n_mels=48, patch_frames=16))
    with pytest.raises(UserError, match=r"patches \(48, 16, 1\) do not match"):
        eval_prior.score_prior(run, other, None, None, max_examples=8)
    with pytest.raises(UserError, match="test: folder not found"):
        eval_prior.main(["--mel-dir", str(tmp_path / "nowhere"), "--priors", str(run)])


def test_a_mel_run_logs_its_loss_on_the_other_instrument_and_the_gap(mel_run):
    run, mel_dir = mel_run
    logged = {tag: dict(values) for tag, values in read_scalars(run / "logs").items()}
    other = eval_prior.score_prior(run, mel_dir, [2, 4], "violin", max_examples=8)   # the piano prior on violin
    for row in other:
        step = row["step"]
        assert logged["eval/dsm_loss_other"][step] == pytest.approx(row["dsm_loss"], rel=1e-4)
        assert logged["eval/dsm_loss_gap"][step] == pytest.approx(
            logged["eval/dsm_loss_other"][step] - logged["eval/dsm_loss"][step], rel=1e-4, abs=1e-3)


def test_refined_levels_keep_the_trained_losses_and_report_every_level(mel_run, capsys):
    run, mel_dir = mel_run
    plain, = eval_prior.score_prior(run, mel_dir, [4], None, max_examples=8, per_level=True)
    dense, = eval_prior.score_prior(run, mel_dir, [4], None, max_examples=8, refine_levels=2, per_level=True)
    n = len(plain["dsm_loss_per_level"])
    assert dense["levels"] == 2 * n - 1 == len(dense["dsm_loss_per_level"])
    assert dense["dsm_loss_per_level"][::2] == pytest.approx(plain["dsm_loss_per_level"], rel=1e-4)
    assert eval_prior.main(["--mel-dir", str(mel_dir), "--priors", str(run), "--refine-levels", "2", "--per-level"]) == 0
    assert f"{2 * n - 1} levels:" in capsys.readouterr().out
