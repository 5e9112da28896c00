"""Folders of ``{mix,piano,violin}/NAME.wav`` triplets: the format of test sets and evaluation data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.audio_io import list_audio, load_audio
from pipeline.errors import UserError, log

STEMS = ("mix", "piano", "violin")


def list_triplets(data_dir: str | Path) -> list[str]:
    """Names present in all of ``data_dir/{mix,piano,violin}/`` (a warning for each incomplete triplet)."""
    data_dir = Path(data_dir)
    names = {stem: {p.name for p in list_audio(data_dir / stem, f"{stem} wavs")} for stem in STEMS}
    common = sorted(names["mix"] & names["piano"] & names["violin"])
    for name in sorted(set.union(*names.values()) - set(common)):
        log.warning("%s: not in all of mix/, piano/, violin/; skipped", data_dir / "*" / name)
    if not common:
        raise UserError(f"{data_dir}: no file name is present in all of mix/, piano/ and violin/")
    return common


def load_triplet(data_dir: str | Path, name: str, sample_rate: int) -> dict[str, np.ndarray]:
    """Mono audio of ``{mix,piano,violin}/name``, trimmed to a common length (a warning if they differ)."""
    data_dir = Path(data_dir)
    audio = {stem: load_audio(data_dir / stem / name, sample_rate) for stem in STEMS}
    lengths = {len(a) for a in audio.values()}
    if len(lengths) > 1:
        log.warning("%s: mix/piano/violin lengths differ (%s samples); trimmed to the shortest",
                    name, ", ".join(str(len(a)) for a in audio.values()))
        n = min(lengths)
        audio = {k: v[:n] for k, v in audio.items()}
    return audio
