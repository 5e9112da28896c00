"""separation.nmf: supervised KL-NMF trained on the rendered training split beats the mixture; model file; CLI errors."""
import dataclasses

import numpy as np
import pytest

from bss_eval_v4 import evaluate_methods
from pipeline.audio_io import load_audio, save_audio
from pipeline.errors import UserError, log, run_cli
from separation import nmf
from separation.nmf import NMFConfig, NMFModel, SOURCES

# Small and fast: 32 atoms per source, at most 1500 frames, 100 + 100 iterations.
SMALL = NMFConfig(n_components=32, max_train_frames=1500, train_iters=100, separate_iters=100)


@pytest.fixture(scope="module")
def trained(rendered, tmp_path_factory):
    root, _ = rendered
    path = tmp_path_factory.mktemp("nmf") / "nmf.npz"
    nmf.train(root, SMALL, progress=False).save(path)
    return root, path


def test_model_file_round_trip(trained):
    _, path = trained
    model = NMFModel.load(path)
    assert model.config == SMALL
    for source in SOURCES:
        atoms = model.dictionaries[source]
        assert atoms.shape == (SMALL.n_fft // 2 + 1, SMALL.n_components) and np.all(atoms >= 0)
        np.testing.assert_allclose(atoms.sum(axis=0), 1.0, rtol=1e-6)
        assert 500 < model.info[source]["frames"] <= SMALL.max_train_frames


def test_nmf_beats_the_mixture_on_held_out_mixtures(trained, tmp_path):
    """Measured on the fixture (≈ 40 s of solo training audio per instrument, 5 held-out pieces): median SDR
    piano / violin, mixture 0.97 / -0.97 dB, NMF 4.31 / 2.29 dB: +3.3 dB each. The test asks for +2 dB.
    (Pieces of the TimGM6mb SoundFont barely separate with this little training data; FluidR3_GM ones do.)"""
    root, path = trained
    summary = nmf.separate_folder(NMFModel.load(path), root / "test", tmp_path / "est", progress=False)
    assert summary["mixtures"] == len(list((root / "test" / "mix").iterdir()))
    _, scores = evaluate_methods(root / "test", {"mixture": None, "NMF": tmp_path / "est"}, progress=False)
    for source in SOURCES:
        assert scores["NMF"][source]["SDR"] > scores["mixture"][source]["SDR"] + 2.0, scores


def test_estimates_sum_to_the_mixture(trained):
    root, path = trained
    mixture = load_audio(next((root / "test" / "mix").iterdir()), SMALL.sample_rate)[: 3 * SMALL.sample_rate]
    estimates = nmf.separate(mixture, NMFModel.load(path))
    assert estimates.shape == (2, len(mixture))
    np.testing.assert_allclose(estimates.sum(axis=0), mixture, atol=1e-4)


def _cli(argv, capsys):
    handlers = list(log.handlers)        # run_cli points the log at pytest's captured stderr; put it back after
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(nmf.main, argv)
    finally:
        log.handlers[:] = handlers
    return exit_info.value.code, capsys.readouterr()


def test_cli_reuses_refuses_and_reports_bad_inputs(trained, tmp_path, capsys):
    root, path = trained
    small_flags = ["--components", "32", "--max-frames", "1500", "--iters", "100", "--separate-iters", "100"]
    code, out = _cli(["train", "--wav", str(root), "--out", str(path), *small_flags], capsys)
    assert code == 0 and "re-used" in out.out                                    # same config: not retrained
    code, out = _cli(["train", "--wav", str(root), "--out", str(path), "--components", "8"], capsys)
    assert code == 2 and "--force" in out.err and len(out.err.strip().splitlines()) == 1

    for argv, expected in [
        (["separate", "--model", str(tmp_path / "none.npz"), "--data", str(root / "test"), "--out", str(tmp_path)], "none.npz"),
        (["train", "--wav", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.npz")], "piano"),
        (["train", "--wav", str(root), "--out", str(tmp_path / "m.npz"), "--components", "0"], "--components"),
    ]:
        code, out = _cli(argv, capsys)
        assert code == 2 and expected in out.err and len(out.err.strip().splitlines()) == 1, out.err

    not_a_model = tmp_path / "bad.npz"
    np.savez(not_a_model, something=np.zeros(3))
    with pytest.raises(UserError, match="not an NMF model"):
        NMFModel.load(not_a_model)
    wrong_shape = dataclasses.replace(NMFModel.load(path), config=dataclasses.replace(SMALL, n_fft=1024))
    wrong_shape.save(tmp_path / "wrong.npz")
    with pytest.raises(UserError, match="dictionary has shape"):
        NMFModel.load(tmp_path / "wrong.npz")


def test_silent_training_files_are_a_user_error(tmp_path):
    for source in SOURCES:
        save_audio(tmp_path / "train" / source / "quiet.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(UserError, match="silent"):
        nmf.train(tmp_path, SMALL, progress=False)
