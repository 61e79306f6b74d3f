"""keras_recipes.distribute: data-parallel training on each backend's own engine.

``setup(kind)`` returns a :class:`DistributeContext` for the current Keras
backend: ``tf.distribute`` Mirrored / MultiWorkerMirrored strategies
(tensorflow), ``keras.distribution.DataParallel`` (jax), torch
``DistributedDataParallel`` under ``torchrun`` (torch), or one device. The
table from backend and kind to engine is ``ENGINES`` in ``engines.py``.
"""

from keras_recipes.distribute.distribute_context import DistributeContext
from keras_recipes.distribute.engines import ENGINES, KINDS, scope_for, setup
from keras_recipes.distribute.global_batches import split_bounds

__all__ = [
    "ENGINES",
    "KINDS",
    "DistributeContext",
    "scope_for",
    "setup",
    "split_bounds",
]
