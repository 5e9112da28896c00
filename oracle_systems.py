"""Oracle separations: upper bounds computed from the true sources.

- **IBM** (ideal binary mask): each STFT bin goes to the source whose ratio mask exceeds ``theta``.
- **IRM** (ideal ratio mask): ``|S_j|^alpha / sum_k |S_k|^alpha`` applied to the mixture STFT.
- **MWF** (multichannel Wiener filter, as in sigsep's oracle: Duong, Vincent & Gribonval 2010):
  local power spectra ``v_j(f, n)`` and spatial covariances ``R_j(f)`` from the true sources;
  ``S_j = v_j R_j (sum_k v_k R_k)^-1 x``. On mono input it is the single-channel Wiener filter.
- **mel oracle**: Wiener masks from the true sources' *mel* powers brought back to STFT resolution
  (:func:`pipeline.masks.mel_ratio_masks`): the upper bound of any method that separates mel
  spectrograms and re-uses the mixture phase.

CLI: ``python oracle_systems.py --data DIR --out DIR`` reads ``DIR/{mix,piano,violin}/*.wav`` and
writes ``OUT/<method>/{piano,violin}/*.wav``; score them with ``bss_eval_v4.py``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.audio_io import save_audio
from pipeline.triplets import list_triplets, load_triplet
from pipeline.errors import UserError, log, run_cli
from pipeline.masks import MEL_INVERSES, apply_masks, binary_masks, mel_ratio_masks, ratio_masks
from pipeline.mel import MelConfig, istft, mel_basis, stft

SOURCES = ("piano", "violin")
METHODS = ("IBM", "IRM", "MWF", "mel_oracle")


def ibm(mix: np.ndarray, sources: np.ndarray, cfg: MelConfig, alpha: float = 1.0, theta: float = 0.5) -> np.ndarray:
    """Mono ``mix [n]``, ``sources [J, n]`` -> estimates ``[J, n]`` with the ideal binary mask."""
    source_stfts = np.stack([stft(s, cfg) for s in sources])
    return _masked(mix, binary_masks(source_stfts, alpha, theta), cfg)


def irm(mix: np.ndarray, sources: np.ndarray, cfg: MelConfig, alpha: float = 1.0) -> np.ndarray:
    """Mono ``mix [n]``, ``sources [J, n]`` -> estimates ``[J, n]`` with the ideal ratio mask."""
    source_stfts = np.stack([stft(s, cfg) for s in sources])
    return _masked(mix, ratio_masks(source_stfts, alpha), cfg)


def mel_oracle(mix: np.ndarray, sources: np.ndarray, cfg: MelConfig, method: str = "transpose") -> np.ndarray:
    """Mono ``mix [n]``, ``sources [J, n]`` -> estimates ``[J, n]`` from the sources' mel powers."""
    basis = mel_basis(cfg)
    mel_powers = np.stack([basis @ np.abs(stft(s, cfg)) ** 2 for s in sources])
    return _masked(mix, mel_ratio_masks(mel_powers, basis, method), cfg)


def _masked(mix: np.ndarray, masks: np.ndarray, cfg: MelConfig) -> np.ndarray:
    return np.stack([istft(s, cfg, len(mix)) for s in apply_masks(stft(mix, cfg), masks)])


def mwf(mix: np.ndarray, sources: np.ndarray, cfg: MelConfig, eps: float = 1e-10) -> np.ndarray:
    """Oracle multichannel Wiener filter.

    ``mix``: ``[n]`` (mono) or ``[n_channels, n]``; ``sources``: ``[J, n]`` or ``[J, n_channels, n]``.
    Returns estimates of the same shape as ``sources``.
    """
    mono = mix.ndim == 1
    mix_c = mix[None] if mono else mix                                   # [I, n]
    src_c = sources[:, None] if mono else sources                        # [J, I, n]
    n_ch = mix_c.shape[0]
    x = np.stack([stft(c, cfg) for c in mix_c], axis=-1)                 # [F, N, I]
    s = np.stack([np.stack([stft(c, cfg) for c in src], axis=-1) for src in src_c])   # [J, F, N, I]
    v = np.mean(np.abs(s) ** 2, axis=-1)                                 # [J, F, N] local power
    r = np.einsum("jfni,jfnk->jfik", s, s.conj()) / np.maximum(v.sum(axis=2), eps)[..., None, None]   # [J, F, I, I]
    cov = np.einsum("jfn,jfik->jfnik", v, r)                             # [J, F, N, I, I] source image covariances
    cov_x = cov.sum(axis=0) + eps * np.eye(n_ch)                         # [F, N, I, I]
    gain = np.einsum("jfnik,fnkl->jfnil", cov, np.linalg.inv(cov_x))     # Wiener gains
    est = np.einsum("jfnil,fnl->jfni", gain, x)                          # [J, F, N, I]
    out = np.stack([np.stack([istft(est[j, ..., i], cfg, mix_c.shape[1]) for i in range(n_ch)]) for j in range(len(src_c))])
    return out[:, 0] if mono else out


def run_oracles(data_dir: str | Path, out_dir: str | Path, cfg: MelConfig, methods: Sequence[str] = METHODS,
                irm_alpha: float = 1.0, ibm_theta: float = 0.5, mel_inverse: str = "transpose", progress: bool = True) -> None:
    """Write ``out_dir/<method>/{piano,violin}/NAME.wav`` for every triplet of ``data_dir``."""
    from tqdm import tqdm
    compute = {"IBM": lambda m, s: ibm(m, s, cfg, theta=ibm_theta),
               "IRM": lambda m, s: irm(m, s, cfg, alpha=irm_alpha),
               "MWF": lambda m, s: mwf(m, s, cfg),
               "mel_oracle": lambda m, s: mel_oracle(m, s, cfg, method=mel_inverse)}
    unknown = set(methods) - set(compute)
    if unknown:
        raise UserError(f"--methods: unknown {sorted(unknown)}; choose from {', '.join(METHODS)}")
    for name in tqdm(list_triplets(data_dir), desc="oracles", disable=not progress):
        audio = load_triplet(data_dir, name, cfg.sample_rate)
        sources = np.stack([audio[s] for s in SOURCES])
        if not np.any(audio["mix"]):
            log.warning("%s: silent mixture; oracle estimates are silent too", Path(data_dir) / "mix" / name)
        for method in methods:
            estimates = compute[method](audio["mix"], sources)
            for source, est in zip(SOURCES, estimates):
                save_audio(Path(out_dir) / method / source / name, est, cfg.sample_rate)


def build_parser() -> argparse.ArgumentParser:
    d = MelConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    p.add_argument("--out", required=True, help="output folder: <method>/{piano,violin}/*.wav")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"any of {' '.join(METHODS)}")
    p.add_argument("--irm-alpha", type=float, default=1.0, help="IRM exponent (1: magnitude ratio, 2: power ratio)")
    p.add_argument("--ibm-theta", type=float, default=0.5, help="IBM threshold on the magnitude ratio")
    p.add_argument("--mel-inverse", choices=MEL_INVERSES, default="transpose",
                   help="mel -> STFT power route of the mel oracle (transpose measured best: see README)")
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz")
    p.add_argument("--n-fft", type=int, default=d.n_fft, help="STFT size in samples")
    p.add_argument("--hop-length", type=int, default=d.hop_length, help="STFT hop in samples")
    p.add_argument("--mel-params", help="mel_params.json to take the STFT/mel parameters from (overrides the above)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = MelConfig.load(a.mel_params) if a.mel_params else MelConfig(sample_rate=a.sample_rate, n_fft=a.n_fft, hop_length=a.hop_length)
    run_oracles(a.data, a.out, cfg, a.methods, a.irm_alpha, a.ibm_theta, a.mel_inverse)
    return 0


if __name__ == "__main__":
    run_cli(main)
