"""Turn separated mel spectrograms (run_basis_sep.py --dataset melspec) into piano.wav and violin.wav.

Routes (see separation/inversion.py): ``wiener`` soft masks from the separated mel powers on the mixture
STFT (the best; estimates sum to the mixture), ``magnitude`` separated magnitude with the mixture phase,
``griffinlim`` separated magnitude with a Griffin-Lim phase.

Examples::

    python melspec_inversion_basis.py --sep results/basis_mels --out results/basis_wavs
    python melspec_inversion_basis.py --sep results/basis_mels --out results/est/basis --layout per-source
    # the mel oracle through the same code: true mels of the test triplets, then invert them
    python melspec_inversion_basis.py --true-mels-from data/demo/wav/test --sep results/true_mels \\
        --out results/est/true_mel_wiener --layout per-source
"""
from __future__ import annotations

import argparse
from typing import Sequence

from pipeline.errors import run_cli
from pipeline.masks import MEL_INVERSES
from separation.inversion import DEFAULT_MEL_INVERSE, LAYOUTS, ROUTES, InversionConfig, invert_folder, write_true_mels


def build_parser() -> argparse.ArgumentParser:
    d = InversionConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sep", required=True,
                   help="separated-mel folder SEP_DIR: <stem>/{piano,violin}.npy + meta.json per mixture")
    p.add_argument("--out", required=True, help="output folder for the wavs (and inversion.json: settings, timing)")
    p.add_argument("--route", choices=ROUTES, default=d.route, help=f"mel -> audio route (default: {d.route})")
    p.add_argument("--mel-inverse", choices=MEL_INVERSES, default=None,
                   help="how mel powers are brought back to STFT resolution: pseudo-inverse, non-negative least "
                        "squares, or the level-normalised filterbank transpose (default per route: "
                        + ", ".join(f"{r} {m}" for r, m in DEFAULT_MEL_INVERSE.items()) + ")")
    p.add_argument("--griffinlim-iters", type=int, default=d.griffinlim_iters,
                   help=f"Griffin-Lim iterations, route griffinlim (default: {d.griffinlim_iters})")
    p.add_argument("--mask-exponent", type=float, default=d.mask_exponent,
                   help="route wiener: masks |S_j|^a / sum_k |S_k|^a from the separated mels; 2 is the power "
                        f"ratio (Wiener), larger values sharpen the masks towards binary (default: {d.mask_exponent:g})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of Griffin-Lim's initial phase (default: {d.seed})")
    p.add_argument("--layout", choices=LAYOUTS, default="per-mixture",
                   help="per-mixture: OUT/<stem>/{piano,violin}.wav; per-source: OUT/{piano,violin}/<stem>.wav "
                        "(what bss_eval_v4.py --estimates reads) (default: per-mixture)")
    p.add_argument("--mixtures", default=None,
                   help="folder holding the mixture wavs, if they moved since separation "
                        "(default: the path recorded in each meta.json)")
    p.add_argument("--true-mels-from", default=None, metavar="DATA_DIR",
                   help="first write the TRUE sources' mels of DATA_DIR/{mix,piano,violin}/*.wav into --sep "
                        "(the mel oracle: the ceiling of each route), then invert them")
    p.add_argument("--mel-params", default=None,
                   help="mel_params.json for --true-mels-from (default: MelConfig defaults, 96 bands, hop 512)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    inv = InversionConfig(route=a.route, mel_inverse=a.mel_inverse, griffinlim_iters=a.griffinlim_iters, seed=a.seed,
                          mask_exponent=a.mask_exponent)
    if a.true_mels_from:
        from pipeline.mel import MelConfig
        cfg = MelConfig.load(a.mel_params) if a.mel_params else MelConfig()
        write_true_mels(a.true_mels_from, a.sep, cfg, progress=not a.quiet)
    summary = invert_folder(a.sep, a.out, inv, layout=a.layout, mixture_dir=a.mixtures, progress=not a.quiet)
    print(f"{summary['mixtures']} mixtures -> {a.out} ({inv.route}, {summary['mel_inverse']}): "
          f"{summary['seconds_per_audio_second']:.4f} s per second of audio")
    return 0


if __name__ == "__main__":
    run_cli(main)
