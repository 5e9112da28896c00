"""NCSN prior: noise-conditional score network, denoising score matching, annealed Langevin dynamics.

Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data Distribution";
Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models".

For separation (BASIS)::

    model = ncsn.load_score_model("runs/ncsn_piano")       # EMA weights when the run kept them
    score = model(x, sigma_index)                           # x [B, H, W, C], sigma_index int [B] or scalar
    model.sigma_levels                                      # [L] σ_1 > … > σ_L, as in config.json
"""
import pipeline  # noqa: F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)

from ncsn.config import NCSNConfig, SamplerConfig
from ncsn.model import ScoreNetwork
from ncsn.sampling import AnnealedLangevin, draw_samples, initial_samples
from ncsn.sigmas import geometric_sigmas, max_pairwise_distance
from ncsn.training import load_score_model, read_run_configs

__all__ = ["NCSNConfig", "SamplerConfig", "ScoreNetwork", "AnnealedLangevin", "draw_samples", "initial_samples",
           "geometric_sigmas", "max_pairwise_distance", "load_score_model", "read_run_configs"]
