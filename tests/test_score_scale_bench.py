"""bench/score_scale.py: σ·RMS of a prior's score at noisy held-out points."""
import json

import numpy as np
import pytest

from bench import score_scale
from pipeline.errors import UserError
from separation.priors import GaussianPrior


def test_the_exact_smoothed_score_of_a_gaussian_has_the_predicted_scale():
    rng = np.random.default_rng(0)
    variance = np.full((8, 8, 1), 0.04, np.float32)
    mean = np.full((8, 8, 1), 0.5, np.float32)
    sigmas = (1.0, 0.2, 0.01)
    prior = GaussianPrior(mean, variance, sigmas)
    examples = (mean + np.sqrt(variance) * rng.standard_normal((256, 8, 8, 1))).astype(np.float32)
    scale = score_scale.score_scale(prior, examples, sigmas)
    assert scale.shape == (3, 256)
    expected = np.array(sigmas) / np.sqrt(0.04 + np.square(sigmas))       # σ / sqrt(v + σ²): below 1
    np.testing.assert_allclose(np.median(scale, axis=1), expected, rtol=0.05)


def test_cli_on_a_tiny_ncsn_writes_a_row_per_level(tiny_ncsn_run, tmp_path, capsys):
    out = tmp_path / "scale.json"
    assert score_scale.main(["--checkpoint", str(tiny_ncsn_run), "--dataset", "digits", "--examples", "16",
                             "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    from ncsn.training import load_score_model
    assert len(report["rows"]) == load_score_model(tiny_ncsn_run).config.n_sigmas
    assert all(np.isfinite(row["median"]) and row["median"] <= row["p90"] <= row["max"] for row in report["rows"])
    assert "| - | " in capsys.readouterr().out
    with pytest.raises(UserError, match="the prior models"):
        score_scale.main(["--checkpoint", str(tiny_ncsn_run), "--dataset", "mnist_subset", "--examples", "4"])
