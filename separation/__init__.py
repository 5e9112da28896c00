"""Separation: BASIS (annealed Langevin on the posterior of the sources), mixing models, priors, inversion, NMF peer."""
import pipeline  # noqa: F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
