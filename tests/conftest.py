"""Shared fixtures, made once per test worker: a tiny rendered piano/violin set and its TFRecords, a tiny
trained NCSN run."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from pipeline.mel import MelConfig


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """About 1.5 minutes per instrument, two SoundFonts alternating by piece, 1/3 of pieces in test."""
    from pipeline.render import RenderConfig, render_dataset
    out = tmp_path_factory.mktemp("wav")
    cfg = RenderConfig(minutes=1.5, piece_seconds=(8.0, 14.0), test_fraction=0.34, seed=3)
    manifest = render_dataset(out, ["FluidR3_GM", "TimGM6mb"], cfg, progress=False)
    assert {m["split"] for m in manifest} == {"train", "test"}, "fixture needs both splits"
    return out, manifest


@pytest.fixture(scope="session")
def mel_dir(rendered, tmp_path_factory):
    from pipeline.wav_to_spec import build_tfrecords
    out = tmp_path_factory.mktemp("mel")
    build_tfrecords(rendered[0], out, MelConfig(), train_hop=32, progress=False)
    return out


TINY_NCSN = ["--width", "4", "--n-res-blocks", "1", "--channel-multipliers", "1,1", "--downsample", "0,1",
             "--dilations", "1,1", "--steps", "4", "--batch-size", "8", "--n-samples", "2", "--n-steps-per-level", "1",
             "--eval-examples", "16", "--ema-decay", "0.9", "--checkpoint-every", "2"]


@pytest.fixture(scope="session")
def tiny_ncsn_run(tmp_path_factory):
    """A 4-step NCSN run on sklearn's digits (EMA kept, held-out loss logged at steps 2 and 4); read-only."""
    import train_ncsn
    run = tmp_path_factory.mktemp("tiny_ncsn") / "run"
    train_ncsn.main(["--dataset", "digits", "--run-dir", str(run), *TINY_NCSN])
    return run


@pytest.fixture
def triplet_excerpt(rendered, tmp_path):
    """``make(seconds) -> folder``: the first test piece's first ``seconds`` as ``{mix,piano,violin}/<name>.wav``."""
    import soundfile as sf
    root, _ = rendered
    name = sorted((root / "test" / "mix").glob("*.wav"))[0].name

    def make(seconds: float):
        data = tmp_path / "data"
        for source in ("mix", "piano", "violin"):
            audio, rate = sf.read(root / "test" / source / name)
            (data / source).mkdir(parents=True, exist_ok=True)
            sf.write(data / source / name, audio[: int(seconds * rate)], rate)
        return data
    return make
