"""Separate a folder of mixture wavs (any length) into piano and violin mel spectrograms with BASIS.

Every mixture is checked first (so a bad file stops the run before any work is done), brought to the
training level (active RMS ``target_rms_db``, default: two −25 dBFS stems), turned into a scaled mel
spectrogram, cut into overlapping patches, and all patches of all files are separated in batches.
The patches are stitched back with cross-fades (:mod:`pipeline.patches`) and written as::

    OUT/<stem>/piano.npy, violin.npy, mix.npy   scaled mel [n_mels, n_frames] in [0, 1]
    OUT/<stem>/meta.json                        mixture path, gain, n_samples, prior names, mel params, timing

``melspec_inversion_basis.py`` turns these into ``piano.wav`` / ``violin.wav``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import active_rms_db, atomic_output, is_silent, list_audio, load_audio
from pipeline.errors import UserError, log
from pipeline.mel import MelConfig, mel_basis, mel_scaled
from pipeline.patches import cut_patches, stitch_patches
from pipeline.preprocessing import save_mel

SOURCES = ("piano", "violin")
TARGET_RMS_DB = -25.0 + 10 * np.log10(2.0)       # two independent −25 dBFS stems


@dataclasses.dataclass
class PreparedMixture:
    path: Path
    gain: float
    n_samples: int
    mel: np.ndarray            # scaled [n_mels, n_frames]


def prepare_mixture(path: Path, cfg: MelConfig, basis: np.ndarray, target_rms_db: float | None) -> PreparedMixture:
    """Load, check and level-normalise one mixture; a :class:`UserError` names the file on bad input."""
    audio = load_audio(path, cfg.sample_rate)
    if is_silent(audio):
        raise UserError(f"{path}: silent mixture (peak below −60 dBFS); nothing to separate")
    n_frames = 1 + len(audio) // cfg.hop_length
    if n_frames < cfg.patch_frames:
        raise UserError(f"{path}: {len(audio) / cfg.sample_rate:.2f} s is shorter than one patch "
                        f"({cfg.patch_seconds:.2f} s); pad it or use a longer excerpt")
    gain = 1.0 if target_rms_db is None else float(10 ** ((target_rms_db - active_rms_db(audio, cfg.sample_rate)) / 20))
    return PreparedMixture(path, gain, len(audio), mel_scaled(audio * gain, cfg, basis))


def separate_folder(mixtures: Sequence[str | Path], out_dir: str | Path, separator, cfg: MelConfig,
                    batch_size: int = 16, hop_frames: int | None = None, seed: int = 0,
                    target_rms_db: float | None = TARGET_RMS_DB, progress: bool = True) -> list[Path]:
    """Separate every mixture wav; returns the per-mixture output folders (see the module docstring)."""
    from tqdm import tqdm
    hop_frames = hop_frames or cfg.patch_frames // 2
    basis = mel_basis(cfg)
    prepared = [prepare_mixture(Path(p), cfg, basis, target_rms_db) for p in tqdm(mixtures, desc="load", disable=not progress)]
    cuts = [cut_patches(m.mel, cfg.patch_frames, hop_frames, pad_value=0.0) for m in prepared]
    patches = np.concatenate(cuts)[..., None].astype(np.float32)                # [N, n_mels, patch_frames, 1]
    estimates = np.zeros((len(SOURCES), *patches.shape), np.float32)
    start_time = time.perf_counter()
    with tqdm(total=len(patches), desc="BASIS", unit="patch", disable=not progress) as bar:
        for start in range(0, len(patches), batch_size):
            batch = patches[start:start + batch_size]
            if len(batch) < batch_size:      # keep one compiled shape: pad the last batch with its own patches
                batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), axis=0)])
            result = separator.separate(batch, seed=seed + start).numpy()
            n = min(batch_size, len(patches) - start)
            estimates[:, start:start + n] = result[:, :n]
            bar.update(n)
    elapsed = time.perf_counter() - start_time
    total_seconds = sum(m.n_samples for m in prepared) / cfg.sample_rate
    log.info("separated %.1f s of audio in %.1f s (%.2f s per second of audio)", total_seconds, elapsed, elapsed / total_seconds)
    outputs, offset = [], 0
    for mixture, cut in zip(prepared, cuts):
        folder = Path(out_dir) / mixture.path.stem
        n_frames = mixture.mel.shape[1]
        for k, source in enumerate(SOURCES):
            save_mel(folder / f"{source}.npy", stitch_patches(estimates[k, offset:offset + len(cut), ..., 0], n_frames, hop_frames))
        save_mel(folder / "mix.npy", mixture.mel)
        meta = {"mixture": str(mixture.path.resolve()), "gain": mixture.gain, "n_samples": mixture.n_samples,
                "sample_rate": cfg.sample_rate, "prior": [getattr(p, "name", "?") for p in separator.priors],
                "basis": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(separator.config).items()},
                "mel_params": dataclasses.asdict(cfg), "hop_frames": hop_frames, "seed": seed,
                "seconds_per_audio_second": elapsed / total_seconds}
        with atomic_output(folder / "meta.json") as tmp:          # written last: marks the folder complete
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
        outputs.append(folder)
        offset += len(cut)
    return outputs


def mixture_files(path: str | Path) -> list[Path]:
    """A single audio file, or the audio files of a folder (of its ``mix/`` subfolder when it has one)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "mix").is_dir():
        path = path / "mix"
    return list_audio(path, "mixture wavs")
