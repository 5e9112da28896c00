"""tools/spread_table.py: per-track SDR copied out of BSS Eval reports, medians per set and pooled over sets."""
import json
import sys
from pathlib import Path

import pytest

from pipeline.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import spread_table  # noqa: E402


def write_report(path: Path, method: str, sdr: dict[str, tuple[float, float]]) -> Path:
    """A report shaped like bench/separation.py's separation.json, with per-track SDR only."""
    tracks = {t: {"piano": {"SDR": p, "SIR": 0.0}, "violin": {"SDR": v, "SIR": 0.0}} for t, (p, v) in sdr.items()}
    path.write_text(json.dumps({"median": {}, "per_track": {method: tracks}}))
    return path


def test_per_set_and_pooled_medians(tmp_path):
    table = tmp_path / "per_track.json"
    a = write_report(tmp_path / "a.json", "BASIS-ncsn", {"x.wav": (1.0, 10.0), "y.wav": (3.0, 20.0), "z.wav": (8.0, 30.0)})
    b = write_report(tmp_path / "b.json", "BASIS-ncsn", {"u.wav": (5.0, 40.0), "v.wav": (6.0, float("nan"))})
    for report, name in ((a, "setA"), (b, "setB")):
        assert spread_table.main(["add", "--report", str(report), "--method", "BASIS-ncsn", "--set", name,
                                  "--label", "draw 0", "--table", str(table)]) == 0
    out = tmp_path / "per_track.md"
    assert spread_table.main(["render", "--table", str(table), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| draw 0 | 1.0 / 10.0 | 3.0 / 20.0 | 8.0 / 30.0 | 3.00 / 20.00 | 4.00 / 20.00 |" in text
    assert "| draw 0 | 5.0 / 40.0 | 6.0 / nan | 5.50 / 40.00 |" in text          # a NaN track is left out
    # pooled: piano over 1, 3, 8, 5, 6 -> median 5; violin over 10, 20, 30, 40 -> median 25
    assert "| draw 0 | setA + setB | 5 | 5.00 / 25.00 | 4.60 / 25.00 |" in text


def test_bad_inputs_are_user_errors(tmp_path):
    table = tmp_path / "per_track.json"
    report = write_report(tmp_path / "r.json", "NMF", {"x.wav": (1.0, 2.0)})
    args = ["add", "--report", str(report), "--set", "s", "--label", "l", "--table", str(table)]
    with pytest.raises(UserError, match="no method 'BASIS-ncsn'; it has NMF"):
        spread_table.main(args + ["--method", "BASIS-ncsn"])
    spread_table.main(args + ["--method", "NMF"])
    with pytest.raises(UserError, match="already has set 's'; pass --replace"):
        spread_table.main(args + ["--method", "NMF"])
    with pytest.raises(UserError, match="missing.json: no such file"):
        spread_table.main(["render", "--table", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.md")])


def test_paired_differences_pool_over_sets_and_seeds(tmp_path):
    table = tmp_path / "per_track.json"
    runs = {("old s0", "setA"): {"x.wav": (1.0, 10.0), "y.wav": (3.0, 20.0)},
            ("new s0", "setA"): {"x.wav": (2.0, 9.0), "y.wav": (6.0, 20.5), "extra.wav": (99.0, 99.0)},
            ("old s1", "setA"): {"x.wav": (1.0, 10.0), "y.wav": (3.0, float("nan"))},
            ("new s1", "setA"): {"x.wav": (1.0, 11.0), "y.wav": (5.0, 25.0)},
            ("old s0", "setB"): {"u.wav": (4.0, 4.0)}}
    for i, ((label, name), sdr) in enumerate(runs.items()):
        report = write_report(tmp_path / f"r{i}.json", "BASIS-ncsn", sdr)
        spread_table.main(["add", "--report", str(report), "--method", "BASIS-ncsn", "--set", name,
                           "--label", label, "--table", str(table)])
    out = tmp_path / "paired.md"
    assert spread_table.main(["paired", "--table", str(table), "--pair", "old s0", "new s0",
                              "--pair", "old s1", "new s1", "--out", str(out)]) == 0
    text = out.read_text()
    # only tracks both labels have; setB is not shared by the s0 pair, so it is not in the table
    assert "| old s0 | new s0 | setA | 2 | 2.00 / 15.00 | 4.00 / 14.75 | +2.00 / -0.25 |" in text
    assert "setB" not in text
    # pooled over the two seeds: piano diffs 1, 3, 0, 2; violin -1, 0.5, 1 (the NaN pair is left out)
    assert "| all | 4 / 3 | +1.50 ± 0.65 | +0.17 ± 0.60 | 3 / 2 |" in text
    spread_table.main(["paired", "--table", str(table), "--pair", "old s1", "new s1", "--sets", "setA", "--out", str(out)])
    assert "| all | 2 / 1 | +1.00 ± 1.00 | +1.00 ± nan | 1 / 1 |" in out.read_text()
    with pytest.raises(UserError, match="share no evaluation set among setB"):
        spread_table.main(["paired", "--table", str(table), "--pair", "old s1", "new s1", "--sets", "setB"])
    with pytest.raises(UserError, match="no label 'nope'"):
        spread_table.main(["paired", "--table", str(table), "--pair", "old s0", "nope"])
    spread_table.main(["add", "--report", str(write_report(tmp_path / "z.json", "BASIS-ncsn", {"q.wav": (0.0, 0.0)})),
                       "--method", "BASIS-ncsn", "--set", "setC", "--label", "lonely", "--table", str(table)])
    with pytest.raises(UserError, match="share no evaluation set"):
        spread_table.main(["paired", "--table", str(table), "--pair", "old s1", "lonely"])


def test_closed_reader_is_not_a_traceback(tmp_path):
    """``... | head``: a reader that closes the pipe early ends the command quietly (run_cli), with no traceback."""
    import subprocess
    table = tmp_path / "per_track.json"
    report = write_report(tmp_path / "r.json", "NMF", {f"t{i}.wav": (1.0, 2.0) for i in range(50)})
    spread_table.main(["add", "--report", str(report), "--method", "NMF", "--set", "s", "--label", "l", "--table", str(table)])
    script = Path(__file__).resolve().parents[1] / "tools" / "spread_table.py"
    proc = subprocess.Popen([sys.executable, str(script), "render", "--table", str(table), "--out", str(tmp_path / "o.md")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                      # the reader is gone before the command prints its table
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert (tmp_path / "o.md").exists()      # the file was written before the print
