"""tools/interpolate_prior.py: α = 0 and 1 give the two priors back, α = 0.5 their mean; mismatches are user errors."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ncsn.training import load_score_model
from pipeline.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import export_prior, interpolate_prior  # noqa: E402


@pytest.fixture(scope="module")
def two_priors(tiny_ncsn_run, tmp_path_factory):
    """The tiny run exported twice: its EMA weights (A) and its raw weights (B), the same network."""
    root = tmp_path_factory.mktemp("two_priors")
    common = ["--kind", "ncsn", "--run", str(tiny_ncsn_run), "--command", "c", "--data-recipe", "d"]
    export_prior.main([*common, "--out", str(root / "a"), "--basis", "n_steps_per_level=3", "--basis-note", "n"])
    export_prior.main([*common, "--out", str(root / "b"), "--raw-weights"])
    return root / "a", root / "b"


def weights(folder):
    return [v.numpy() for v in load_score_model(folder).trainable_variables]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_blend_is_the_weighted_mean_of_the_weights(two_priors, tmp_path, alpha):
    a, b = two_priors
    out = tmp_path / "blend"
    assert interpolate_prior.main(["--kind", "ncsn", "--a", str(a), "--b", str(b), "--alpha", str(alpha),
                                   "--out", str(out)]) == 0
    blended, wa, wb = weights(out), weights(a), weights(b)
    assert any(not np.allclose(x, y) for x, y in zip(wa, wb))         # the two sides differ
    for got, x, y in zip(blended, wa, wb):
        np.testing.assert_allclose(got, (1 - alpha) * x + alpha * y, rtol=1e-6, atol=1e-7)
    record = json.loads((out / "metrics.json").read_text())
    assert record["alpha"] == alpha and record["a"] == str(a) and record["b"] == str(b)
    assert json.loads((out / "config.json").read_text())["interpolated"]["alpha"] == alpha
    assert (out / "basis.json").read_text() == (a / "basis.json").read_text()   # A's tuned settings travel


def test_networks_that_differ_are_refused_before_loading(two_priors, tmp_path):
    a, b = two_priors
    wider = tmp_path / "wider"
    shutil.copytree(b, wider)
    config = json.loads((wider / "config.json").read_text())
    config["model"]["network"]["width"] += 8
    (wider / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="networks differ \\(network"):
        interpolate_prior.main(["--kind", "ncsn", "--a", str(a), "--b", str(wider), "--alpha", "0.5",
                                "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("alpha", ["-0.1", "1.5"])
def test_alpha_outside_the_segment_is_refused(two_priors, tmp_path, alpha):
    a, b = two_priors
    with pytest.raises(UserError, match="--alpha must be in"):
        interpolate_prior.main(["--kind", "ncsn", "--a", str(a), "--b", str(b), "--alpha", alpha,
                                "--out", str(tmp_path / "o")])
