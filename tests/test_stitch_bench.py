"""bench/stitch.py: one separation, re-stitched several ways, each scored."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import stitch  # noqa: E402


def test_restitching_one_separation_changes_only_the_overlaps(triplet_excerpt, tmp_path):
    data = triplet_excerpt(6.0)
    name = next((data / "mix").iterdir()).name
    out = tmp_path / "out"
    assert stitch.main(["--data", str(data), "--steps", "1", "--batch-size", "4", "--temperatures", "50",
                        "--random-draws", "1", "--out", str(out)]) == 0
    report = json.loads((out / "stitch.json").read_text())
    assert [r["stitching"] for r in report["rows"]] == ["crossfade", "select, T = 50 nats", "select, hard pick",
                                                        "random hard pick 1 (control)"]
    assert all(np.isfinite(r["median"][s]) for r in report["rows"] for s in ("piano", "violin"))
    stem = Path(name).stem
    mels = [np.load(out / "_mels" / f"v{i}" / stem / "piano.npy") for i in range(4)]
    np.testing.assert_array_equal(mels[0], np.load(out / "_mels" / "base" / stem / "piano.npy"))
    hop = 32
    for other in mels[1:]:          # the same patches: only frames covered by two of them can change
        np.testing.assert_array_equal(other[:, :hop], mels[0][:, :hop])
    assert not np.allclose(mels[2], mels[0])
    assert json.loads((out / "_mels" / "v2" / stem / "meta.json").read_text())["basis"]["stitch"] == "select"
    assert "| select, hard pick |" in (out / "stitch.md").read_text()
