"""Noise levels σ_1 > … > σ_L of an NCSN, and the NCSNv2 rules for choosing them.

All σ are standard deviations in the model's input units (images: [0, 1] pixels; mel: [0, 1]-scaled dB).

References:
    Song & Ermon (2019), NCSN: a geometric sequence σ_1 = 1 … σ_L = 0.01, L = 10.
    Song & Ermon (2020), NCSNv2, Technique 1: σ_1 as large as the largest Euclidean distance between
    training points; Technique 2: ratio γ = σ_{i-1}/σ_i with
    Φ(√(2D)(γ-1) + 3γ) - Φ(√(2D)(γ-1) - 3γ) ≈ 0.5 for data of dimension D.
"""
from __future__ import annotations

import math

import numpy as np


def geometric_sigmas(sigma_max: float, sigma_min: float, n_sigmas: int) -> np.ndarray:
    """``[n_sigmas]`` float32 geometric sequence from ``sigma_max`` down to ``sigma_min`` (both included)."""
    assert 0 < sigma_min < sigma_max and n_sigmas >= 2
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n_sigmas)).astype(np.float32)


def max_pairwise_distance(data: np.ndarray, max_examples: int = 2000, seed: int = 0,
                          chunk: int = 512) -> float:
    """Largest Euclidean distance between two examples of ``data [N, ...]`` (NCSNv2 Technique 1).

    Uses at most ``max_examples`` examples drawn without replacement (the exact maximum over all pairs
    is quadratic in N; a few thousand examples get within a few per cent of it on image data).
    """
    flat = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
    if len(flat) > max_examples:
        flat = flat[np.random.default_rng(seed).choice(len(flat), max_examples, replace=False)]
    sq_norms = np.sum(flat ** 2, axis=1)
    largest_sq = 0.0
    for start in range(0, len(flat), chunk):
        block = flat[start:start + chunk]
        sq = sq_norms[start:start + chunk, None] + sq_norms[None, :] - 2.0 * block @ flat.T
        largest_sq = max(largest_sq, float(sq.max()))
    return math.sqrt(max(largest_sq, 0.0))


def ncsnv2_ratio(data_dim: int, target: float = 0.5) -> float:
    """γ = σ_{i-1}/σ_i of NCSNv2 Technique 2 for data of dimension ``data_dim`` (solved by bisection)."""
    from scipy.stats import norm

    def overlap(gamma: float) -> float:
        centre = math.sqrt(2.0 * data_dim) * (gamma - 1.0)
        return norm.cdf(centre + 3.0 * gamma) - norm.cdf(centre - 3.0 * gamma)

    low, high = 1.0 + 1e-9, 100.0   # overlap decreases from 1 towards 0 as γ grows
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if overlap(mid) > target else (low, mid)
    return 0.5 * (low + high)


def ncsnv2_n_sigmas(sigma_max: float, sigma_min: float, data_dim: int) -> int:
    """Number of geometric levels from ``sigma_max`` to ``sigma_min`` with the NCSNv2 ratio (Technique 2)."""
    gamma = ncsnv2_ratio(data_dim)
    return max(2, int(math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma))) + 1)
