#!/usr/bin/env python
"""How the held-out DSM loss and the sample quality of an NCSN on 8x8 digits change with the network width.

For each ``--widths`` value this trains (or resumes) ``<runs>/w<width>`` with ``train_ncsn.py --dataset digits``
for ``--steps`` steps (all other settings at their defaults), then measures with the EMA-free final weights:

- ``dsm_loss``: σ²-weighted DSM loss per example on all 360 test digits, mean over the 10 levels, fixed noise;
- ``digit_score``: exp(E_x KL(p(y|x) || p(y))) of a logistic-regression digit classifier fitted to the training
  digits (the Inception Score with a classifier suited to 8x8 digits; 10 = confident and class-balanced);
- ``confidence``: mean largest class probability of that classifier on the samples;
- ``mmd``: squared maximum mean discrepancy between the samples and the test digits (Gaussian kernel, median
  bandwidth of the test digits), and ``nn_train_distance``: mean Euclidean distance from a sample to its nearest
  training digit (small = copies of the training set).

The same metrics of ``n_samples`` held-out test digits are printed as the reference a perfect model would reach.
Training runs ``--steps`` in one go: split a long study into several invocations with growing ``--steps``
(runs resume), e.g. to stay under a time limit.

Example:
    python bench/ncsn_width.py --widths 8 16 32 --steps 3000 --out results/ncsn_width.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import train_ncsn  # noqa: E402
from ncsn.config import SamplerConfig  # noqa: E402
from ncsn.sampling import draw_samples  # noqa: E402
from ncsn.training import DataConfig, load_score_model, make_eval_fn  # noqa: E402
from pipeline.errors import UserError, run_cli  # noqa: E402
from train_utils import checkpoint_step  # noqa: E402


def fit_digit_classifier(train_images: np.ndarray, train_labels: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(max_iter=2000, C=1.0).fit(train_images.reshape(len(train_images), -1), train_labels)


def digit_score(classifier, images: np.ndarray) -> tuple[float, float]:
    """(exp E KL(p(y|x) || p(y)), mean max p(y|x)) of ``images [N, 8, 8, 1]``."""
    probs = np.clip(classifier.predict_proba(images.reshape(len(images), -1)), 1e-12, 1.0)
    marginal = probs.mean(axis=0, keepdims=True)
    kl = np.sum(probs * (np.log(probs) - np.log(marginal)), axis=1)
    return float(np.exp(kl.mean())), float(probs.max(axis=1).mean())


def mmd_squared(a: np.ndarray, b: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD² with a Gaussian kernel exp(-|x - y|² / (2 bandwidth²)); inputs ``[N, D]``, ``[M, D]``."""
    def kernel(x, y):
        sq = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None] - 2 * x @ y.T
        return np.exp(-np.maximum(sq, 0) / (2 * bandwidth ** 2))
    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    n, m = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2 * kab.mean())


def sample_metrics(images: np.ndarray, classifier, test: np.ndarray, train: np.ndarray, bandwidth: float) -> dict:
    flat = images.reshape(len(images), -1).astype(np.float64)
    score, confidence = digit_score(classifier, images)
    nearest = np.sqrt(np.maximum(((flat[:, None] - train.reshape(len(train), -1)[None]) ** 2).sum(-1), 0)).min(1)
    return {"digit_score": round(score, 3), "confidence": round(confidence, 3),
            "mmd": round(mmd_squared(flat, test.reshape(len(test), -1), bandwidth), 5),
            "nn_train_distance": round(float(nearest.mean()), 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", nargs="+", type=int, default=[8, 16, 32], help="widths to compare (default 8 16 32)")
    p.add_argument("--steps", type=int, default=3000, help="training steps per width (default 3000)")
    p.add_argument("--runs", default="runs/ncsn_width", help="parent folder of the runs (default runs/ncsn_width)")
    p.add_argument("--n-samples", type=int, default=256, help="samples per width for the metrics (default 256)")
    p.add_argument("--n-steps-per-level", type=int, default=100, help="Langevin T for the metrics (default 100)")
    p.add_argument("--no-train", action="store_true", help="only evaluate the runs as they are")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    from sklearn.datasets import load_digits
    from pipeline.image_datasets import _split
    digits = load_digits()
    images = digits.images.astype(np.float32)[..., None] / 16.0
    train, test = _split(images, "train", 0.2), _split(images, "test", 0.2)
    train_labels = _split(digits.target, "train", 0.2)
    classifier = fit_digit_classifier(train, train_labels)
    flat_test = test.reshape(len(test), -1).astype(np.float64)
    sq = ((flat_test[:, None] - flat_test[None]) ** 2).sum(-1)
    bandwidth = float(np.sqrt(np.median(sq[np.triu_indices(len(test), 1)])))
    eval_fn = make_eval_fn(DataConfig("digits").examples("test", 1000))
    reference_rng = np.random.default_rng(0)
    half = reference_rng.permutation(len(test))
    reference = sample_metrics(test[half[:len(test) // 2]], classifier, test[half[len(test) // 2:]], train, bandwidth)
    print(json.dumps({"reference: test digits": reference}), flush=True)
    rows = []
    for width in args.widths:
        run_dir = Path(args.runs) / f"w{width}"
        if not args.no_train:
            train_ncsn.main(["--dataset", "digits", "--width", str(width), "--steps", str(args.steps),
                             "--run-dir", str(run_dir), "--log-every", "500", "--checkpoint-every", "1000"])
        if not (run_dir / "config.json").exists():
            raise UserError(f"{run_dir}: no run; drop --no-train to train it")
        model = load_score_model(run_dir)
        samples = draw_samples(model, SamplerConfig(n_steps_per_level=args.n_steps_per_level,
                                                    n_samples=args.n_samples), seed=1).numpy()
        row = {"width": width, "parameters": model.n_parameters(), "steps": checkpoint_step(run_dir),
               "dsm_loss": round(eval_fn(model)["dsm_loss"], 4),
               **sample_metrics(samples, classifier, test, train, bandwidth)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"reference_test_digits": reference, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
