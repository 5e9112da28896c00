"""Separate a folder of mixture wavs (any length) into piano and violin mel spectrograms with BASIS.

Every mixture is checked first (so a bad file stops the run before any work is done), brought to the
training level (active RMS ``target_rms_db``, default: two −25 dBFS stems), turned into a scaled mel
spectrogram, cut into overlapping patches, and all patches of all files are separated in batches.
The patches are stitched back with cross-fades (:mod:`pipeline.patches`), or, with the separator's
``stitch = "select"``, with each overlap weighted towards the patch whose sources the priors find more
probable there (:meth:`separation.basis.BasisSeparator.frame_neg_log_densities`), and written as::

    OUT/<stem>/piano.npy, violin.npy, mix.npy   scaled mel [n_mels, n_frames] in [0, 1]
    OUT/<stem>/meta.json                        mixture path, gain, n_samples, prior names, mel params, timing
    OUT/shards/shard_<i>_of_<n>.json            what one shard separated (``--shard i/n``)
    OUT/index.json                              all mixtures of the folder, written once every shard is done

With ``start_from`` (a folder of another method's estimates, ``{piano,violin}/<mixture name>.wav``, as
``python -m separation.nmf separate`` writes them), each source's estimate gets the mixture's level gain, is
turned into a scaled mel and cut into the same patches, and BASIS starts from those patches at
``start_level`` (:meth:`separation.basis.BasisSeparator.separate`).

A mixture whose ``meta.json`` already records the same priors and schedule is skipped, so an interrupted
run resumes where it stopped. A large folder can be split over processes or machines with ``shard=(i, n)``:
shard i takes every n-th mixture of the sorted list, all shards write into the same OUT, and the shard that
finishes last merges the results into ``index.json``. ``melspec_inversion_basis.py`` turns the mels into
``piano.wav`` / ``violin.wav``.
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


def start_mels(mixture: PreparedMixture, start_from: Path, cfg: MelConfig, basis: np.ndarray) -> np.ndarray:
    """Scaled mels ``[S, n_mels, n_frames]`` of another method's estimates of ``mixture``
    (``start_from/{piano,violin}/<stem>.wav``), with the mixture's gain and frames."""
    mels = []
    for source in SOURCES:
        path = start_from / source / f"{mixture.path.stem}.wav"
        if not path.is_file():
            raise UserError(f"{path}: no {source} estimate of {mixture.path.name} to start from; --start-from expects "
                            f"{{piano,violin}}/<mixture name>.wav (e.g. python -m separation.nmf separate --out DIR)")
        audio = load_audio(path, cfg.sample_rate)
        if abs(len(audio) - mixture.n_samples) > cfg.hop_length:
            raise UserError(f"{path}: {len(audio) / cfg.sample_rate:.2f} s long, but the mixture {mixture.path} is "
                            f"{mixture.n_samples / cfg.sample_rate:.2f} s; is it an estimate of that mixture?")
        audio = np.pad(audio, (0, max(0, mixture.n_samples - len(audio))))[:mixture.n_samples]
        mels.append(mel_scaled(audio * mixture.gain, cfg, basis))
    return np.stack(mels)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) → ``(i, n)``; ``None`` → ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard: expected i/n such as 0/4, got {text!r}") from None
    if not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n")
    return index, count


def run_settings(separator, cfg: MelConfig, hop_frames: int, seed: int, start_from: Path | None = None,
                 start_level: int = 0) -> dict:
    """What determines a separation's output; a finished mixture with the same settings is not redone."""
    settings = {"prior": [getattr(p, "name", "?") for p in separator.priors],
                "basis": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(separator.config).items()},
                "mel_params": dataclasses.asdict(cfg), "hop_frames": hop_frames, "seed": seed}
    if start_from is not None:
        settings.update(start_from=str(Path(start_from).resolve()), start_level=start_level)
    return settings


def is_done(folder: Path, settings: dict) -> bool:
    meta = folder / "meta.json"
    if not meta.is_file():
        return False
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    started = ("start_from", "start_level")          # a run from uniform noise records neither
    return (all(recorded.get(key) == value for key, value in settings.items())
            and all(key in settings for key in started if key in recorded))


def separate_folder(mixtures: Sequence[str | Path], out_dir: str | Path, separator, cfg: MelConfig,
                    batch_size: int = 16, hop_frames: int | None = None, seed: int = 0,
                    target_rms_db: float | None = TARGET_RMS_DB, progress: bool = True,
                    shard: tuple[int, int] = (0, 1), start_from: str | Path | None = None,
                    start_level: int = 0) -> list[Path]:
    """Separate every mixture wav of this shard; returns its per-mixture output folders (see the module docstring)."""
    hop_frames = hop_frames or cfg.patch_frames // 2
    if start_from is not None:
        start_from = Path(start_from)
        if not start_from.is_dir():
            raise UserError(f"{start_from}: no such folder of estimates to start from (--start-from)")
        separator.check_start_level(start_level)
    elif start_level:
        raise UserError(f"start level {start_level} needs start estimates to begin from (--start-from)")
    out_dir = Path(out_dir)
    all_mixtures = sorted(Path(p) for p in mixtures)
    stems = [p.stem for p in all_mixtures]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise UserError(f"mixtures with the same file name in different folders ({', '.join(clashes)}): "
                        f"their outputs OUT/<name>/ would collide; rename them")
    index, count = shard
    mine = all_mixtures[index::count]
    settings = run_settings(separator, cfg, hop_frames, seed, start_from, start_level)
    todo = [p for p in mine if not is_done(out_dir / p.stem, settings)]
    if len(todo) < len(mine):
        log.info("%d of %d mixture(s) already separated with these settings in %s; skipping them",
                 len(mine) - len(todo), len(mine), out_dir)
    outputs = _separate(todo, out_dir, separator, cfg, batch_size, hop_frames, seed, target_rms_db, progress, settings,
                        start_from, start_level)
    write_shard_record(out_dir, all_mixtures, mine, shard)
    return [out_dir / p.stem for p in mine]


def _separate(mixtures: list[Path], out_dir: Path, separator, cfg: MelConfig, batch_size: int, hop_frames: int,
              seed: int, target_rms_db: float | None, progress: bool, settings: dict, start_from: Path | None = None,
              start_level: int = 0) -> list[Path]:
    from tqdm import tqdm
    from separation.basis import check_finite
    if not mixtures:
        return []
    basis = mel_basis(cfg)
    prepared = [prepare_mixture(Path(p), cfg, basis, target_rms_db) for p in tqdm(mixtures, desc="load", disable=not progress)]
    cuts = [cut_patches(m.mel, cfg.patch_frames, hop_frames, pad_value=0.0) for m in prepared]
    patches = np.concatenate(cuts)[..., None].astype(np.float32)                # [N, n_mels, patch_frames, 1]
    starts = None
    if start_from is not None:                                                   # [S, N, n_mels, patch_frames, 1]
        starts = np.concatenate([np.stack([cut_patches(mel, cfg.patch_frames, hop_frames, pad_value=0.0)
                                           for mel in start_mels(m, start_from, cfg, basis)]) for m in prepared], axis=1)
        starts = starts[..., None].astype(np.float32)
    batch_size = balanced_batch_size(len(patches), batch_size)
    estimates = np.zeros((len(SOURCES), *patches.shape), np.float32)
    select = separator.config.stitch == "select"
    frame_scores = np.zeros(patches.shape[:1] + patches.shape[2:3], np.float32) if select else None   # [N, frames]
    owner = np.repeat(np.arange(len(cuts)), [len(c) for c in cuts])              # patch -> index into `prepared`
    start_time = time.perf_counter()
    with tqdm(total=len(patches), desc="BASIS", unit="patch", disable=not progress) as bar:
        for start in range(0, len(patches), batch_size):
            batch = pad_batch(patches[start:start + batch_size], batch_size, axis=0)
            started = {} if starts is None else {"start": pad_batch(starts[:, start:start + batch_size], batch_size, axis=1),
                                                 "start_level": start_level}
            result = separator.separate(batch, seed=seed + start, **started)
            n = min(batch_size, len(patches) - start)
            estimates[:, start:start + n] = result.numpy()[:, :n]
            check_finite(estimates[:, start:start + n], [str(prepared[i].path) for i in owner[start:start + n]], separator)
            if select:
                frame_scores[start:start + n] = separator.frame_neg_log_densities(result, seed + start).numpy()[:n]
            bar.update(n)
    elapsed = time.perf_counter() - start_time
    total_seconds = sum(m.n_samples for m in prepared) / cfg.sample_rate
    log.info("separated %.1f s of audio in %.1f s (%.2f s per second of audio)", total_seconds, elapsed, elapsed / total_seconds)
    outputs, offset = [], 0
    for mixture, cut in zip(prepared, cuts):
        folder = out_dir / mixture.path.stem
        n_frames = mixture.mel.shape[1]
        scores = None if frame_scores is None else frame_scores[offset:offset + len(cut)]
        for k, source in enumerate(SOURCES):      # the same weights for every source: each overlap keeps pairs separated together
            save_mel(folder / f"{source}.npy", stitch_patches(estimates[k, offset:offset + len(cut), ..., 0], n_frames,
                                                              hop_frames, scores, separator.config.stitch_temperature))
        save_mel(folder / "mix.npy", mixture.mel)
        meta = {"mixture": str(mixture.path.resolve()), "gain": mixture.gain, "n_samples": mixture.n_samples,
                "sample_rate": cfg.sample_rate, **settings, "seconds_per_audio_second": elapsed / total_seconds}
        with atomic_output(folder / "meta.json") as tmp:          # written last: marks the folder complete
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
        outputs.append(folder)
        offset += len(cut)
    return outputs


def pad_batch(items: np.ndarray, batch_size: int, axis: int) -> np.ndarray:
    """Pad a short last batch along ``axis`` with copies of its last item, to keep one compiled shape."""
    missing = batch_size - items.shape[axis]
    if missing <= 0:
        return items
    last = np.take(items, [-1], axis=axis)
    return np.concatenate([items, np.repeat(last, missing, axis=axis)], axis=axis)


def balanced_batch_size(n_items: int, max_batch: int) -> int:
    """The smallest batch that needs no more calls than ``max_batch`` does: the last batch is padded to the
    compiled shape, so 130 patches go as 9 x 15 (135 slots) instead of 9 x 16 (144)."""
    n_batches = -(-n_items // max_batch)
    return max(1, -(-n_items // max(1, n_batches)))


def write_shard_record(out_dir: Path, all_mixtures: list[Path], mine: list[Path], shard: tuple[int, int]) -> None:
    """Record this shard's mixtures; once every shard of ``n`` has a record, merge them into ``index.json``."""
    index, count = shard
    record = {"shard": [index, count], "mixtures": [str(p.resolve()) for p in mine],
              "all_mixtures": [str(p.resolve()) for p in all_mixtures]}
    with atomic_output(out_dir / "shards" / f"shard_{index}_of_{count}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    merge_shards(out_dir, count)


def merge_shards(out_dir: str | Path, count: int) -> Path | None:
    """Write ``OUT/index.json`` when all ``count`` shard records agree and every mixture folder is complete."""
    out_dir = Path(out_dir)
    records = [out_dir / "shards" / f"shard_{i}_of_{count}.json" for i in range(count)]
    if not all(r.is_file() for r in records):
        return None
    loaded = [json.loads(r.read_text()) for r in records]
    expected = loaded[0]["all_mixtures"]
    if any(r["all_mixtures"] != expected for r in loaded):
        raise UserError(f"{out_dir}/shards: the shards were run on different mixture lists; re-run them on the same input")
    done = sorted(m for r in loaded for m in r["mixtures"])
    if done != sorted(expected):
        raise UserError(f"{out_dir}/shards: the shards do not cover the input exactly once")
    metas = {}
    for mixture in expected:
        meta_path = out_dir / Path(mixture).stem / "meta.json"
        if not meta_path.is_file():
            return None
        metas[Path(mixture).stem] = json.loads(meta_path.read_text())
    seconds = sum(m["n_samples"] / m["sample_rate"] for m in metas.values())
    index = {"n_shards": count, "mixtures": {stem: m["mixture"] for stem, m in sorted(metas.items())},
             "audio_seconds": seconds}
    with atomic_output(out_dir / "index.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1) + "\n")
    log.info("all %d shard(s) done: %d mixture(s), %.1f s of audio; index in %s", count, len(metas), seconds,
             out_dir / "index.json")
    return out_dir / "index.json"


def mixture_files(path: str | Path) -> list[Path]:
    """A single audio file, or the audio files of a folder (of its ``mix/`` subfolder when it has one)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if (path / "mix").is_dir():
        path = path / "mix"
    return list_audio(path, "mixture wavs")
