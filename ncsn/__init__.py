"""NCSN prior: noise-conditional score network, denoising score matching, annealed Langevin dynamics.

Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data Distribution";
Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models".
"""
from ncsn.config import NCSNConfig, SamplerConfig
from ncsn.model import ScoreNetwork
from ncsn.sampling import AnnealedLangevin, draw_samples, initial_samples
from ncsn.sigmas import geometric_sigmas, max_pairwise_distance

__all__ = ["NCSNConfig", "SamplerConfig", "ScoreNetwork", "AnnealedLangevin", "draw_samples", "initial_samples",
           "geometric_sigmas", "max_pairwise_distance"]
