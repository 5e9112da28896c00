"""Separated mel spectrograms -> audio: Wiener masks, separated magnitude with the mixture phase, Griffin-Lim.

Input: a folder written by ``run_basis_sep.py`` (:func:`separation.audio.separate_folder`)::

    SEP_DIR/<stem>/piano.npy, violin.npy   scaled mel [n_mels, n_frames] float32 in [0, 1]
    SEP_DIR/<stem>/meta.json               {"mixture": path, "gain": g, "n_samples": n, "sample_rate": sr,
                                            "mel_params": {MelConfig fields}, ...}

The mels describe the *gain-normalised* mixture ``g · m`` (librosa centred STFT, so
``n_frames = 1 + n_samples // hop_length``). For source ``j`` the mel power is
``P_j = 10^(d_j / 10)`` with ``d_j`` the dB undone from the [0, 1] scaling, ``[n_mels, n_frames]``;
``L(P_j)`` brings it back to STFT resolution ``[n_fft // 2 + 1, n_frames]`` with the pseudo-inverse,
a non-negative least-squares fit or the (level-normalised) transpose of the mel filterbank
(:func:`pipeline.masks.mel_to_linear_power`). The three routes:

- ``wiener``: masks ``M_j = L(P_j)^(a/2) / Σ_k L(P_k)^(a/2)`` (bins outside fmin..fmax copy the nearest
  covered bin; ``a`` the mask exponent on magnitudes, 2 by default: the power ratio) applied to the mixture
  STFT, ``Ŝ_j = M_j ⊙ STFT(m)``: with ``a = 2`` the single-channel Wiener filter
  (Benaroya, Bimbot & Gribonval 2006; Liutkus & Badeau 2015), the best route of the original
  BASIS project (Jayaram & Thickstun 2020). The gain cancels in the ratio; the estimates sum to the mixture.
- ``magnitude``: ``Ŝ_j = sqrt(L(P_j)) / g · exp(i ∠STFT(m))``: the separated magnitude, back at the
  mixture's level, with the mixture phase. Bins no mel band covers carry nothing and stay 0.
- ``griffinlim``: the phase of ``|Ŝ_j| = sqrt(L(P_j)) / g`` estimated by Griffin-Lim (Griffin & Lim 1984;
  librosa's fast variant with momentum 0.99, Perraudin, Balazs & Søndergaard 2013), random initial phase
  from ``seed``. It does not use the mixture at all (except for its length).

Outputs: ``OUT/<stem>/{piano,violin}.wav`` (layout ``per-mixture``) or ``OUT/{piano,violin}/<stem>.wav``
(layout ``per-source``, what ``bss_eval_v4.py`` reads), float32 wavs at the mixture's level, and
``OUT/inversion.json`` with the settings and the time per second of audio.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from pipeline.audio_io import atomic_output, load_audio, save_audio
from pipeline.errors import UserError, log, read_json
from pipeline.masks import MEL_INVERSES, apply_masks, fill_uncovered_bins, mel_to_linear_power, ratio_masks
from pipeline.mel import MelConfig, db_to_power, istft, mel_basis, stft, unscale_db
from separation.nmf import START_DIR

SOURCES = ("piano", "violin")
ROUTES = ("wiener", "magnitude", "griffinlim")
LAYOUTS = ("per-mixture", "per-source")
# Mel -> STFT-power route used when --mel-inverse is not given (measured on the demo: docs/separation_inversion.md).
DEFAULT_MEL_INVERSE = {"wiener": "transpose", "magnitude": "nnls", "griffinlim": "nnls"}
META_FILE = "meta.json"


@dataclass(frozen=True)
class InversionConfig:
    """How separated mels become audio; saved in ``OUT/inversion.json``."""
    route: str = "wiener"                 # one of ROUTES
    mel_inverse: str | None = None        # one of MEL_INVERSES; None: DEFAULT_MEL_INVERSE[route]
    griffinlim_iters: int = 64            # Griffin-Lim iterations (route griffinlim)
    seed: int = 0                         # Griffin-Lim initial phase
    mask_exponent: float = 2.0            # a (route wiener): masks |S_j|^a / Σ_k |S_k|^a; 2 power ratio (Wiener)

    def __post_init__(self):
        if self.route not in ROUTES:
            raise UserError(f"--route: unknown {self.route!r}; choose one of {', '.join(ROUTES)}")
        if self.mel_inverse is not None and self.mel_inverse not in MEL_INVERSES:
            raise UserError(f"--mel-inverse: unknown {self.mel_inverse!r}; choose one of {', '.join(MEL_INVERSES)}")
        if self.griffinlim_iters < 1:
            raise UserError(f"--griffinlim-iters: must be >= 1, got {self.griffinlim_iters}")
        if not (np.isfinite(self.mask_exponent) and self.mask_exponent > 0):
            raise UserError(f"--mask-exponent: must be a positive number, got {self.mask_exponent}")

    @property
    def resolved_mel_inverse(self) -> str:
        return self.mel_inverse or DEFAULT_MEL_INVERSE[self.route]


@dataclass
class SeparatedMels:
    """One mixture's separated mels and what is needed to turn them into audio."""
    folder: Path
    mixture_path: Path
    gain: float                # the mixture was multiplied by this before separation
    n_samples: int
    cfg: MelConfig
    mels: np.ndarray           # scaled mel [n_sources, n_mels, n_frames] in [0, 1]


# ----------------------------------------------------------------------------------------------- maths

def scaled_mel_to_power(mels: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Scaled mels ``[..., n_mels, n_frames]`` in [0, 1] -> mel power (float64, same shape)."""
    return db_to_power(unscale_db(np.asarray(mels, dtype=np.float64), cfg))


def linear_power(mel_power: np.ndarray, basis: np.ndarray, method: str) -> np.ndarray:
    """Mel power ``[..., n_mels, n_frames]`` -> STFT power ``[..., n_bins, n_frames]`` at the right level.

    ``pinv`` and ``nnls`` reproduce the mel power when mapped back through ``basis``; ``transpose`` is
    only a smooth interpolation, so it is divided per bin by ``basis.T @ basis @ 1``: a flat
    spectrum comes back flat at its own level. Bins no band covers are 0.
    """
    linear = mel_to_linear_power(mel_power, basis, method)
    if method == "transpose":
        basis = basis.astype(np.float64)
        flat_response = basis.T @ basis.sum(axis=1)                     # [n_bins]
        linear = linear / np.where(flat_response > 0, flat_response, 1.0)[:, None]
    return linear


def wiener_masks(mel_power: np.ndarray, basis: np.ndarray, method: str, exponent: float = 2.0) -> np.ndarray:
    """Masks ``[n_sources, n_bins, n_frames]`` summing to 1 from mel powers ``[n_sources, n_mels, n_frames]``.

    ``exponent`` applies to magnitudes: 2 gives the power ratio (Wiener), larger values tend to binary masks.
    """
    linear = mel_to_linear_power(mel_power, basis, method)
    return fill_uncovered_bins(ratio_masks(linear, alpha=exponent / 2.0), basis)


def invert_mixture(mixture: np.ndarray, mels: np.ndarray, gain: float, cfg: MelConfig, inv: InversionConfig,
                   basis: np.ndarray | None = None) -> np.ndarray:
    """Audio ``[n_sources, n_samples]`` of the sources, at the level of ``mixture``.

    ``mixture``: ``[n_samples]`` as given to the separator *before* multiplying it by ``gain``;
    ``mels``: scaled mels ``[n_sources, n_mels, n_frames]`` of the sources of ``gain · mixture``.
    """
    basis = mel_basis(cfg) if basis is None else basis
    method = inv.resolved_mel_inverse
    mel_power = scaled_mel_to_power(mels, cfg)
    n_samples = len(mixture)
    if inv.route == "wiener":
        separated = apply_masks(stft(mixture, cfg), wiener_masks(mel_power, basis, method, inv.mask_exponent))
        return np.stack([istft(s, cfg, n_samples) for s in separated])
    magnitudes = np.sqrt(linear_power(mel_power, basis, method)) / gain           # [J, n_bins, n_frames]
    if inv.route == "magnitude":
        mixture_phase = np.exp(1j * np.angle(stft(mixture, cfg)))
        return np.stack([istft(m * mixture_phase, cfg, n_samples) for m in magnitudes])
    import librosa
    rng = np.random.default_rng(inv.seed)
    return np.stack([librosa.griffinlim(m.astype(np.float32), n_iter=inv.griffinlim_iters, hop_length=cfg.hop_length,
                                        n_fft=cfg.n_fft, window="hann", center=True, length=n_samples,
                                        random_state=rng).astype(np.float32)
                     for m in magnitudes])


# ------------------------------------------------------------------------------------------ folders

def list_separated(sep_dir: str | Path) -> list[Path]:
    """The per-mixture folders of ``sep_dir`` (every sub-folder must hold a ``meta.json``)."""
    sep_dir = Path(sep_dir)
    if not sep_dir.is_dir():
        raise UserError(f"{sep_dir}: separated-mel folder not found (write it with run_basis_sep.py --dataset melspec)")
    shards = sep_dir / "shards"
    if shards.is_dir() and not (sep_dir / "index.json").is_file():
        raise UserError(f"{sep_dir}: not every --shard has finished (records in {shards}: "
                        f"{', '.join(sorted(p.name for p in shards.glob('*.json'))) or 'none'}); run the missing shards first")
    skipped = {shards, sep_dir / START_DIR}                   # shard records; NMF estimates BASIS started from
    folders = sorted(p for p in sep_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p not in skipped)
    if not folders:
        raise UserError(f"{sep_dir}: no per-mixture folders (<stem>/piano.npy, violin.npy, meta.json) in it")
    for folder in folders:
        if not (folder / META_FILE).is_file():
            raise UserError(f"{folder / META_FILE}: missing; the separation of this mixture did not finish "
                            "(re-run run_basis_sep.py or remove the folder)")
    return folders


def _read_meta(path: Path) -> dict:
    meta = read_json(path)
    missing = [k for k in ("mixture", "gain", "n_samples", "mel_params") if k not in meta]
    if missing:
        raise UserError(f"{path}: missing field(s) {', '.join(missing)}; written by an incompatible run_basis_sep.py")
    try:
        gain, n_samples = float(meta["gain"]), int(meta["n_samples"])
    except (TypeError, ValueError):
        raise UserError(f"{path}: 'gain' and 'n_samples' must be numbers") from None
    if not (np.isfinite(gain) and gain > 0):
        raise UserError(f"{path}: gain must be a finite positive number, got {meta['gain']!r}")
    if n_samples < 1:
        raise UserError(f"{path}: n_samples must be positive, got {meta['n_samples']!r}")
    return meta


def _mel_config(meta: dict, path: Path) -> MelConfig:
    try:
        cfg = MelConfig(**meta["mel_params"])
    except TypeError as err:
        raise UserError(f"{path}: mel_params are not MelConfig fields ({err})") from None
    if "sample_rate" in meta and int(meta["sample_rate"]) != cfg.sample_rate:
        raise UserError(f"{path}: sample_rate {meta['sample_rate']} disagrees with mel_params ({cfg.sample_rate})")
    return cfg


def read_separated(folder: str | Path, mixture_dir: str | Path | None = None) -> SeparatedMels:
    """Read and check one ``SEP_DIR/<stem>/``; ``mixture_dir`` replaces the folder of the recorded mixture path."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{meta_path}: missing; the separation of this mixture did not finish")
    meta = _read_meta(meta_path)
    cfg = _mel_config(meta, meta_path)
    mixture_path = Path(meta["mixture"])
    if mixture_dir is not None:
        mixture_path = Path(mixture_dir) / mixture_path.name
    if not mixture_path.is_file():
        raise UserError(f"{mixture_path}: mixture wav not found (named in {meta_path}); "
                        "pass --mixtures DIR if the mixtures moved")
    expected = (cfg.n_mels, 1 + int(meta["n_samples"]) // cfg.hop_length)
    mels = []
    for source in SOURCES:
        path = folder / f"{source}.npy"
        if not path.is_file():
            raise UserError(f"{path}: missing separated mel (expected beside {meta_path})")
        try:
            mel = np.load(path)
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: cannot read spectrogram ({err})") from None
        if mel.shape != expected:
            raise UserError(f"{path}: shape {mel.shape}, expected {expected} "
                            f"(n_mels {cfg.n_mels} x STFT frames of the {meta['n_samples']}-sample mixture)")
        if not np.all(np.isfinite(mel)):
            raise UserError(f"{path}: contains NaN or infinite values")
        mels.append(np.clip(mel, 0.0, 1.0))
    return SeparatedMels(folder, mixture_path, float(meta["gain"]), int(meta["n_samples"]), cfg, np.stack(mels))


def load_mixture(sep: SeparatedMels) -> np.ndarray:
    """The mixture wav ``[n_samples]``, checked against the length recorded at separation time."""
    mixture = load_audio(sep.mixture_path, sep.cfg.sample_rate)
    if len(mixture) != sep.n_samples:
        raise UserError(f"{sep.mixture_path}: {len(mixture)} samples, but {sep.folder / META_FILE} records "
                        f"{sep.n_samples}; the mixture changed after separation")
    return mixture


def output_paths(out_dir: str | Path, stem: str, layout: str) -> list[Path]:
    """Where the sources of mixture ``stem`` are written, in ``SOURCES`` order."""
    out_dir = Path(out_dir)
    if layout == "per-mixture":
        return [out_dir / stem / f"{s}.wav" for s in SOURCES]
    if layout == "per-source":
        return [out_dir / s / f"{stem}.wav" for s in SOURCES]
    raise UserError(f"--layout: unknown {layout!r}; choose one of {', '.join(LAYOUTS)}")


def invert_folder(sep_dir: str | Path, out_dir: str | Path, inv: InversionConfig, layout: str = "per-mixture",
                  mixture_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Invert every mixture of ``sep_dir`` into wavs under ``out_dir``; returns (and writes) the run summary.

    All folders are read and checked before any audio is written, so a bad input stops the run early.
    """
    from tqdm import tqdm
    output_paths(out_dir, "x", layout)                       # reject a bad layout before any work
    separated = [read_separated(f, mixture_dir) for f in list_separated(sep_dir)]
    bases: dict[MelConfig, np.ndarray] = {}
    audio_seconds, elapsed = 0.0, 0.0
    for sep in tqdm(separated, desc=f"invert ({inv.route})", disable=not progress):
        mixture = load_mixture(sep)
        basis = bases.setdefault(sep.cfg, mel_basis(sep.cfg))
        start = time.perf_counter()
        sources = invert_mixture(mixture, sep.mels, sep.gain, sep.cfg, inv, basis)
        elapsed += time.perf_counter() - start
        audio_seconds += sep.n_samples / sep.cfg.sample_rate
        for path, audio in zip(output_paths(out_dir, sep.folder.name, layout), sources):
            save_audio(path, audio, sep.cfg.sample_rate)
    summary = {"config": dataclasses.asdict(inv), "mel_inverse": inv.resolved_mel_inverse, "layout": layout,
               "sep_dir": str(Path(sep_dir).resolve()), "mixtures": len(separated), "audio_seconds": audio_seconds,
               "seconds": elapsed, "seconds_per_audio_second": elapsed / audio_seconds}
    with atomic_output(Path(out_dir) / "inversion.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    log.info("inverted %d mixtures (%.1f s of audio) by %s/%s in %.2f s (%.4f s per second of audio)", len(separated),
             audio_seconds, inv.route, inv.resolved_mel_inverse, elapsed, summary["seconds_per_audio_second"])
    return summary


# ----------------------------------------------------------------------------------- the mel oracle

def write_true_mels(data_dir: str | Path, sep_dir: str | Path, cfg: MelConfig,
                    target_rms_db: float | None = None, progress: bool = True) -> list[Path]:
    """Write the TRUE sources' scaled mels of the ``{mix,piano,violin}/*.wav`` triplets of ``data_dir`` as a
    separated-mel folder (same layout, gain and level normalisation as ``run_basis_sep.py``).

    Inverting it gives the ceiling of each route: the mel-domain oracle through this module.
    """
    from tqdm import tqdm
    from pipeline.preprocessing import save_mel
    from pipeline.mel import mel_scaled
    from pipeline.triplets import list_triplets, load_triplet
    from separation.audio import TARGET_RMS_DB, prepare_mixture
    target_rms_db = TARGET_RMS_DB if target_rms_db is None else target_rms_db
    basis = mel_basis(cfg)
    folders = []
    for name in tqdm(list_triplets(data_dir), desc="true mels", disable=not progress):
        mix_path = Path(data_dir) / "mix" / name
        prepared = prepare_mixture(mix_path, cfg, basis, target_rms_db)
        audio = load_triplet(data_dir, name, cfg.sample_rate)
        if len(audio["mix"]) != prepared.n_samples:
            raise UserError(f"{mix_path}: longer than its piano/violin stems; trim the triplet to one length")
        folder = Path(sep_dir) / mix_path.stem
        for source in SOURCES:
            save_mel(folder / f"{source}.npy", mel_scaled(audio[source] * prepared.gain, cfg, basis))
        save_mel(folder / "mix.npy", prepared.mel)
        meta = {"mixture": str(mix_path.absolute()), "gain": prepared.gain, "n_samples": prepared.n_samples,
                "sample_rate": cfg.sample_rate, "prior": "true sources (mel oracle)",
                "mel_params": dataclasses.asdict(cfg)}
        with atomic_output(folder / META_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
        folders.append(folder)
    return folders
