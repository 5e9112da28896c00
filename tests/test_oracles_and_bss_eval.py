"""Oracle systems and BSS Eval v4 on rendered mixtures."""
import numpy as np
import pytest

from bss_eval_v4 import evaluate_methods, markdown_table, track_scores, write_report
from oracle_systems import ibm, irm, mel_oracle, mwf, run_oracles
from pipeline.masks import mel_ratio_masks, ratio_masks
from pipeline.mel import MelConfig, mel_basis
from pipeline.triplets import list_triplets, load_triplet

CFG = MelConfig()


@pytest.fixture(scope="module")
def track(rendered):
    root, _ = rendered
    name = list_triplets(root / "test")[0]
    audio = load_triplet(root / "test", name, CFG.sample_rate)
    n = 8 * CFG.sample_rate
    return audio["mix"][:n], np.stack([audio["piano"][:n], audio["violin"][:n]])


def sdr(track_mix, sources, estimates):
    return np.array([track_scores(sources, estimates, CFG.sample_rate)[s]["SDR"] for s in ("piano", "violin")])


def test_ibm_mwf_and_mel_oracle_separate(track):
    mix, sources = track
    mixture_sdr = sdr(mix, sources, np.stack([mix, mix]))
    for estimates in (ibm(mix, sources, CFG), mwf(mix, sources, CFG), mel_oracle(mix, sources, CFG)):
        assert np.all(sdr(mix, sources, estimates) > mixture_sdr + 8.0)


def test_perfect_estimate_is_very_high_and_mixture_near_zero(track):
    mix, sources = track
    near_perfect = sources + 1e-5 * np.random.default_rng(123).normal(size=sources.shape)   # exact copies give inf/NaN
    assert np.all(sdr(mix, sources, near_perfect) > 40.0)
    assert np.all((-4.0 < sdr(mix, sources, np.stack([mix, mix]))) & (sdr(mix, sources, np.stack([mix, mix])) < 4.0))


def test_mwf_on_mono_is_the_wiener_filter_and_conserves_the_mixture(track):
    mix, sources = track
    est = mwf(mix, sources, CFG)
    np.testing.assert_allclose(est.sum(axis=0), mix, atol=1e-3)
    wiener = irm(mix, sources, CFG, alpha=2.0)
    assert np.max(np.abs(est - wiener)) < 1e-3


def test_mwf_multichannel_shapes_and_conservation(track):
    mix, sources = track
    n = 2 * CFG.sample_rate
    # Stereo images: piano panned left, violin right, with a little of each in the other channel.
    images = np.stack([np.stack([0.9 * sources[0, :n], 0.3 * sources[0, :n]]),
                       np.stack([0.2 * sources[1, :n], 0.8 * sources[1, :n]])])
    stereo_mix = images.sum(axis=0)
    est = mwf(stereo_mix, images, CFG)
    assert est.shape == images.shape
    np.testing.assert_allclose(est.sum(axis=0), stereo_mix, atol=1e-3)
    err = np.mean((est - images) ** 2) / np.mean(images ** 2)
    assert err < 0.05


def test_masks_sum_to_one_and_cover_all_bins():
    rng = np.random.default_rng(0)
    basis = mel_basis(CFG)
    masks = mel_ratio_masks(rng.random((2, 96, 10)) + 1e-3, basis)
    assert masks.shape == (2, 1025, 10)
    np.testing.assert_allclose(masks.sum(axis=0), 1.0, atol=1e-6)
    # Bins outside 125-7600 Hz copy the nearest covered bin instead of an arbitrary split.
    np.testing.assert_allclose(masks[:, -1], masks[:, 973], atol=1e-6)
    np.testing.assert_allclose(ratio_masks(np.zeros((2, 3, 4))), 0.5)


def test_irm_oracle_beats_12_db_on_rendered_mixtures(rendered, tmp_path):
    """Median over tracks of the per-track median SDR, as in the README table."""
    root, _ = rendered
    run_oracles(root / "test", tmp_path / "est", CFG, methods=["IRM", "mel_oracle"], progress=False)
    per_track, summaries = evaluate_methods(root / "test", {"mixture": None, "IRM": tmp_path / "est" / "IRM"}, progress=False)
    for source in ("piano", "violin"):
        assert summaries["IRM"][source]["SDR"] > 12.0
        assert summaries["IRM"][source]["SDR"] > summaries["mixture"][source]["SDR"] + 8
        # With the reference dither the decomposition is well-posed: no cancelling SIR/SAR terms.
        assert summaries["IRM"][source]["SIR"] > 10.0 and summaries["IRM"][source]["SAR"] > 10.0
    assert summaries["IRM"]["piano"]["tracks"] == len(list_triplets(root / "test"))
    table = write_report(tmp_path / "table", per_track, summaries)
    assert (tmp_path / "table.json").is_file() and (tmp_path / "table.md").read_text() == table
    assert table.count("\n") == 2 + 4 and "| IRM | violin |" in table
    assert markdown_table(summaries).splitlines()[0].startswith("| method | instrument | SDR |")
