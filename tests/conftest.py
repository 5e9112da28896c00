"""Shared fixtures: a tiny rendered piano/violin set and its TFRecords, made once per test worker."""
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
