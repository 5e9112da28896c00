"""bench/speed.py runs end to end on a tiny mel set and reports consistent timings."""
import json
import sys
from pathlib import Path

import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import speed  # noqa: E402
from pipeline.errors import UserError  # noqa: E402
from pipeline.mel import MelConfig  # noqa: E402
from separation.basis import BasisConfig  # noqa: E402


def test_speed_table_for_the_shipped_glow(mel_dir, tmp_path, capsys):
    out = tmp_path / "speed.json"
    runs = [str(speed.PRETRAINED / f"glow_{s}") for s in ("piano", "violin")]
    assert speed.main(["--families", "glow", "--glow", *runs, "--mel-dir", str(mel_dir), "--batch-size", "2",
                       "--train-batch-size", "2", "--steps", "2", "--timing-steps", "1", "--repeats", "1",
                       "--train-steps", "4", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["family"] == "glow" and row["priors"] == " + ".join(runs)
    for key in ("net_ms", "train_step_ms", "bare_ms", "peak_mb"):
        assert row[key] > 0
    # RTF = step time x L x T x patches per audio second / batch (half-overlapping 64-frame patches)
    assert row["rtf_derived"] == pytest.approx(row["step_ms"] / 1e3 * 10 * 2 * (16000 / 512 / 32) / 2, rel=1e-6)
    assert "| glow | 2 |" in capsys.readouterr().out
    assert out.with_suffix(".md").read_text().count("| glow |") == 1


def test_without_shipped_priors_the_bench_times_untrained_networks_of_the_shipped_shape(tmp_path, monkeypatch):
    monkeypatch.setattr(speed, "PRETRAINED", tmp_path)
    priors, origin, steps = speed.priors_of("ncsn", None, MelConfig(), "bfloat16")
    assert origin == "untrained, shipped shape" and steps == 100 and len(priors) == 2
    assert priors[0].image_shape == (96, 64, 1) and priors[0].model.config.width == 16
    assert priors[0].model.input_conv.compute_dtype == tf.bfloat16
    assert speed.priors_of("noisy_glow", None, MelConfig(), "float32")[0] == []
    shipped = Path(__file__).resolve().parents[1] / "pretrained" / "ncsn_piano"
    tuned = json.loads((shipped / "basis.json").read_text())["n_steps_per_level"]
    assert tuned != BasisConfig.n_steps_per_level                  # the shipped T differs from the class default
    assert speed.default_steps([str(shipped)]) == tuned


def test_speed_without_mel_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="mel_params.json missing"):
        speed.main(["--mel-dir", str(tmp_path)])
