"""A seeded composer of plausible piano + violin duets (the score side of the data renderer).

Each piece has a key (major or minor), a tempo, a metre (3/4 or 4/4) and a diatonic chord
progression. The piano plays both hands: a left-hand bass figure (block chords, Alberti bass,
broken arpeggios or octave bass) under a right hand of block chords or its own melody; the violin
plays legato phrases in its range (G3 = MIDI 55 upwards), mostly stepwise with chord tones on
strong beats, separated by breaths. Dynamics follow phrase-level crescendo/diminuendo curves
with downbeat accents; the violin also gets expression (CC 11) swells.

Everything is drawn from one ``numpy.random.Generator``, so a piece is a pure function of its seed.
Times are in seconds, pitches are MIDI note numbers, velocities 1..127.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 11)          # harmonic minor: leading tone for the dominant
PROGRESSIONS = (                        # scale degrees (0 = tonic) of the chord roots, one per bar
    (0, 4, 5, 3), (0, 3, 4, 0), (5, 3, 0, 4), (1, 4, 0, 0), (0, 5, 1, 4),
    (0, 3, 1, 4), (0, 4, 5, 2, 3, 0, 3, 4), (0, 0, 3, 3, 4, 4, 0, 0),
)
RHYTHMS_PER_BEAT = ((1.0,), (0.5, 0.5), (1.0,), (0.75, 0.25), (0.5, 0.5), (1.0,))   # in beats
LONG_NOTES = (2.0, 3.0, 1.5)
VIOLIN_RANGE = (55, 88)                 # G3 .. E6
PIANO_LH_RANGE = (33, 57)
PIANO_RH_RANGE = (58, 86)


@dataclass
class Note:
    pitch: int
    start: float        # s
    end: float          # s
    velocity: int


@dataclass
class Part:
    """One instrument's notes and controller events ``(time s, controller, value)``."""
    program: int        # General-MIDI program (0 piano, 40 violin)
    notes: list[Note] = field(default_factory=list)
    controls: list[tuple[float, int, int]] = field(default_factory=list)

    @property
    def end_time(self) -> float:
        return max((n.end for n in self.notes), default=0.0)


@dataclass
class Duet:
    piano: Part
    violin: Part
    tonic: int          # pitch class 0..11
    mode: str           # "major" | "minor"
    tempo_bpm: float
    beats_per_bar: int

    def describe(self) -> dict:
        names = "C C# D Eb E F F# G Ab A Bb B".split()
        return {"key": f"{names[self.tonic]} {self.mode}", "tempo_bpm": round(self.tempo_bpm, 1),
                "metre": f"{self.beats_per_bar}/4", "piano_notes": len(self.piano.notes),
                "violin_notes": len(self.violin.notes)}


class _Harmony:
    """Pitches of the key and of the chord on each bar."""

    def __init__(self, tonic: int, mode: str):
        self.scale = MAJOR if mode == "major" else MINOR
        self.tonic = tonic

    def degree_pitch(self, degree: int, octave_base: int) -> int:
        """Pitch of scale ``degree`` (may exceed 0..6) counted from the tonic at or above ``octave_base``."""
        octave, step = divmod(degree, 7)
        base = octave_base + (self.tonic - octave_base) % 12
        return base + 12 * octave + self.scale[step]

    def chord_classes(self, root_degree: int) -> set[int]:
        return {(self.tonic + self.scale[(root_degree + k) % 7]) % 12 for k in (0, 2, 4)}

    def scale_pitches(self, low: int, high: int) -> list[int]:
        classes = {(self.tonic + s) % 12 for s in self.scale}
        return [p for p in range(low, high + 1) if p % 12 in classes]


def _phrase_dynamics(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """Velocities for ``n`` successive events: a crescendo/diminuendo arch with jitter."""
    shape = rng.choice(["arch", "cresc", "dim", "flat"])
    t = np.linspace(0.0, 1.0, max(n, 1))
    curve = {"arch": np.sin(np.pi * t), "cresc": t, "dim": 1.0 - t, "flat": np.full_like(t, 0.5)}[shape]
    base = rng.uniform(low, (low + high) / 2)
    span = rng.uniform(0.3, 1.0) * (high - base)
    return np.clip(base + span * curve + rng.normal(0, 4, size=t.shape), 1, 127).astype(int)


def _piano_part(rng, harmony: _Harmony, roots: list[int], beat: float, beats_per_bar: int) -> Part:
    part = Part(program=0)
    lh_style = rng.choice(["block", "alberti", "arpeggio", "octaves"])
    rh_style = rng.choice(["chords", "melody", "chords"])
    bar = beat * beats_per_bar
    velocities = _phrase_dynamics(rng, len(roots), 45, 100)
    melody_pitches = harmony.scale_pitches(*PIANO_RH_RANGE)
    mel_index = int(rng.integers(len(melody_pitches) // 3, 2 * len(melody_pitches) // 3))
    for bar_index, root in enumerate(roots):
        t0 = bar_index * bar
        vel = int(velocities[bar_index])
        bass = harmony.degree_pitch(root, 36)
        triad = [harmony.degree_pitch(root + k, 48) for k in (0, 2, 4)]
        # Left hand.
        if lh_style == "block":
            for p in [bass] + triad[1:]:
                part.notes.append(Note(p, t0, t0 + bar * 0.98, vel - 8))
        elif lh_style == "octaves":
            for b in range(0, beats_per_bar, 2 if beats_per_bar == 4 else 3):
                for p in (bass, bass + 12):
                    part.notes.append(Note(p, t0 + b * beat, t0 + (b + 2) * beat * 0.97, vel - 5 + 6 * (b == 0)))
        else:
            figure = [triad[0], triad[2], triad[1], triad[2]] if lh_style == "alberti" else [bass, triad[0], triad[1], triad[2], triad[1], triad[0]]
            step = beat / 2
            for k in range(int(round(bar / step))):
                p = figure[k % len(figure)]
                end = t0 + (k + 1) * step if lh_style == "alberti" else t0 + bar * 0.98
                part.notes.append(Note(p, t0 + k * step, end, vel - 14 + 8 * (k == 0)))
        # Right hand.
        chord_classes = harmony.chord_classes(root)
        if rh_style == "chords":
            voicing = sorted(harmony.degree_pitch(root + k, 60) for k in (0, 2, 4))
            rhythm = [0, 2] if beats_per_bar == 4 else [0]
            if rng.random() < 0.4:
                rhythm = list(range(beats_per_bar))
            for b in rhythm:
                for p in voicing:
                    part.notes.append(Note(p, t0 + b * beat, t0 + b * beat + beat * 0.95 * (2 if b % 2 == 0 and len(rhythm) < 4 else 1), vel - 4))
        else:
            t = 0.0
            while t < beats_per_bar - 1e-6:
                dur = min(float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])), beats_per_bar - t)
                strong = abs(t - round(t)) < 1e-6 and int(round(t)) % 2 == 0
                mel_index = int(np.clip(mel_index + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(melody_pitches) - 1))
                if strong:
                    nearby = [i for i in range(max(0, mel_index - 2), min(len(melody_pitches), mel_index + 3))
                              if melody_pitches[i] % 12 in chord_classes]
                    mel_index = nearby[int(rng.integers(len(nearby)))] if nearby else mel_index
                part.notes.append(Note(melody_pitches[mel_index], t0 + t * beat, t0 + (t + dur) * beat * 0.99, vel + 5))
                t += dur
    return part


def _violin_part(rng, harmony: _Harmony, roots: list[int], beat: float, beats_per_bar: int) -> Part:
    part = Part(program=40)
    pitches = harmony.scale_pitches(*VIOLIN_RANGE)
    centre = len(pitches) // 2 - 2 + int(rng.integers(-4, 4))
    index = int(np.clip(centre, 0, len(pitches) - 1))
    total_beats = len(roots) * beats_per_bar
    t = float(rng.choice([0.0, 0.0, 1.0, 2.0]))                   # pick-up or rest before the first phrase
    while t < total_beats - 1:
        phrase_beats = min(float(rng.choice([4, 6, 8, 8, 12])), total_beats - t)
        phrase: list[tuple[float, float, int]] = []                # (start beat, duration beats, pitch)
        p_t = t
        while p_t < t + phrase_beats - 1e-6:
            if rng.random() < 0.25:
                durations = (float(rng.choice(LONG_NOTES)),)
            else:
                durations = RHYTHMS_PER_BEAT[int(rng.integers(len(RHYTHMS_PER_BEAT)))]
            for dur in durations:
                dur = min(dur, t + phrase_beats - p_t)
                if dur <= 1e-6:
                    break
                bar_index = min(int(p_t // beats_per_bar), len(roots) - 1)
                leap = rng.random() < 0.15
                move = int(rng.choice([-4, -3, 3, 4, 5])) if leap else int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
                move -= int(np.sign(index - centre)) * (abs(index - centre) > 5)   # drift back to the centre
                index = int(np.clip(index + move, 0, len(pitches) - 1))
                if abs(p_t - round(p_t)) < 1e-6 and dur >= 1.0:          # strong: land on a chord tone
                    classes = harmony.chord_classes(roots[bar_index])
                    nearby = [i for i in range(max(0, index - 2), min(len(pitches), index + 3)) if pitches[i] % 12 in classes]
                    if nearby:
                        index = min(nearby, key=lambda i: abs(i - index))
                phrase.append((p_t, dur, pitches[index]))
                p_t += dur
        velocities = _phrase_dynamics(rng, len(phrase), 55, 115)
        for k, (start, dur, pitch) in enumerate(phrase):
            last = k == len(phrase) - 1
            end = (start + dur) * beat + (-0.12 * beat if last else 0.03)   # legato overlap inside the phrase
            part.notes.append(Note(pitch, start * beat, max(end, start * beat + 0.05), int(velocities[k])))
        # Expression swell over the phrase (CC 11), 10 points a second.
        t_start, t_end = t * beat, (t + phrase_beats) * beat
        swell_peak = rng.uniform(0.5, 1.0)
        for time in np.arange(t_start, t_end, 0.1):
            x = (time - t_start) / max(t_end - t_start, 1e-3)
            part.controls.append((float(time), 11, int(np.clip(127 * (0.6 + 0.4 * swell_peak * np.sin(np.pi * x)), 0, 127))))
        t += phrase_beats + float(rng.choice([0.5, 1.0, 1.0, 2.0]))      # breath
    return part


def compose_duet(rng: np.random.Generator, seconds: float) -> Duet:
    """A piano + violin duet of about ``seconds`` seconds (whole bars), drawn from ``rng``."""
    tonic = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    tempo = float(rng.uniform(66, 132))
    beats_per_bar = int(rng.choice([3, 4, 4]))
    beat = 60.0 / tempo
    n_bars = max(2, int(round(seconds / (beat * beats_per_bar))))
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    roots = [progression[i % len(progression)] for i in range(n_bars - 1)] + [0]    # end on the tonic
    harmony = _Harmony(tonic, mode)
    return Duet(piano=_piano_part(rng, harmony, roots, beat, beats_per_bar),
                violin=_violin_part(rng, harmony, roots, beat, beats_per_bar),
                tonic=tonic, mode=mode, tempo_bpm=tempo, beats_per_bar=beats_per_bar)
