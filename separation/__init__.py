"""Separation: BASIS (annealed Langevin on the posterior of the sources), mixing models, priors, inversion, NMF peer."""
