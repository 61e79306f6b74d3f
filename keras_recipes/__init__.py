"""keras-recipes: tested Keras 3 parts and recipes for training deep networks well.

Every part runs under the torch, tensorflow and jax Keras backends. Choose the
backend before importing Keras (``KERAS_BACKEND=torch|tensorflow|jax``).

Subpackages:
    layers: batch-level augmentation (MixUp, CutMix, MixUpOrCutMix).
    callbacks: EarlyStopping, GradientHistogram, UnfreezeSchedule.
    regularizers: weight penalties that can be added to built models.
    initializers: Xavier/He with explicit gain conventions, LSUV.
    applications: transfer-learning models from keras.applications backbones.
    data: bundled offline data (scikit-learn digits) and real downloaders.
    distribute: data-parallel training on each backend's own engine.
    models: model wrappers (AugmentedModel).
    experiments: what the recipes share (command line, run folder, results).
"""

__version__ = "0.1.0"

from keras_recipes import (  # noqa: E402
    applications,
    backend,
    callbacks,
    data,
    distribute,
    experiments,
    initializers,
    layers,
    models,
    regularizers,
)

__all__ = [
    "__version__",
    "applications",
    "backend",
    "callbacks",
    "data",
    "distribute",
    "experiments",
    "initializers",
    "layers",
    "models",
    "regularizers",
]
