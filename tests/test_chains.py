"""Several BASIS chains per mixture: bench/chains.py on images and mel folders, ``--chains`` on the command line."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import chains  # noqa: E402
import run_basis_sep  # noqa: E402


def test_image_rows_replay_one_run_of_k_chains(tiny_ncsn_run, tmp_path):
    assert chains.main(["images", "--checkpoint", str(tiny_ncsn_run), "--dataset", "digits", "--n-pairs", "6",
                        "--batch-size", "3", "--chains", "3", "--steps", "2", "--selection-draws", "3",
                        "--rank-after-levels", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "chains.json").read_text())
    assert report["basis"]["selection_draws"] == 3
    rows, psnr, nll = report["rows"], np.array(report["psnr"]), np.array(report["nll"])
    assert psnr.shape == (3, 6) and nll.shape == (2, 3, 6)          # rankings after 2 levels and at the end
    assert [(r["chains"], r["ranked"]) for r in rows] == [(1, "final"), (2, "after 2 levels"), (2, "final"),
                                                          (3, "after 2 levels"), (3, "final")]
    assert rows[0]["picked_mean"] == rows[0]["single_chain_mean"] == rows[0]["oracle_best_mean"]
    for row in rows:
        ranking = nll[0 if row["ranked"] == "after 2 levels" else 1]
        picked = psnr[ranking[:row["chains"]].argmin(axis=0), np.arange(6)]
        assert np.isclose(row["picked_mean"], picked.mean(), atol=2e-3)
        assert row["oracle_best_mean"] >= row["picked_mean"] - 1e-6
    assert not np.allclose(psnr[0], psnr[1])                 # the chains are different draws
    assert not np.array_equal(nll[0].argmin(axis=0), nll[1].argmin(axis=0))   # the two rankings pick differently
    assert "| 3 | after 2 levels |" in (tmp_path / "chains.md").read_text()


def test_melspec_rows_score_each_selection(triplet_excerpt, tmp_path):
    data = triplet_excerpt(5.0)
    name = next((data / "mix").iterdir()).name
    assert chains.main(["melspec", "--data", str(data), "--chains", "2", "--steps", "1", "--batch-size", "4",
                        "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "chains.json").read_text())
    assert [r["chains"] for r in report["rows"]] == [1, 2]
    assert all(np.isfinite(r["sdr"][s]) for r in report["rows"] for s in ("piano", "violin"))
    stem = Path(name).stem
    metas = [json.loads((tmp_path / "out" / f"_mels_K{k}" / stem / "meta.json").read_text()) for k in (1, 2)]
    assert [m["basis"]["n_chains"] for m in metas] == [1, 2]
    assert (tmp_path / "out" / "K2" / "piano" / name).is_file()


def test_bench_passes_the_basis_flags_it_was_given():
    from bench import separation
    args = separation.build_parser().parse_args(["--data", "d", "--step-lr", "2e-4", "--chains", "2", "--selection-draws", "3",
                                                 "--select-after-levels", "5", "--stitch", "select",
                                                 "--flow-inputs", "raw", "--score-rms-limit", "1", "--no-box-pull"])
    common = ["--step-lr", "0.0002", "--chains", "2", "--selection-draws", "3", "--select-after-levels", "5"]
    flows = ["--flow-inputs", "raw", "--score-rms-limit", "1.0", "--no-box-pull"]
    assert separation.basis_flags(args, "ncsn") == common + ["--stitch", "select"]
    assert separation.basis_flags(args, "glow") == common + flows   # flows always cross-fade
    assert separation.basis_flags(args, "noisy_glow") == common + flows
    assert separation.basis_flags(separation.build_parser().parse_args(["--data", "d"]), "ncsn") == []


def test_chains_flag_reaches_the_separation_and_its_report(tiny_ncsn_run, tmp_path):
    assert run_basis_sep.main(["--dataset", "digits", "--checkpoint", str(tiny_ncsn_run), "--out", str(tmp_path),
                               "--n-pairs", "4", "--batch-size", "4", "--steps", "1", "--chains", "3",
                               "--selection-draws", "2", "--select-after-levels", "4"]) == 0
    report = json.loads((tmp_path / "digits_ncsn_psnr.json").read_text())
    assert (report["n_chains"], report["selection_draws"], report["select_after_levels"]) == (3, 2, 4)


def test_a_glow_judges_the_chains_by_its_exact_density_of_the_saved_chains(tiny_ncsn_run, tmp_path):
    import tensorflow as tf
    from flow_models.flow_builder import load_flow
    from pipeline.image_datasets import pad_images
    glow = chains.PRETRAINED / "glow_mnist"
    assert chains.main(["images", "--checkpoint", str(tiny_ncsn_run), "--dataset", "digits", "--n-pairs", "4",
                        "--batch-size", "4", "--chains", "2", "--steps", "1", "--selection-draws", "2",
                        "--judge-glow", str(glow), "--save-chains", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "chains.json").read_text())
    psnr, nll, judge = np.array(report["psnr"]), np.array(report["nll"]), np.array(report["judge_nll"])
    saved = np.load(tmp_path / "chains.npz")["chains"]                              # [S, K, N, 8, 8, 1]
    assert saved.shape[:3] == (2, 2, 4) and judge.shape == (2, 4)
    flow = load_flow(glow)
    direct = -flow.log_prob(tf.constant(pad_images(np.clip(saved.reshape(-1, 8, 8, 1), 0, 1), 32))).numpy()
    np.testing.assert_allclose(judge, direct.reshape(2, 2, 4).sum(axis=0), rtol=1e-4, atol=0.05)
    rankings = {"final": nll[-1], "glow judge": judge, "final + glow judge": nll[-1] + judge}
    assert [r["ranked"] for r in report["rows"]] == ["final", *rankings]
    for row in report["rows"][1:]:
        picked = psnr[rankings[row["ranked"]].argmin(axis=0), np.arange(4)]
        assert np.isclose(row["picked_mean"], picked.mean(), atol=2e-3)


def test_rejudge_reproduces_the_runs_pick_and_scores_other_draw_counts(tiny_ncsn_run, tmp_path):
    run = tmp_path / "run"
    assert chains.main(["images", "--checkpoint", str(tiny_ncsn_run), "--dataset", "digits", "--n-pairs", "4",
                        "--batch-size", "4", "--chains", "3", "--steps", "2", "--selection-draws", "4",
                        "--save-chains", "--seed", "5", "--out", str(run)]) == 0
    assert chains.main(["rejudge", "--run", str(run), "--selection-draws", "4", "6", "--repeats", "2",
                        "--batch-size", "4", "--out", str(tmp_path / "re")]) == 0
    report = json.loads((tmp_path / "re" / "rejudge.json").read_text())
    rows = {(r["selection_draws"], r["repeat"], r["chains"]): r for r in report["rows"]}
    assert set(rows) == {(d, r, k) for d in (4, 6) for r in (0, 1) for k in (2, 3)}
    run_rows = {r["chains"]: r for r in json.loads((run / "chains.json").read_text())["rows"]}
    for k in (2, 3):            # the run's own draws again: the same chains kept
        assert rows[(4, 0, k)]["same_pick_as_run"] == 1.0
        assert np.isclose(rows[(4, 0, k)]["picked_mean"], run_rows[k]["picked_mean"], atol=2e-3)
    psnr = np.array(json.loads((run / "chains.json").read_text())["psnr"])
    bounds = {key: np.array(nll) for key, nll in report["nll"].items()}
    for key, nll in bounds.items():                          # [K, N] nats; every row picks by its own bound
        assert nll.shape == (3, 4) and np.all(np.isfinite(nll))
        draws, repeat = map(int, key.split("/"))
        assert np.isclose(rows[(draws, repeat, 3)]["picked_mean"], psnr[nll.argmin(axis=0), np.arange(4)].mean(),
                          atol=2e-3)
    assert np.allclose(bounds["4/0"], np.array(json.loads((run / "chains.json").read_text())["nll"])[-1], atol=0.02)
    assert not np.allclose(bounds["4/0"], bounds["4/1"]) and not np.allclose(bounds["4/0"], bounds["6/0"])
    assert "| 6 | 1 | 3 |" in (tmp_path / "re" / "rejudge.md").read_text()


def test_average_scores_the_aligned_mean_of_the_most_probable_saved_chains(tiny_ncsn_run, tmp_path):
    from separation.images import pair_psnr
    run = tmp_path / "run"
    assert chains.main(["images", "--checkpoint", str(tiny_ncsn_run), "--dataset", "digits", "--n-pairs", "4",
                        "--batch-size", "4", "--chains", "3", "--steps", "2", "--selection-draws", "2",
                        "--save-chains", "--seed", "5", "--out", str(run)]) == 0
    assert chains.main(["average", "--run", str(run), "--average-top", "1", "3", "--out", str(tmp_path / "av")]) == 0
    rows = {r["average_top"]: r for r in json.loads((tmp_path / "av" / "average.json").read_text())["rows"]}
    record = json.loads((run / "chains.json").read_text())
    assert np.isclose(rows[1]["psnr_mean"], [r for r in record["rows"] if r["chains"] == 3][0]["picked_mean"], atol=2e-3)
    saved = np.load(run / "chains.npz")
    lead = saved["chains"][:, np.asarray(record["nll"])[-1].argmin(axis=0), np.arange(4)]    # [S, N, ...]
    aligned = []                                          # by hand: each chain in the order closest to the lead
    for k in range(3):
        chain = saved["chains"][:, k]
        swap = ((chain[::-1] - lead) ** 2).sum(axis=(0, 2, 3, 4)) < ((chain - lead) ** 2).sum(axis=(0, 2, 3, 4))
        aligned.append(np.where(swap[None, :, None, None, None], chain[::-1], chain))
    np.testing.assert_allclose(rows[3]["psnr"], pair_psnr(saved["truth"], np.mean(aligned, axis=0)), atol=2e-3)
    assert "| 3 | 3 |" in (tmp_path / "av" / "average.md").read_text()


def test_average_top_reaches_the_separation_and_refuses_an_early_pick(tiny_ncsn_run, tmp_path, capsys):
    import pytest
    assert run_basis_sep.main(["--dataset", "digits", "--checkpoint", str(tiny_ncsn_run), "--out", str(tmp_path),
                               "--n-pairs", "4", "--batch-size", "4", "--steps", "1", "--chains", "3",
                               "--average-top", "2", "--selection-draws", "2"]) == 0
    report = json.loads((tmp_path / "digits_ncsn_psnr.json").read_text())
    assert (report["n_chains"], report["average_top"]) == (3, 2)
    with pytest.raises(SystemExit) as stop:
        run_basis_sep.run_cli(run_basis_sep.main, ["--dataset", "digits", "--checkpoint", str(tiny_ncsn_run),
                                                   "--out", str(tmp_path / "b"), "--chains", "3", "--average-top", "2",
                                                   "--select-after-levels", "2"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--average-top 2" in err and "--select-after-levels" in err and "Traceback" not in err


def test_rejudge_names_a_run_without_saved_chains(tmp_path, capsys):
    import pytest
    (tmp_path / "chains.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        chains.run_cli(chains.main, ["rejudge", "--run", str(tmp_path), "--out", str(tmp_path / "re")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "chains.npz" in err and "--save-chains" in err and "Traceback" not in err
