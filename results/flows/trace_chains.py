"""Trace BASIS chains of 8 MNIST pairs (seed 2) with the noisy MNIST Glow: per step of the first level, then per
level, the range of x, the score's size, the mixture residual; stops at the first non-finite state.

Usage: PYTHONPATH=. python results/flows/trace_chains.py clip|raw DELTA GAMMA_SCALE STEPS [RUN]
"""
import sys
import numpy as np
import tensorflow as tf
from pipeline.image_datasets import load_images, pad_images
from separation.basis import BasisConfig, BasisSeparator
from separation.images import make_image_mixtures
from separation.mixing import MeanMixing
from separation.priors import load_prior

inputs, delta, gamma, steps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
prior = load_prior("noisy_glow", sys.argv[5] if len(sys.argv) > 5 else "runs/glow_mnist_noisy", flow_inputs=inputs)
truth, mix = make_image_mixtures(load_images("mnist_subset", "test"), 8, 2)
mix = tf.constant(pad_images(mix, 32))
cfg = BasisConfig(sigma_levels=tuple(prior.sigma_levels), n_steps_per_level=steps, step_lr=delta, gamma_scale=gamma)
sep = BasisSeparator([prior, prior], MeanMixing(), cfg)
x = sep.initial_sources(mix, tf.constant([1, 2]))
step = tf.function(sep.update_fn)
for level in range(len(prior.sigma_levels)):
    for t in range(steps):
        x = step(x, mix, tf.constant(level), tf.constant([level, t]))
        if not np.all(np.isfinite(x.numpy())):
            sys.exit(print(f"σ={prior.sigma_levels[level]:.3f} step {t}: non-finite sources"))
        if level == 0 and t < 12:
            sc = sep.scores(x, tf.constant(level)).numpy()
            print(f"  t={t} x∈[{x.numpy().min():.3g},{x.numpy().max():.3g}] |s|max={np.abs(sc).max():.3g} |s|rms={np.sqrt((sc**2).mean()):.3g}", flush=True)
    s = sep.scores(x, tf.constant(level)).numpy()
    r = (mix - sep.mixing(x)).numpy()
    sigma = prior.sigma_levels[level]
    print(f"σ={sigma:.3f} x∈[{x.numpy().min():.2f},{x.numpy().max():.2f}] |resid|rms={np.sqrt((r**2).mean()):.3g} "
          f"σ·|s|rms={sigma*np.sqrt((s**2).mean()):.3g}", flush=True)
