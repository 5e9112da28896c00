"""Supervised NMF: the classic peer of BASIS (Smaragdis, Raj & Shashanka 2007; Virtanen 2007).

Training: for each source ``j`` the spectrogram ``V_j = |STFT|^p`` ``[n_bins, n_frames]`` of its solo
training recordings (non-silent frames, at most ``max_train_frames`` sampled) is factorised as
``V_j ≈ D_j A_j`` with ``K`` atoms ``D_j [n_bins, K]`` under the generalised Kullback-Leibler divergence
(Lee & Seung 2001 multiplicative updates, ``sklearn.decomposition.NMF(beta_loss='kullback-leibler',
solver='mu')``). Each atom is scaled to unit L1 norm (the activations absorb the scale).

Separation: the mixture spectrogram ``V [n_bins, n_frames]`` is fitted with the fixed, stacked dictionary
``D = [D_1, D_2]`` (only the activations are learned: the transposed problem ``V^T ≈ A^T D^T`` with
``D^T`` passed as sklearn's fixed ``H``, ``update_H=False``), each source's model spectrogram is
``V̂_j = D_j A_j``, and the mixture STFT is masked by ``M_j = V̂_j^(a/p) / Σ_k V̂_k^(a/p)``: a Wiener
filter for ``a = 2`` (power ratio of the modelled magnitudes), the magnitude ratio for ``a = 1``.

The model file (``.npz``) stores both dictionaries and the :class:`NMFConfig` as JSON, so the
dictionaries are trained once and re-used; ``train`` refuses to overwrite a model trained with another
config unless ``--force``.

CLI::

    python -m separation.nmf train --wav data/wav --out runs/nmf.npz
    python -m separation.nmf separate --model runs/nmf.npz --data data/wav/test --out results/est/NMF
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import atomic_output, is_silent, list_audio, load_audio, save_audio
from pipeline.errors import UserError, log, run_cli
from pipeline.masks import apply_masks, ratio_masks
from pipeline.mel import MelConfig, istft, stft

SOURCES = ("piano", "violin")
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "pretrained" / "nmf" / "model.npz"   # pretrained/nmf/MODEL.md
START_DIR = "_start"     # OUT/_start/nmf-<digest>/ of a separation: the estimates BASIS started from (estimates_for)
MODEL_FORMAT = "basis-nmf-1"


@dataclass(frozen=True)
class NMFConfig:
    """Hyper-parameters of the supervised NMF peer; stored inside the model file."""
    n_components: int = 48           # dictionary atoms per source
    spectrogram_power: float = 1.0   # p: model |STFT|^p (1: magnitude, 2: power)
    max_train_frames: int = 20000    # non-silent STFT frames sampled per source for training (demo: all ≈ 11k)
    silence_db: float = -60.0        # training frames this far below the file's loudest frame are dropped (dB)
    train_iters: int = 300           # multiplicative-update iterations when learning a dictionary
    separate_iters: int = 150        # iterations when fitting the activations of a mixture
    tol: float = 1e-4                # sklearn's relative stopping tolerance
    mask_exponent: float = 2.0       # a: masks V̂_j^(a/p) / Σ_k V̂_k^(a/p); 1 magnitude ratio, 2 Wiener (power ratio)
    seed: int = 0
    sample_rate: int = 16000         # Hz
    n_fft: int = 2048                # samples
    hop_length: int = 512            # samples

    def __post_init__(self):
        checks = {"--components": self.n_components >= 1, "--power": self.spectrogram_power > 0,
                  "--max-frames": self.max_train_frames >= self.n_components, "--iters": self.train_iters >= 1,
                  "--separate-iters": self.separate_iters >= 1, "--mask-exponent": self.mask_exponent > 0}
        bad = [flag for flag, ok in checks.items() if not ok]
        if bad:
            raise UserError(f"{bad[0]}: invalid value in {self} (components >= 1, max-frames >= components, "
                            "positive power, iterations and mask exponent)")

    @property
    def stft_config(self) -> MelConfig:
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length)


@dataclass
class NMFModel:
    """Per-source dictionaries ``{source: [n_bins, K]}`` (columns: unit-L1 atoms) and their config."""
    config: NMFConfig
    dictionaries: dict[str, np.ndarray]
    info: dict                        # training statistics (frames used, final divergence, seconds)

    def save(self, path: str | Path) -> None:
        with atomic_output(Path(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=MODEL_FORMAT, config=json.dumps(dataclasses.asdict(self.config)),
                         info=json.dumps(self.info), **{f"dict_{s}": d for s, d in self.dictionaries.items()})

    @classmethod
    def load(cls, path: str | Path) -> "NMFModel":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: NMF model not found (train it with `python -m separation.nmf train`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != MODEL_FORMAT:
                    raise UserError(f"{path}: not an NMF model of this toolkit (no '{MODEL_FORMAT}' marker)")
                config = NMFConfig(**json.loads(str(z["config"])))
                dictionaries = {s: z[f"dict_{s}"] for s in SOURCES}
                info = json.loads(str(z["info"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{path}: unreadable NMF model ({err}); retrain it") from None
        n_bins = config.n_fft // 2 + 1
        for source, d in dictionaries.items():
            if d.shape != (n_bins, config.n_components):
                raise UserError(f"{path}: {source} dictionary has shape {d.shape}, expected {(n_bins, config.n_components)}")
        return cls(config, dictionaries, info)


# --------------------------------------------------------------------------------------- training

def spectrogram(audio: np.ndarray, cfg: NMFConfig) -> np.ndarray:
    """``|STFT|^p`` ``[n_bins, n_frames]`` (float64) of mono ``audio``."""
    return np.abs(stft(audio, cfg.stft_config)).astype(np.float64) ** cfg.spectrogram_power


def training_frames(files: Sequence[Path], cfg: NMFConfig, progress: bool = True, desc: str = "") -> np.ndarray:
    """Non-silent spectrogram frames of ``files``, at most ``max_train_frames`` sampled: ``[n_frames, n_bins]``."""
    from tqdm import tqdm
    frames = []
    for path in tqdm(files, desc=f"load {desc}", disable=not progress, leave=False):
        spec = spectrogram(load_audio(path, cfg.sample_rate), cfg)
        energy = (spec ** (2.0 / cfg.spectrogram_power)).sum(axis=0)
        if energy.max() <= 0:
            log.warning("%s: silent; skipped", path)
            continue
        frames.append(spec[:, energy >= energy.max() * 10.0 ** (cfg.silence_db / 10.0)].T)
    if not frames:
        raise UserError(f"{Path(files[0]).parent}: every training file is silent")
    frames = np.concatenate(frames)
    if len(frames) > cfg.max_train_frames:
        keep = np.random.default_rng(cfg.seed).choice(len(frames), cfg.max_train_frames, replace=False)
        frames = frames[np.sort(keep)]
    if len(frames) < cfg.n_components:
        raise UserError(f"{Path(files[0]).parent}: only {len(frames)} non-silent frames for {cfg.n_components} "
                        "atoms; give more training audio or fewer --components")
    return frames


def learn_dictionary(frames: np.ndarray, cfg: NMFConfig) -> tuple[np.ndarray, float, int]:
    """KL-NMF of ``frames [n_frames, n_bins]``: unit-L1 atoms ``[n_bins, K]``, final divergence, iterations run."""
    from sklearn.decomposition import NMF
    nmf = NMF(n_components=cfg.n_components, init="nndsvda", solver="mu", beta_loss="kullback-leibler",
              max_iter=cfg.train_iters, tol=cfg.tol, random_state=cfg.seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Maximum number of iterations")
        nmf.fit(frames)
    atoms = nmf.components_.T                                               # [n_bins, K]
    atoms = atoms / np.maximum(atoms.sum(axis=0, keepdims=True), 1e-12)
    return atoms, float(nmf.reconstruction_err_), int(nmf.n_iter_)


def training_files(wav_dir: str | Path, source: str) -> list[Path]:
    """``wav_dir/train/<source>/*.wav`` (or ``wav_dir/<source>/*.wav`` when ``wav_dir`` is the train folder)."""
    wav_dir = Path(wav_dir)
    folder = wav_dir / "train" / source if (wav_dir / "train").is_dir() else wav_dir / source
    return list_audio(folder, f"solo {source} training recordings")


def train(wav_dir: str | Path, cfg: NMFConfig, progress: bool = True) -> NMFModel:
    """Learn one dictionary per source from its solo training recordings."""
    from tqdm import tqdm
    files = {s: training_files(wav_dir, s) for s in SOURCES}        # check both folders before any work
    dictionaries, info = {}, {"wav_dir": str(Path(wav_dir).resolve())}
    for source in tqdm(SOURCES, desc="NMF dictionaries", disable=not progress):
        start = time.perf_counter()
        frames = training_frames(files[source], cfg, progress, source)
        dictionaries[source], divergence, n_iter = learn_dictionary(frames, cfg)
        info[source] = {"files": len(files[source]), "frames": len(frames), "kl_divergence": divergence,
                        "iterations": n_iter, "seconds": time.perf_counter() - start}
        log.info("%s: %d atoms from %d frames of %d files, KL %.4g after %d iterations, %.1f s", source,
                 cfg.n_components, len(frames), len(files[source]), divergence, n_iter, info[source]["seconds"])
    return NMFModel(cfg, dictionaries, info)


# ------------------------------------------------------------------------------------- separation

def fit_activations(spec: np.ndarray, dictionary: np.ndarray, cfg: NMFConfig) -> np.ndarray:
    """Activations ``[n_atoms, n_frames]`` of ``spec [n_bins, n_frames] ≈ dictionary [n_bins, n_atoms] @ A`` (KL)."""
    from sklearn.decomposition import non_negative_factorization
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Maximum number of iterations")
        activations_t, _, _ = non_negative_factorization(
            spec.T, H=np.ascontiguousarray(dictionary.T), n_components=dictionary.shape[1], init="custom",
            update_H=False, solver="mu", beta_loss="kullback-leibler", max_iter=cfg.separate_iters, tol=cfg.tol)
    return activations_t.T


def separate(mixture: np.ndarray, model: NMFModel) -> np.ndarray:
    """Mono ``mixture [n_samples]`` -> source estimates ``[n_sources, n_samples]`` (they sum to the mixture)."""
    cfg = model.config
    mix_stft = stft(mixture, cfg.stft_config)
    dictionary = np.concatenate([model.dictionaries[s] for s in SOURCES], axis=1)      # [n_bins, J·K]
    activations = fit_activations(np.abs(mix_stft).astype(np.float64) ** cfg.spectrogram_power, dictionary, cfg)
    k = cfg.n_components
    models = np.stack([model.dictionaries[s] @ activations[j * k:(j + 1) * k] for j, s in enumerate(SOURCES)])
    masks = ratio_masks(models ** (1.0 / cfg.spectrogram_power), alpha=cfg.mask_exponent)
    return np.stack([istft(s, cfg.stft_config, len(mixture)) for s in apply_masks(mix_stft, masks)])


def separate_folder(model: NMFModel, data_dir: str | Path, out_dir: str | Path, progress: bool = True) -> dict:
    """Separate every mixture of ``data_dir`` (``mix/*.wav`` or ``*.wav``) into ``out_dir/{piano,violin}/NAME.wav``."""
    from separation.audio import mixture_files
    return separate_files(model, mixture_files(data_dir), out_dir, progress)


def separate_files(model: NMFModel, files: Sequence[Path], out_dir: str | Path, progress: bool = True) -> dict:
    """Separate the mixture wavs ``files`` into ``out_dir/{piano,violin}/NAME.wav``; writes and returns the
    timing summary ``out_dir/nmf.json``."""
    from tqdm import tqdm
    elapsed, audio_seconds = 0.0, 0.0
    for path in tqdm(files, desc="NMF separate", disable=not progress):
        mixture = load_audio(path, model.config.sample_rate)
        if is_silent(mixture):
            log.warning("%s: silent mixture; the estimates are silent-ish halves of it", path)
        start = time.perf_counter()
        estimates = separate(mixture, model)
        elapsed += time.perf_counter() - start
        audio_seconds += len(mixture) / model.config.sample_rate
        for source, estimate in zip(SOURCES, estimates):
            save_audio(Path(out_dir) / source / f"{Path(path).stem}.wav", estimate, model.config.sample_rate)
    summary = {"mixtures": len(files), "audio_seconds": audio_seconds, "seconds": elapsed,
               "seconds_per_audio_second": elapsed / max(audio_seconds, 1e-9), "config": dataclasses.asdict(model.config)}
    with atomic_output(Path(out_dir) / "nmf.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info("NMF separated %d mixtures (%.1f s of audio) in %.1f s (%.4f s per second of audio)",
             len(files), audio_seconds, elapsed, summary["seconds_per_audio_second"])
    return summary


def estimates_for(model_path: str | Path, files: Sequence[Path], cache_root: str | Path, progress: bool = True) -> Path:
    """A folder of this model's estimates of ``files``, ``{piano,violin}/<stem>.wav``, for BASIS to start from.

    The folder is ``cache_root/nmf-<first 10 hex digits of the model file's SHA-1>``, so another model never
    re-uses these estimates; only the files without both estimates there are separated (a rerun resumes)."""
    import hashlib
    model_path = Path(model_path)
    model = NMFModel.load(model_path)          # checks the file before the digest names a folder after it
    folder = Path(cache_root) / f"nmf-{hashlib.sha1(model_path.read_bytes()).hexdigest()[:10]}"
    missing = [Path(f) for f in files if not all((folder / s / f"{Path(f).stem}.wav").is_file() for s in SOURCES)]
    if missing:
        log.info("NMF (%s): estimates of %d mixture(s) to start from, in %s", model_path, len(missing), folder)
        separate_files(model, missing, folder, progress)
    return folder


# -------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    d = NMFConfig()
    p = argparse.ArgumentParser(prog="python -m separation.nmf", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="learn the per-source dictionaries from solo training recordings",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--wav", required=True, help="folder with train/{piano,violin}/*.wav (or {piano,violin}/*.wav)")
    t.add_argument("--out", required=True, help="model file to write (.npz: dictionaries + config)")
    t.add_argument("--components", type=int, default=d.n_components, help="dictionary atoms per source (K)")
    t.add_argument("--power", type=float, default=d.spectrogram_power, help="spectrogram exponent p: 1 magnitude, 2 power")
    t.add_argument("--max-frames", type=int, default=d.max_train_frames, help="training STFT frames sampled per source")
    t.add_argument("--silence-db", type=float, default=d.silence_db, help="drop training frames this many dB below the loudest")
    t.add_argument("--iters", type=int, default=d.train_iters, help="multiplicative-update iterations for the dictionaries")
    t.add_argument("--separate-iters", type=int, default=d.separate_iters, help="iterations to fit a mixture's activations")
    t.add_argument("--mask-exponent", type=float, default=d.mask_exponent,
                   help="a in masks V̂_j^(a/p)/Σ V̂_k^(a/p): 1 magnitude ratio, 2 Wiener (power ratio)")
    t.add_argument("--seed", type=int, default=d.seed, help="seed of frame sampling and initialisation")
    t.add_argument("--n-fft", type=int, default=d.n_fft, help="STFT size in samples")
    t.add_argument("--hop-length", type=int, default=d.hop_length, help="STFT hop in samples")
    t.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz")
    t.add_argument("--force", action="store_true", help="retrain even if --out holds a model with another config")
    s = sub.add_parser("separate", help="separate a folder of mixtures with a trained model",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--model", required=True, help="model file written by `train`")
    s.add_argument("--data", required=True, help="folder with mix/*.wav (or *.wav), or one mixture file")
    s.add_argument("--out", required=True, help="output folder: {piano,violin}/NAME.wav and nmf.json (timing)")
    s.add_argument("--separate-iters", type=int, default=None, help="override the model's activation iterations")
    s.add_argument("--mask-exponent", type=float, default=None, help="override the model's mask exponent")
    for sp in (t, s):
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "train":
        cfg = NMFConfig(n_components=a.components, spectrogram_power=a.power, max_train_frames=a.max_frames,
                        silence_db=a.silence_db, train_iters=a.iters, separate_iters=a.separate_iters,
                        mask_exponent=a.mask_exponent, seed=a.seed, sample_rate=a.sample_rate,
                        n_fft=a.n_fft, hop_length=a.hop_length)
        if Path(a.out).is_file() and not a.force:
            existing = NMFModel.load(a.out)
            if existing.config == cfg:
                print(f"{a.out}: already trained with this config; re-used (--force retrains)")
                return 0
            raise UserError(f"{a.out}: holds a model trained with another config; pass --force to overwrite "
                            "or choose another --out")
        model = train(a.wav, cfg, progress=not a.quiet)
        model.save(a.out)
        print(f"wrote {a.out}")
        return 0
    model = NMFModel.load(a.model)
    overrides = {k: v for k, v in (("separate_iters", a.separate_iters), ("mask_exponent", a.mask_exponent)) if v is not None}
    if overrides:
        model = dataclasses.replace(model, config=dataclasses.replace(model.config, **overrides))
    summary = separate_folder(model, a.data, a.out, progress=not a.quiet)
    print(f"{summary['mixtures']} mixtures -> {a.out}: {summary['seconds_per_audio_second']:.4f} s per second of audio")
    return 0


if __name__ == "__main__":
    run_cli(main)
