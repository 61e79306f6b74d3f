"""keras_recipes.backend: the one place where per-backend code lives.

Layers, regularizers and initializers use ``keras.ops`` only. Work that Keras
does not expose portably (gradients outside ``fit``) is dispatched here through
a ``{"torch": ..., "tensorflow": ..., "jax": ...}`` table.
"""

from keras_recipes.backend.compilation import allow_jit, prefer_fast_compilation
from keras_recipes.backend.convolution import fast_small_convolutions
from keras_recipes.backend.device import (
    accelerator,
    device_description,
    mixed_precision_policy,
    set_num_threads,
    to_host,
)
from keras_recipes.backend.gradients import loss_and_gradients
from keras_recipes.backend.input_gradient import input_gradient
from keras_recipes.backend.random_state import get_random_state, set_random_state
from keras_recipes.backend.retrain import clone_optimizer, rebuild_optimizer

__all__ = [
    "accelerator",
    "allow_jit",
    "clone_optimizer",
    "device_description",
    "fast_small_convolutions",
    "get_random_state",
    "input_gradient",
    "loss_and_gradients",
    "mixed_precision_policy",
    "prefer_fast_compilation",
    "rebuild_optimizer",
    "set_num_threads",
    "set_random_state",
    "to_host",
]
