"""Build the mel-spectrogram TFRecords the priors train on, from a folder of solo recordings.

Input  ``--wav DIR`` with ``{train,test}/{piano,violin}/*.wav`` (as written by ``pipeline.render``).
Output ``--out DIR``::

    mel_params.json                      MelConfig (written last: its presence marks a complete build)
    summary.json                         patches per split and source, files skipped and why
    {train,test}/{piano,violin}-NNNNN.tfrecord
                                         float32 patches [n_mels, patch_frames] in [0, 1]

Patches are cut every ``--train-hop`` frames in train/ (overlapping, more data) and every
``patch_frames`` frames in test/; patches whose loudest bin is below ``--silence-db`` are dropped.

CLI: ``python -m pipeline.wav_to_spec --wav data/wav --out data/mel``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import atomic_output, list_audio, load_audio
from pipeline.errors import UserError, log, run_cli
from pipeline.mel import MelConfig, mel_basis, mel_power, power_to_db, scale_db
from pipeline.patches import cut_patches
from pipeline.preprocessing import write_tfrecord

SOURCES = ("piano", "violin")
SPLITS = ("train", "test")


def file_patches(path: Path, cfg: MelConfig, hop_frames: int, silence_db: float, basis: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Scaled mel patches ``[n, n_mels, patch_frames]`` of one file, their start frames, and a skip reason."""
    audio = load_audio(path, cfg.sample_rate)
    mel_db = power_to_db(mel_power(audio, cfg, basis), cfg)
    if mel_db.shape[1] < cfg.patch_frames:
        return np.empty((0,)), np.empty((0,), int), f"shorter than one patch ({len(audio) / cfg.sample_rate:.2f} s < {cfg.patch_seconds:.2f} s)"
    if mel_db.max() < silence_db:
        return np.empty((0,)), np.empty((0,), int), f"silent (peak {mel_db.max():.1f} dB < {silence_db} dB)"
    # Only whole patches inside the file: training data never contains padding.
    usable = mel_db[:, : mel_db.shape[1] - (mel_db.shape[1] - cfg.patch_frames) % hop_frames]
    patches = cut_patches(usable, cfg.patch_frames, hop_frames)
    starts = np.arange(len(patches)) * hop_frames
    loud = patches.max(axis=(1, 2)) >= silence_db
    return scale_db(patches[loud], cfg).astype(np.float32), starts[loud], None


def build_tfrecords(wav_dir: str | Path, out_dir: str | Path, cfg: MelConfig, train_hop: int = 32,
                    silence_db: float = -60.0, shard_size: int = 2000, progress: bool = True) -> dict:
    """Write the TFRecords of every split/source under ``out_dir``; returns the summary dict.

    A split folder that is absent is left out (an evaluation-only set may have just ``test/``); at least one of
    :data:`SPLITS` must be there, and a split that is there needs both instruments.
    """
    from tqdm import tqdm
    wav_dir, out_dir = Path(wav_dir), Path(out_dir)
    if not wav_dir.is_dir():
        raise UserError(f"{wav_dir}: folder not found (expected {{train,test}}/{{piano,violin}}/*.wav)")
    if not 0 < train_hop <= cfg.patch_frames:
        raise UserError(f"--train-hop must be in 1..{cfg.patch_frames}, got {train_hop}")
    splits = [split for split in SPLITS if (wav_dir / split).is_dir()]
    if not splits:
        raise UserError(f"{wav_dir}: neither {' nor '.join(f'{s}/' for s in SPLITS)} found "
                        f"(expected {{train,test}}/{{piano,violin}}/*.wav)")
    (out_dir / "mel_params.json").unlink(missing_ok=True)      # an interrupted rebuild must not look complete
    basis = mel_basis(cfg)
    summary: dict = {"patches": {}, "skipped": []}
    for split in splits:
        for source in SOURCES:
            folder = wav_dir / split / source
            if not folder.is_dir():
                raise UserError(f"{folder}: folder not found (expected {split}/{source}/*.wav under {wav_dir})")
            hop = train_hop if split == "train" else cfg.patch_frames
            for old in (out_dir / split).glob(f"{source}-*.tfrecord"):
                old.unlink()
            buffer: list[np.ndarray] = []
            names: list[str] = []
            starts: list[int] = []
            n_written, shard = 0, 0
            for path in tqdm(list_audio(folder, f"{source} recordings"), desc=f"mel {split}/{source}", disable=not progress):
                patches, patch_starts, reason = file_patches(path, cfg, hop, silence_db, basis)
                if reason:
                    log.warning("%s: %s; skipped", path, reason)
                    summary["skipped"].append({"file": str(path), "reason": reason})
                    continue
                buffer.extend(patches)
                names.extend([path.name] * len(patches))
                starts.extend(int(s) for s in patch_starts)
                while len(buffer) >= shard_size:
                    n_written += write_tfrecord(out_dir / split / f"{source}-{shard:05d}.tfrecord",
                                                buffer[:shard_size], names[:shard_size], starts[:shard_size])
                    buffer, names, starts, shard = buffer[shard_size:], names[shard_size:], starts[shard_size:], shard + 1
            if buffer:
                n_written += write_tfrecord(out_dir / split / f"{source}-{shard:05d}.tfrecord", buffer, names, starts)
            if n_written == 0:
                raise UserError(f"{folder}: no usable patches (all files silent or shorter than {cfg.patch_seconds:.2f} s)")
            summary["patches"][f"{split}/{source}"] = n_written
            log.info("%s/%s: %d patches", split, source, n_written)
    with atomic_output(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    with atomic_output(out_dir / "mel_params.json") as tmp:
        cfg.save(tmp)
    return summary


def build_parser() -> argparse.ArgumentParser:
    d = MelConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--wav", required=True, help="folder with {train,test}/{piano,violin}/*.wav")
    p.add_argument("--out", required=True, help="output folder for TFRecords and mel_params.json")
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz; files at other rates are resampled")
    p.add_argument("--n-fft", type=int, default=d.n_fft, help="STFT size in samples")
    p.add_argument("--hop-length", type=int, default=d.hop_length, help="STFT hop in samples")
    p.add_argument("--n-mels", type=int, default=d.n_mels, help="number of mel bands")
    p.add_argument("--fmin", type=float, default=d.fmin, help="lowest mel frequency in Hz")
    p.add_argument("--fmax", type=float, default=d.fmax, help="highest mel frequency in Hz")
    p.add_argument("--db-min", type=float, default=d.db_min, help="lower dB clip (maps to 0)")
    p.add_argument("--db-max", type=float, default=d.db_max, help="upper dB clip (maps to 1)")
    p.add_argument("--patch-frames", type=int, default=d.patch_frames, help="frames per patch")
    p.add_argument("--train-hop", type=int, default=32, help="hop between training patches in frames")
    p.add_argument("--silence-db", type=float, default=-60.0, help="drop patches whose loudest bin is below this (dB)")
    p.add_argument("--shard-size", type=int, default=2000, help="patches per TFRecord file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = MelConfig(sample_rate=a.sample_rate, n_fft=a.n_fft, hop_length=a.hop_length, n_mels=a.n_mels, fmin=a.fmin,
                    fmax=a.fmax, db_min=a.db_min, db_max=a.db_max, patch_frames=a.patch_frames)
    build_tfrecords(a.wav, a.out, cfg, train_hop=a.train_hop, silence_db=a.silence_db, shard_size=a.shard_size)
    return 0


if __name__ == "__main__":
    run_cli(main)
