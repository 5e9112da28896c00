"""The renderer: deterministic by seed, non-silent, in tune, plausible ranges, split by piece."""
import json

import numpy as np
import pytest

from pipeline.music import Note, Part, compose_duet
from pipeline.render import HELD_OUT_SOUNDFONT, TRAIN_SOUNDFONTS, RenderConfig, SoundFontSynth, render_piece, \
    resolve_soundfont


@pytest.fixture(scope="module")
def synth():
    return SoundFontSynth(resolve_soundfont("TimGM6mb"))


def fundamental_hz(audio, rate):
    """Frequency of the strongest spectral peak of a steady tone (parabolic interpolation)."""
    window = np.hanning(len(audio))
    spectrum = np.abs(np.fft.rfft(audio * window, n=8 * len(audio)))
    k = int(spectrum.argmax())
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / (8 * len(audio))


@pytest.mark.parametrize("program", [0, 40])
def test_a4_is_440_hz(synth, program):
    audio = synth.render(Part(program=program, notes=[Note(69, 0.0, 1.5, 100)]))
    steady = audio[int(0.4 * synth.sample_rate):int(1.2 * synth.sample_rate)]
    assert fundamental_hz(steady, synth.sample_rate) == pytest.approx(440.0, rel=0.01)


def test_composer_is_deterministic_and_plausible():
    a = compose_duet(np.random.default_rng([5, 1]), 30)
    b = compose_duet(np.random.default_rng([5, 1]), 30)
    c = compose_duet(np.random.default_rng([5, 2]), 30)
    assert a == b and a != c
    violin = [n.pitch for n in a.violin.notes]
    assert min(violin) >= 55 and max(violin) <= 88                     # G3 .. E6
    piano = a.piano.notes
    assert min(n.pitch for n in piano) < 60 < max(n.pitch for n in piano)    # both hands
    starts = {}
    for n in piano:
        starts.setdefault(round(n.start, 3), []).append(n.pitch)
    assert max(len(v) for v in starts.values()) >= 3                     # chords
    pitch_classes = {(p - a.tonic) % 12 for p in violin}
    scale = {0, 2, 4, 5, 7, 9, 11} if a.mode == "major" else {0, 2, 3, 5, 7, 8, 11}
    assert pitch_classes <= scale                                          # in key
    assert len({n.velocity for n in a.violin.notes}) > 5                   # dynamics


def test_render_is_deterministic_and_not_silent(synth):
    cfg = RenderConfig(seed=0)
    duet = compose_duet(np.random.default_rng([0, 4]), 6)
    first = render_piece(synth, duet, cfg)
    second = render_piece(synth, compose_duet(np.random.default_rng([0, 4]), 6), cfg)
    for stem in ("piano", "violin", "mix"):
        np.testing.assert_array_equal(first[stem], second[stem])
        assert np.sqrt(np.mean(first[stem] ** 2)) > 0.01
    np.testing.assert_allclose(first["mix"], first["piano"] + first["violin"], atol=1e-6)
    assert np.max(np.abs(first["mix"])) <= 0.99 + 1e-6


def test_split_is_by_piece(rendered):
    root, manifest = rendered
    for split in ("train", "test"):
        listed = {m["file"] for m in manifest if m["split"] == split}
        for stem in ("piano", "violin", "mix"):
            assert {p.name for p in (root / split / stem).glob("*.wav")} == listed
        assert json.loads((root / f"manifest_{split}.json").read_text()) == [m for m in manifest if m["split"] == split]
    train = {m["file"] for m in manifest if m["split"] == "train"}
    test = {m["file"] for m in manifest if m["split"] == "test"}
    assert train and test and not train & test


@pytest.mark.parametrize("name", [*TRAIN_SOUNDFONTS, HELD_OUT_SOUNDFONT])
@pytest.mark.parametrize("program", [0, 40])
def test_installed_soundfonts_play_piano_and_violin(name, program):
    """The set-up installs all of them (Debian packages and pip wheels); sf2 and sf3 files both load. (Peak levels
    differ: MuseScore_General_Lite's piano peaks at 0.003 here, the others at 0.09-0.29; stems are normalised.)"""
    synth = SoundFontSynth(resolve_soundfont(name))
    audio = synth.render(Part(program=program, notes=[Note(76, 0.0, 0.5, 90)]))
    assert np.max(np.abs(audio)) > 1e-3
