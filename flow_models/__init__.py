"""Normalizing-flow priors (Glow, RealNVP) built from ``tfp.bijectors.Bijector`` subclasses.

Modules: ``flow_ops`` (the layer arithmetic), ``flow_tfp_bijectors`` (the bijectors), ``flow_tfk_layers``
(coupling networks and Keras-layer twins of the bijectors), ``flow_glow`` / ``flow_realnvp`` (architectures),
``flow_builder`` (the :class:`~flow_models.flow_builder.Flow` distribution and loaders), ``config``,
``training`` (datasets, loss and figures shared by the training scripts), ``utils``.
"""
import pipeline  # noqa: F401  (sets TensorFlow's environment, e.g. oneDNN, before TensorFlow loads)
