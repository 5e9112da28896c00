#!/usr/bin/env python
"""Score against the number of BASIS chains per mixture, from one run of K_max chains.

BASIS can run K chains per mixture and keep the one most probable under the priors (``--chains K``,
:class:`separation.basis.BasisConfig`). This runs K_max chains once, records every chain and its
Σ_k −log p_k(x_k), and scores, for K = 1 … K_max, the chain the priors pick among the first K: the same
draws, so the rows differ only by the selection. ``--rank-after-levels L ...`` adds, for every K > 1, the pick
that ranks the chains after the first L annealing levels (``--select-after-levels L``) instead of at the end.

- ``images``: superposed-image pairs; PSNR of the picked chain, the mean PSNR of single chains, and the
  best of K by PSNR (an oracle that needs the truth: how much a perfect selection could gain).
- ``melspec``: a folder of ``{mix,piano,violin}/*.wav`` triplets; per patch the picked chain, stitched,
  Wiener-inverted and scored with BSS Eval v4 (median SDR over tracks).

    python bench/chains.py images --checkpoint pretrained/ncsn_mnist --n-pairs 32 --chains 4 --out results/chains/mnist
    python bench/chains.py melspec --data data/demo/wav/test --chains 4 --out results/chains/demo8

Both write ``OUT/chains.md`` / ``chains.json``. ``rejudge`` re-ranks the chains an ``images --save-chains`` run
wrote with other counts of the bound's noise draws (``OUT/rejudge.md`` / ``rejudge.json``): does a less noisy
estimate of the bound pick better chains? ``average`` scores, from the same saved chains, the aligned mean of the
M most probable chains (``--average-top M``, :func:`separation.basis.average_top_chains`) against the pick
(``OUT/average.md`` / ``average.json``).

    python bench/chains.py rejudge --run results/chains/mnist --selection-draws 8 32 --repeats 2 --out OUT
    python bench/chains.py average --run results/chains/mnist --average-top 1 2 4 8 --out OUT
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_report  # noqa: E402
from pipeline.errors import run_cli  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


class RecordedChains:
    """A separator that runs ``n_chains`` chains of every batch at once and records them with the −log densities
    that rank them (:meth:`BasisSeparator.ranked_chains`: after each level count in ``rank_after``, and of the
    final sources, as ``--chains`` ranks them by default); after ``replay(k, ranking)`` it returns the same calls'
    results again, per mixture the most probable of the first k chains under that ranking (an index into
    ``rank_after``, or ``len(rank_after)`` for the final sources).

    It exposes ``priors`` and ``config`` (``n_chains = k``, ``select_after_levels``) so that
    :func:`separation.audio.separate_folder` records honest settings.
    """

    def __init__(self, separator, n_chains: int, rank_after: Sequence[int] = ()):
        self.base = separator
        self.priors = separator.priors
        self.config = separator.config
        self.n_chains = n_chains
        self.rank_after = tuple(sorted(rank_after))
        self.records: list[tuple[np.ndarray, np.ndarray]] = []         # ([S, K, B, ...], [R + 1, K, B]) per call
        self._replay: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._k, self._ranking = n_chains, len(self.rank_after)

    def separate(self, mixture, seed: int = 0):
        import tensorflow as tf
        if self._replay is not None:
            chains, nll = self._replay.pop(0)
            best = nll[self._ranking, :self._k].argmin(axis=0)
            return tf.constant(chains[:, best, np.arange(chains.shape[2])])
        sources, nll = self.base.ranked_chains(mixture, seed, self.n_chains, self.rank_after)
        chains = sources.numpy().reshape(sources.shape[0], self.n_chains, len(mixture), *sources.shape[2:])
        self.records.append((chains, nll.numpy()))
        return tf.constant(chains[:, 0])

    def frame_neg_log_densities(self, sources, seed: int = 0):
        """The base separator's (``--stitch select`` scores the kept chain)."""
        return self.base.frame_neg_log_densities(sources, seed)

    def ranking_label(self, ranking: int) -> str:
        return "final" if ranking == len(self.rank_after) else f"after {self.rank_after[ranking]} levels"

    def replay(self, k: int, ranking: int) -> "RecordedChains":
        self._replay = list(self.records)
        self._k, self._ranking = k, ranking
        early = None if ranking == len(self.rank_after) else self.rank_after[ranking]
        self.config = dataclasses.replace(self.base.config, n_chains=k, select_after_levels=early)
        return self


def selections(recorder: RecordedChains) -> list[tuple[int, int]]:
    """(k, ranking) pairs to score: k = 1 once, then every k > 1 under every ranking."""
    return [(1, len(recorder.rank_after))] + [(k, r) for k in range(2, recorder.n_chains + 1)
                                              for r in range(len(recorder.rank_after) + 1)]


def separation_args(args):
    """``run_basis_sep.py`` arguments for one chain with the priors' basis.json settings (``--steps`` and
    ``--selection-draws`` if given)."""
    from run_basis_sep import build_parser, cli_flags
    return build_parser().parse_args(["--dataset", "digits", "--out", "-", "--chains", "1"]
                                     + cli_flags({"--steps": args.steps, "--selection-draws": args.selection_draws}))


def image_rows(args) -> tuple[list[dict], dict]:
    from pipeline.image_datasets import load_images
    from run_basis_sep import make_separator
    from separation.images import make_image_mixtures, pair_psnr
    from separation.mixing import MeanMixing
    from separation.priors import load_prior
    prior = load_prior("ncsn", args.checkpoint)
    images = load_images(args.dataset, "test", args.data_dir, pad_to=prior.image_shape[0])
    truth, mixtures = make_image_mixtures(images, args.n_pairs, args.seed)
    separator = make_separator([prior, prior], MeanMixing(), separation_args(args), args.checkpoint)
    recorder = RecordedChains(separator, args.chains, args.rank_after_levels)
    start = time.perf_counter()
    for i in range(0, len(mixtures), args.batch_size):
        recorder.separate(mixtures[i:i + args.batch_size], seed=args.seed + i)
    seconds = time.perf_counter() - start
    chains = np.concatenate([c for c, _ in recorder.records], axis=2)                  # [S, K, N, ...]
    nll = np.concatenate([n for _, n in recorder.records], axis=2)                     # [R + 1, K, N]
    psnr = np.stack([pair_psnr(truth, chains[:, c]) for c in range(args.chains)])      # [K, N]
    rankings = {recorder.ranking_label(r): nll[r] for r in range(len(nll))}             # label -> [K, N] nats
    judge_nll = None
    if args.judge_glow:                 # another prior family as the judge of the NCSN's chains (exact density)
        judge_nll = flow_neg_log_densities(args.judge_glow, chains)
        rankings.update({"glow judge": judge_nll, "final + glow judge": nll[-1] + judge_nll})
    rows = []
    for k, label in [(1, recorder.ranking_label(len(nll) - 1))] + [(k, label) for k in range(2, args.chains + 1)
                                                                  for label in rankings]:
        picked = psnr[rankings[label][:k].argmin(axis=0), np.arange(psnr.shape[1])]
        rows.append({"chains": k, "ranked": label, "picked_mean": float(picked.mean()),
                     "picked_median": float(np.median(picked)), "single_chain_mean": float(psnr[:k].mean()),
                     "oracle_best_mean": float(psnr[:k].max(axis=0).mean())})
    extra = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "n_pairs": args.n_pairs, "seed": args.seed,
             "basis": {"n_steps_per_level": separator.config.n_steps_per_level, "step_lr": separator.config.step_lr,
                       "gamma_scale": separator.config.gamma_scale,
                       "selection_draws": separator.config.selection_draws},
             "separation_seconds": seconds, "psnr": np.round(psnr, 3).tolist(), "nll": np.round(nll, 2).tolist()}
    if judge_nll is not None:
        extra.update(judge_glow=str(args.judge_glow), judge_nll=np.round(judge_nll, 2).tolist())
    if args.save_chains:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(args.out) / "chains.npz", chains=chains, truth=truth, mixtures=mixtures)
    return rows, extra


def flow_neg_log_densities(run_dir: str | Path, chains: np.ndarray, batch: int = 256) -> np.ndarray:
    """Σ over sources of a flow's exact −log p (nats) of every chain: ``chains [S, K, N, H, W, C]`` → ``[K, N]``.
    The images are zero-padded to the flow's size (a multi-scale flow on MNIST models 32 × 32)."""
    import tensorflow as tf
    from pipeline.image_datasets import pad_images
    from separation.priors import load_prior
    prior = load_prior("glow", run_dir)
    flat = pad_images(chains.reshape(-1, *chains.shape[3:]), prior.image_shape[0]).astype(np.float32)
    nll = np.concatenate([prior.neg_log_density(tf.constant(flat[i:i + batch]), None).numpy()
                          for i in range(0, len(flat), batch)])
    return nll.reshape(chains.shape[:3]).sum(axis=0)


def saved_chains(run: Path) -> tuple[dict, np.lib.npyio.NpzFile]:
    """``chains.json`` and ``chains.npz`` of an ``images --save-chains`` run, or a :class:`UserError` naming the gap."""
    from pipeline.errors import UserError
    missing = [name for name in ("chains.npz", "chains.json") if not (run / name).is_file()]
    if missing:
        raise UserError(f"{run}: no {' or '.join(missing)}; write them with bench/chains.py images ... --save-chains "
                        f"--out {run}")
    return json.loads((run / "chains.json").read_text()), np.load(run / "chains.npz")


def average_rows(args) -> tuple[list[dict], dict]:
    """PSNR of the aligned mean of the M most probable of the run's K chains (ranked by the run's own bound), for
    every M in ``args.average_top`` (M = 1: the pick)."""
    import itertools
    from separation.basis import average_top_chains
    from separation.images import pair_psnr, plot_image_separation
    record, saved = saved_chains(Path(args.run))
    chains, truth = saved["chains"], saved["truth"]                                       # [S, K, N, ...], [S, N, ...]
    nll = np.asarray(record["nll"])[-1]                                                   # [K, N]
    orders = list(itertools.permutations(range(chains.shape[0])))
    rows = []
    for top in args.average_top:
        estimates = average_top_chains(chains, nll, min(top, chains.shape[1]), orders).numpy()
        scores = pair_psnr(truth, estimates)
        plot_image_separation(saved["mixtures"], truth, estimates, Path(args.out) / f"average_top{top}.png",
                              title=(f"mean of the {top} most probable" if top > 1 else "the most probable")
                              + f" of {chains.shape[1]} chains: PSNR {scores.mean():.2f} dB")
        rows.append({"chains": int(chains.shape[1]), "average_top": int(top), "psnr_mean": float(scores.mean()),
                     "psnr_median": float(np.median(scores)), "under_21_db": int((scores < 21).sum()),
                     "psnr": np.round(scores, 3).tolist()})
    psnr = np.asarray(record["psnr"])
    return rows, {"run": str(args.run), "seed": record["seed"], "n_pairs": int(chains.shape[2]),
                  "oracle_best_mean": float(psnr.max(axis=0).mean())}


def average_table(rows: list[dict]) -> str:
    lines = ["| chains K | averaged M | PSNR (mean) | (median) | pairs < 21 dB |", "|---|---|---|---|---|"]
    lines += [f"| {r['chains']} | {r['average_top']}{' (the pick)' if r['average_top'] == 1 else ''} | "
              f"{r['psnr_mean']:.2f} | {r['psnr_median']:.2f} | {r['under_21_db']} |" for r in rows]
    return "\n".join(lines) + "\n"


def rejudge_rows(args) -> tuple[list[dict], dict]:
    """Re-rank the chains an ``images --save-chains`` run wrote (``RUN/chains.npz``, ``RUN/chains.json``) by the
    NCSN bound with each count of noise draws in ``args.selection_draws``, ``args.repeats`` independent noise
    seeds each (repeat 0 uses the run's own seeds, so with the run's draw count it reproduces its pick)."""
    import tensorflow as tf
    from run_basis_sep import build_parser as basis_parser, make_separator
    from separation.mixing import MeanMixing
    from separation.priors import load_prior
    run = Path(args.run)
    record, saved = saved_chains(run)
    chains, psnr = saved["chains"], np.asarray(record["psnr"])                          # [S, K, N, ...], [K, N]
    n_sources, k_max, n_pairs = chains.shape[:3]
    run_nll = np.asarray(record["nll"])[-1]                                             # [K, N]: the run's own ranking
    checkpoint = args.checkpoint or record["checkpoint"]
    prior = load_prior("ncsn", checkpoint)
    rows, bounds = [], {}
    for draws in args.selection_draws:
        flags = basis_parser().parse_args(["--dataset", "digits", "--out", "-", "--selection-draws", str(draws)])
        separator = make_separator([prior] * n_sources, MeanMixing(), flags, checkpoint)
        bound = tf.function(lambda sources, seed: separator.chain_neg_log_densities(sources, k_max, seed))
        for repeat in range(args.repeats):
            nll = np.concatenate([bound(tf.constant(part.reshape(n_sources, -1, *part.shape[3:])),
                                        separator.run_seed(record["seed"] + i + 7919 * repeat)).numpy()
                                  for i in range(0, n_pairs, args.batch_size)
                                  for part in [chains[:, :, i:i + args.batch_size]]], axis=1)      # [K, N]
            bounds[(draws, repeat)] = nll
            for k in sorted({2, k_max // 2, k_max} - {0, 1}):
                picked = psnr[nll[:k].argmin(axis=0), np.arange(n_pairs)]
                rows.append({"selection_draws": draws, "repeat": repeat, "chains": k,
                             "picked_mean": float(picked.mean()), "picked_median": float(np.median(picked)),
                             "same_pick_as_run": float(np.mean(nll[:k].argmin(axis=0) == run_nll[:k].argmin(axis=0)))})
    extra = {"run": str(run), "checkpoint": str(checkpoint), "seed": record["seed"], "n_pairs": n_pairs,
             "run_selection_draws": record["basis"]["selection_draws"],
             "single_chain_mean": float(psnr.mean()), "oracle_best_mean": float(psnr.max(axis=0).mean()),
             "nll": {f"{d}/{r}": np.round(nll, 2).tolist() for (d, r), nll in bounds.items()}}
    return rows, extra


def rejudge_table(rows: list[dict]) -> str:
    lines = ["| bound draws | noise seed | chains K | PSNR, picked (mean) | (median) | same pick as the run |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['selection_draws']} | {r['repeat']} | {r['chains']} | {r['picked_mean']:.2f} | "
              f"{r['picked_median']:.2f} | {r['same_pick_as_run']:.0%} |" for r in rows]
    return "\n".join(lines) + "\n"


def image_table(rows: list[dict]) -> str:
    lines = ["| chains K | ranked | PSNR, prior-picked chain (mean) | (median) | single chain (mean) | "
             "best of K by PSNR (oracle) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['chains']} | {r['ranked']} | {r['picked_mean']:.2f} | {r['picked_median']:.2f} | "
              f"{r['single_chain_mean']:.2f} | {r['oracle_best_mean']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def melspec_rows(args) -> tuple[list[dict], dict]:
    from bss_eval_v4 import evaluate_methods
    from run_basis_sep import make_separator, mel_config_of
    from separation.audio import separate_folder
    from separation.inversion import InversionConfig, invert_folder
    from separation.mixing import MelDbMixing
    from separation.priors import load_prior
    data, out = Path(args.data), Path(args.out)
    priors = [load_prior("ncsn", run) for run in (args.piano, args.violin)]
    cfg = mel_config_of(args.piano)
    separator = make_separator(priors, MelDbMixing(cfg), separation_args(args), args.piano)
    recorder = RecordedChains(separator, args.chains, args.rank_after_levels)
    mixtures = sorted((data / "mix").glob("*.wav"))
    for old in out.glob("_mels_K*"):              # this bench's own scratch: a finished folder would be skipped
        shutil.rmtree(old)
    start = time.perf_counter()
    folders = {}
    for k, ranking in selections(recorder):
        name = f"K{k}" + ("" if ranking == len(recorder.rank_after) else f"_L{recorder.rank_after[ranking]}")
        sep_dir = out / f"_mels_{name}"
        separate_folder(mixtures, sep_dir, recorder if k == 1 else recorder.replay(k, ranking), cfg, args.batch_size,
                        seed=args.seed, progress=k == 1)
        if k == 1:
            seconds = time.perf_counter() - start
        folders[(k, ranking)] = out / name
        invert_folder(sep_dir, folders[(k, ranking)], InversionConfig(route="wiener"), layout="per-source", progress=False)
    per_track, summaries = evaluate_methods(data, {folder.name: folder for folder in folders.values()}, progress=False)
    rows = [{"chains": k, "ranked": recorder.ranking_label(ranking),
             "sdr": {s: summaries[folder.name][s]["SDR"] for s in ("piano", "violin")}}
            for (k, ranking), folder in folders.items()]
    extra = {"data": str(data), "priors": [args.piano, args.violin], "seed": args.seed,
             "basis": {"n_steps_per_level": separator.config.n_steps_per_level, "step_lr": separator.config.step_lr,
                       "selection_draws": separator.config.selection_draws},
             "separation_seconds": seconds, "medians": summaries, "per_track": per_track}
    return rows, extra


def melspec_table(rows: list[dict]) -> str:
    lines = ["| chains K | ranked | SDR piano | SDR violin |", "|---|---|---|---|"]
    lines += [f"| {r['chains']} | {r['ranked']} | {r['sdr']['piano']:.2f} | {r['sdr']['violin']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    images = sub.add_parser("images", help="superposed images (MNIST)")
    images.add_argument("--checkpoint", default=str(PRETRAINED / "ncsn_mnist"), help="NCSN run folder")
    images.add_argument("--dataset", default="mnist_subset", help="image dataset (run_basis_sep.py --dataset)")
    images.add_argument("--data-dir", help="folder holding mnist.npz / cifar-10-batches-py")
    images.add_argument("--n-pairs", type=int, default=32)
    images.add_argument("--batch-size", type=int, default=32, help="pairs per call (each call runs K times as many)")
    images.add_argument("--judge-glow", metavar="RUN", help="also rank the chains by this Glow's exact −log p, alone "
                        "and added to the NCSN bound (rows 'glow judge', 'final + glow judge'), e.g. pretrained/glow_mnist")
    images.add_argument("--save-chains", action="store_true", help="write every chain, the truth and the mixtures "
                        "to OUT/chains.npz")
    mel = sub.add_parser("melspec", help="a folder of {mix,piano,violin}/*.wav triplets")
    mel.add_argument("--data", required=True, help="folder with {mix,piano,violin}/*.wav")
    mel.add_argument("--piano", default=str(PRETRAINED / "ncsn_piano"), help="NCSN run folder of the piano prior")
    mel.add_argument("--violin", default=str(PRETRAINED / "ncsn_violin"), help="NCSN run folder of the violin prior")
    mel.add_argument("--batch-size", type=int, default=16, help="patches per call (each call runs K times as many)")
    rejudge = sub.add_parser("rejudge", help="re-rank the chains an images --save-chains run wrote, with other "
                             "counts of bound draws")
    rejudge.add_argument("--checkpoint", help="NCSN run folder (default: the run's)")
    rejudge.add_argument("--selection-draws", type=int, nargs="+", default=[8], help="noise draws per σ level")
    rejudge.add_argument("--repeats", type=int, default=1, help="independent noise seeds per draw count")
    rejudge.add_argument("--batch-size", type=int, default=32, help="pairs per call (each call scores K times as "
                         "many); the run's, for repeat 0 to draw the run's noise")
    average = sub.add_parser("average", help="score the aligned mean of the most probable chains an images "
                             "--save-chains run wrote, against its pick")
    average.add_argument("--average-top", type=int, nargs="+", default=[1, 2, 4, 8], metavar="M",
                         help="numbers of most probable chains to average (1: the pick)")
    for saved_parser in (rejudge, average):
        saved_parser.add_argument("--out", required=True, help="output folder")
        saved_parser.add_argument("--run", required=True, help="the --out folder of an images --save-chains run "
                                  "(chains.npz, chains.json)")
    for sub_parser in (images, mel):
        sub_parser.add_argument("--chains", type=int, default=4, help="K_max")
        sub_parser.add_argument("--steps", type=int, help="Langevin steps per level (default: the prior's basis.json)")
        sub_parser.add_argument("--selection-draws", type=int, help="noise draws per σ level of the density bound "
                                "that ranks the chains (default: the prior's basis.json, else 8)")
        sub_parser.add_argument("--rank-after-levels", type=int, nargs="*", default=[], metavar="L",
                                help="also score the picks made after the first L annealing levels "
                                     "(--select-after-levels L), from the same chains")
        sub_parser.add_argument("--seed", type=int, default=0)
        sub_parser.add_argument("--out", required=True, help="output folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows_of, table_of = {"images": (image_rows, image_table), "melspec": (melspec_rows, melspec_table),
                         "rejudge": (rejudge_rows, rejudge_table), "average": (average_rows, average_table)}[args.kind]
    rows, extra = rows_of(args)
    write_report(args.out, args.kind if args.kind in ("rejudge", "average") else "chains", {"rows": rows, **extra},
                 table_of(rows))
    return 0


if __name__ == "__main__":
    run_cli(main)
