"""The training step of ``AugmentedModel``: augment each batch inside the compiled step.

``keras.Model.train_step`` has one signature per backend: ``train_step(data)``
on torch and TensorFlow (stateful: variables are assigned in place, also inside
``tf.function(jit_compile=True)``), ``train_step(state, data)`` on JAX
(stateless: the step is a pure jitted function of the model state). On JAX the
augmentation's seed-generator state is one of the model's non-trainable
variables; it is read from, and written back to, the ``state`` passed to the
step, so every step of a jitted ``fit`` draws fresh randomness.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_recipes.backend.dispatch import for_backend

__all__ = ["augmented_train_step"]


def augment_batch(model, data):
    """`(x, y, sample_weight)` with `model.augmentation` applied to `(x, y)`."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        x = model.augmentation(x, training=True)
    else:
        x, y = model.augmentation(x, y, training=True)
    return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)


def _stateful(model, data):
    return keras.Model.train_step(model, augment_batch(model, data))


def _jax(model, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    variables = list(model.non_trainable_variables)
    own = {id(v) for v in model.augmentation.non_trainable_variables}
    mapping = [(v, val) for v, val in zip(variables, non_trainable, strict=True)
               if id(v) in own]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        data = augment_batch(model, data)
    non_trainable = [
        scope.get_current_value(v) if id(v) in own else val
        for v, val in zip(variables, non_trainable, strict=True)
    ]
    state = (trainable, non_trainable, optimizer_vars, metrics_vars)
    return keras.Model.train_step(model, state, data)


_DISPATCH: dict[str, Callable] = {
    "jax": _jax,
    "torch": _stateful,
    "tensorflow": _stateful,
}


def augmented_train_step(model: keras.Model, *args):
    """``model.train_step(*args)`` of the backend, on augmented data.

    Args:
        model: a ``keras.Model`` with an ``augmentation`` layer attribute, called
            as ``augmentation(x, y, training=True) -> (x, y)``.
        *args: the arguments Keras passes to ``train_step`` on this backend.

    Returns:
        What ``keras.Model.train_step`` returns on this backend.
    """
    return for_backend(_DISPATCH)(model, *args)
