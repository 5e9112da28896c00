"""melspec_inversion_basis.py / separation.inversion: the three routes on TRUE mels, the gain round trip, bad inputs."""
import dataclasses
import json

import numpy as np
import pytest

import melspec_inversion_basis
from bss_eval_v4 import evaluate_methods
from oracle_systems import mel_oracle
from pipeline.audio_io import load_audio, save_audio
from pipeline.errors import UserError, log, run_cli
from pipeline.mel import MelConfig, mel_basis, mel_power, mel_scaled
from separation.audio import TARGET_RMS_DB
from separation.inversion import (SOURCES, InversionConfig, invert_folder, linear_power, read_separated,
                                 wiener_masks, write_true_mels)

CFG = MelConfig()


@pytest.fixture(scope="module")
def true_sep(rendered, tmp_path_factory):
    """TRUE source mels of the rendered test triplets as a separated-mel folder, at a gain far from 1 (≈ -12 dB)."""
    root, _ = rendered
    data = root / "test"
    sep = tmp_path_factory.mktemp("true_mels")
    write_true_mels(data, sep, CFG, target_rms_db=TARGET_RMS_DB - 12.0, progress=False)
    return data, sep


@pytest.fixture(scope="module")
def inverted(true_sep, tmp_path_factory):
    data, sep = true_sep
    out = tmp_path_factory.mktemp("inverted")
    for route in ("wiener", "magnitude", "griffinlim"):
        inv = InversionConfig(route=route, mel_inverse="pinv" if route != "wiener" else None, griffinlim_iters=16)
        invert_folder(sep, out / route, inv, layout="per-source", progress=False)
    return data, out


@pytest.mark.parametrize("method", ["pinv", "nnls", "transpose"])
def test_linear_power_keeps_the_level(method):
    """Every mel inverse maps a flat spectrum's mel power back onto it (the magnitude routes need the level)."""
    basis = mel_basis(CFG).astype(np.float64)
    flat = np.full((CFG.n_bins, 3), 2.0)
    linear = linear_power(basis @ flat, basis, method)
    np.testing.assert_allclose(basis @ linear, basis @ flat, rtol=1e-6)
    if method == "transpose":                                    # normalised: flat stays flat where bands cover
        np.testing.assert_allclose(linear[basis.sum(axis=0) > 0], 2.0, rtol=1e-6)


def test_meta_round_trip_and_gain(true_sep):
    data, sep = true_sep
    folders = sorted(p for p in sep.iterdir() if p.is_dir())
    meta = json.loads((folders[0] / "meta.json").read_text())
    separated = read_separated(folders[0])
    mixture = load_audio(data / "mix" / f"{folders[0].name}.wav", CFG.sample_rate)
    assert separated.mixture_path == (data / "mix" / f"{folders[0].name}.wav").absolute()
    assert separated.n_samples == len(mixture) and separated.cfg == CFG
    assert separated.gain == pytest.approx(meta["gain"]) and separated.gain < 0.5      # normalised ≈ 12 dB down
    assert separated.mels.shape == (2, CFG.n_mels, 1 + len(mixture) // CFG.hop_length)
    piano = load_audio(data / "piano" / f"{folders[0].name}.wav", CFG.sample_rate)
    np.testing.assert_allclose(separated.mels[0], mel_scaled(piano * separated.gain, CFG), atol=1e-6)


def test_wiener_is_the_mel_oracle_and_sums_to_the_mixture(inverted):
    data, out = inverted
    name = sorted(p.name for p in (data / "mix").iterdir())[0]
    mix = load_audio(data / "mix" / name, CFG.sample_rate)
    sources = np.stack([load_audio(data / s / name, CFG.sample_rate) for s in SOURCES])
    estimates = np.stack([load_audio(out / "wiener" / s / name, CFG.sample_rate) for s in SOURCES])
    np.testing.assert_allclose(estimates.sum(axis=0), mix, atol=1e-4)
    oracle = mel_oracle(mix, sources, CFG)          # same maths from the unclipped, un-normalised mel powers
    assert np.sqrt(np.mean((estimates - oracle) ** 2)) < 1e-3 * np.sqrt(np.mean(sources ** 2))


def test_mask_exponent_sharpens_the_wiener_masks():
    rng = np.random.default_rng(0)
    basis = mel_basis(CFG)
    powers = rng.gamma(0.5, 1.0, size=(2, CFG.n_mels, 20))                       # two sources' mel powers
    masks = {a: wiener_masks(powers, basis, "transpose", a) for a in (1.0, 2.0, 4.0)}
    for m in masks.values():
        np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-6)
        assert m.min() >= 0.0 and m.max() <= 1.0
    linear = np.stack([linear_power(p, basis, "transpose") for p in powers])
    covered = basis.sum(axis=0) > 0
    power_ratio = linear[0][covered] / linear.sum(axis=0)[covered]
    np.testing.assert_allclose(masks[2.0][0][covered], power_ratio, rtol=1e-6)              # 2: Wiener
    sharpness = {a: np.abs(m[0][covered] - 0.5).mean() for a, m in masks.items()}
    assert sharpness[1.0] < sharpness[2.0] < sharpness[4.0] < 0.5
    with pytest.raises(UserError, match="mask-exponent"):
        InversionConfig(mask_exponent=0.0)


def test_routes_separate_true_mels(inverted):
    """Wiener near the mel oracle (> 12 dB), the magnitude route above the mixture in SDR, at the right level.

    Measured on the fixture's 5 test pieces (median SDR piano / violin): mixture 0.97 / -0.97 dB,
    wiener 13.10 / 13.11 dB (= the mel oracle, the ceiling on these pieces), magnitude (pinv) 5.15 / 6.14 dB,
    Griffin-Lim (16 iterations) -3.20 / -3.35 dB."""
    data, out = inverted
    _, summaries = evaluate_methods(data, {"mixture": None, "wiener": out / "wiener", "magnitude": out / "magnitude"},
                                    progress=False)
    for source in SOURCES:
        mixture_sdr = summaries["mixture"][source]["SDR"]
        assert summaries["wiener"][source]["SDR"] > 12.0
        assert summaries["magnitude"][source]["SDR"] > mixture_sdr + 2.0
    # The magnitude route undoes the gain: the estimates come back at the sources' level (within 2 dB).
    for path in sorted((data / "piano").iterdir()):
        for source in SOURCES:
            truth = load_audio(data / source / path.name, CFG.sample_rate)
            estimate = load_audio(out / "magnitude" / source / path.name, CFG.sample_rate)
            assert abs(10 * np.log10(np.sum(estimate ** 2) / np.sum(truth ** 2))) < 2.0


def test_griffinlim_reproduces_the_separated_magnitude(inverted):
    """Griffin-Lim's phase is not the sources' (its SDR is low, see docs/separation_inversion.md), but its
    spectrum is the separated one: in mel magnitude it is much closer to the true source than the mixture is."""
    data, out = inverted
    basis = mel_basis(CFG)
    mel_magnitude = lambda audio: np.sqrt(mel_power(audio, CFG, basis))
    for path in sorted((data / "piano").iterdir()):
        mixture = mel_magnitude(load_audio(data / "mix" / path.name, CFG.sample_rate))
        for source in SOURCES:
            truth = mel_magnitude(load_audio(data / source / path.name, CFG.sample_rate))
            estimate = mel_magnitude(load_audio(out / "griffinlim" / source / path.name, CFG.sample_rate))
            assert np.linalg.norm(estimate - truth) < 0.6 * np.linalg.norm(mixture - truth)


# ------------------------------------------------------------------------------------------ bad inputs

@pytest.fixture
def tiny_sep(tmp_path):
    """A hand-made separated-mel folder for a 1 s noise 'mixture'."""
    n_samples = CFG.sample_rate
    mixture = 0.1 * np.random.default_rng(0).standard_normal(n_samples).astype(np.float32)
    save_audio(tmp_path / "mix" / "noise.wav", mixture, CFG.sample_rate)
    folder = tmp_path / "sep" / "noise"
    folder.mkdir(parents=True)
    shape = (CFG.n_mels, 1 + n_samples // CFG.hop_length)
    for i, source in enumerate(SOURCES):
        np.save(folder / f"{source}.npy", np.full(shape, 0.5 + 0.1 * i, np.float32))
    meta = {"mixture": str(tmp_path / "mix" / "noise.wav"), "gain": 2.0, "n_samples": n_samples,
            "sample_rate": CFG.sample_rate, "prior": "test", "mel_params": dataclasses.asdict(CFG)}
    (folder / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def test_tiny_folder_inverts_with_both_layouts(tiny_sep):
    invert_folder(tiny_sep / "sep", tiny_sep / "a", InversionConfig(), layout="per-mixture", progress=False)
    invert_folder(tiny_sep / "sep", tiny_sep / "b", InversionConfig(route="magnitude"), layout="per-source", progress=False)
    for path in (tiny_sep / "a" / "noise" / "piano.wav", tiny_sep / "b" / "violin" / "noise.wav"):
        assert len(load_audio(path, CFG.sample_rate)) == CFG.sample_rate
    summary = json.loads((tiny_sep / "b" / "inversion.json").read_text())
    assert summary["mel_inverse"] == "nnls" and summary["mixtures"] == 1


def _cli_error(capsys, argv) -> str:
    handlers = list(log.handlers)        # run_cli points the log at pytest's captured stderr; put it back after
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(melspec_inversion_basis.main, argv)
    finally:
        log.handlers[:] = handlers
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_inputs_give_one_line_errors(tiny_sep, capsys):
    sep, out = tiny_sep / "sep", str(tiny_sep / "out")
    folder = sep / "noise"
    assert "missing_dir" in _cli_error(capsys, ["--sep", str(tiny_sep / "missing_dir"), "--out", out])

    np.save(folder / "violin.npy", np.zeros((CFG.n_mels - 1, 32), np.float32))            # wrong bands
    assert "violin.npy" in _cli_error(capsys, ["--sep", str(sep), "--out", out])
    np.save(folder / "violin.npy", np.zeros((CFG.n_mels, 30), np.float32))                # wrong frames
    assert "violin.npy" in _cli_error(capsys, ["--sep", str(sep), "--out", out])
    (folder / "violin.npy").unlink()
    assert "violin.npy" in _cli_error(capsys, ["--sep", str(sep), "--out", out])          # missing npy

    (tiny_sep / "mix" / "noise.wav").rename(tiny_sep / "elsewhere.wav")
    assert "noise.wav" in _cli_error(capsys, ["--sep", str(sep), "--out", out])           # missing mixture

    (folder / "meta.json").unlink()
    assert "meta.json" in _cli_error(capsys, ["--sep", str(sep), "--out", out])           # missing meta.json
    assert not (tiny_sep / "out").exists()                                                 # nothing half-written


def test_moved_mixtures_and_changed_mixture(tiny_sep):
    moved = tiny_sep / "moved"
    (tiny_sep / "mix").rename(moved)
    with pytest.raises(UserError, match="noise.wav"):
        invert_folder(tiny_sep / "sep", tiny_sep / "out", InversionConfig(), progress=False)
    invert_folder(tiny_sep / "sep", tiny_sep / "out", InversionConfig(), mixture_dir=moved, progress=False)
    save_audio(moved / "noise.wav", np.zeros(CFG.sample_rate // 2, np.float32), CFG.sample_rate)
    with pytest.raises(UserError, match="changed after separation"):
        invert_folder(tiny_sep / "sep", tiny_sep / "out", InversionConfig(), mixture_dir=moved, progress=False)


def test_mask_bench_re_inverts_every_exponent(true_sep, tmp_path, capsys):
    from bench import masks
    data, sep = true_sep
    assert masks.main(["--data", str(data), "--sep", f"oracle={sep}", "--exponents", "2", "4",
                       "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "masks.json").read_text())["rows"]
    assert [(r["method"], r["exponent"]) for r in rows] == [("oracle", 2.0), ("oracle", 4.0)]
    mixture = evaluate_methods(data, {"mixture": None}, CFG.sample_rate, progress=False)[1]["mixture"]
    for row in rows:                             # true mels through either mask separate far above the mixture
        assert all(row["sdr"][s] > mixture[s]["SDR"] + 6.0 for s in SOURCES), row
    assert "| oracle | 4 |" in capsys.readouterr().out
    with pytest.raises(UserError, match="LABEL=FOLDER"):
        masks.main(["--data", str(data), "--sep", str(sep), "--out", str(tmp_path)])
