"""Give a compiled model a new optimizer on its current trainable set, inside ``fit``.

Changing ``layer.trainable`` in the middle of ``fit`` does not take effect in
Keras 3 (3.15 measured): TensorFlow keeps running the traced step on the old
trainable set (a silent no-op), torch fails with ``Unknown variable`` in the
optimizer, and JAX fails inside its jitted step after purging the model's
variables (the weights are then unreadable). Calling ``compile()`` from a
callback fails on TensorFlow and torch.

What works on all three (and matches "fit, recompile, fit again" bit for bit):
an optimizer of the same class and settings, built on the new trainable set,
and a rebuilt train function. :func:`rebuild_optimizer` does that. The
per-backend parts are in the one table below:

- ``jax``: the trainer keeps the training state outside the variables during
  an epoch. It is synced back to the variables first (``jax_state_sync``),
  and marked synced afterwards so that ``fit`` gathers the new state (new
  trainable/non-trainable split, new optimizer variables) before its next
  step.
- ``tensorflow``: the optimizer is created and built inside the model's
  ``tf.distribute`` strategy scope (its variables must be mirrored like the
  model's).
- ``torch``: nothing extra (the step reads ``model.trainable_weights`` each
  call; the optimizer is what needs rebuilding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import keras
import numpy as np

__all__ = ["clone_optimizer", "rebuild_optimizer"]

KEEP = object()  # sentinel: keep the optimizer's learning rate


def _jax_sync(model) -> None:
    if getattr(model, "_jax_state", None) is not None and not getattr(
        model, "_jax_state_synced", True
    ):
        model.jax_state_sync()


def _jax_after(model) -> None:
    # `fit` re-gathers its state from the variables at the next step when the
    # state is marked synced (as after a callback's own sync).
    model._jax_state_synced = True
    model._jax_state = None


def _tf_scope(model):
    return model.distribute_strategy.scope()


def _nothing(model) -> None:
    return None


def _no_scope(model):
    return contextlib.nullcontext()


# backend -> (sync before, scope for creating the optimizer, after)
_DISPATCH: dict[str, tuple[Callable, Callable, Callable]] = {
    "jax": (_jax_sync, _no_scope, _jax_after),
    "tensorflow": (_nothing, _tf_scope, _nothing),
    "torch": (_nothing, _no_scope, _nothing),
}


def _ops(backend: str):
    if backend not in _DISPATCH:
        raise ValueError(
            f"Unsupported Keras backend {backend!r}. Expected one of {sorted(_DISPATCH)}."
        )
    return _DISPATCH[backend]


def clone_optimizer(optimizer, learning_rate=KEEP):
    """A new, unbuilt optimizer of the same class and settings.

    ``get_config()`` holds the current learning rate (the variable's value, or
    the schedule), clipping, weight decay, EMA, loss-scale settings...; only
    ``learning_rate`` is replaced when given. A ``LossScaleOptimizer`` (mixed
    precision) is cloned around a clone of its inner optimizer.

    Example:

    >>> import keras
    >>> sgd = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, global_clipnorm=2.0)
    >>> new = clone_optimizer(sgd, learning_rate=1e-3)
    >>> type(new).__name__, round(float(new.learning_rate), 6), new.momentum, new.global_clipnorm
    ('SGD', 0.001, 0.9, 2.0)

    Args:
        optimizer: a ``keras.optimizers.Optimizer``.
        learning_rate: a float, a ``LearningRateSchedule``, or omitted to keep
            the optimizer's own.

    Returns:
        A new optimizer (not built).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        config = optimizer.get_config()
        config.pop("inner_optimizer")
        inner = clone_optimizer(optimizer.inner_optimizer, learning_rate)
        return type(optimizer)(inner, **config)
    config = optimizer.get_config()
    if learning_rate is not KEEP and learning_rate is not None:
        if isinstance(learning_rate, (int, float, np.floating)) and not isinstance(
            learning_rate, bool
        ):
            learning_rate = float(learning_rate)
        config["learning_rate"] = learning_rate
    return type(optimizer).from_config(config)


def _counters(optimizer) -> set[int]:
    """Ids of the step counters and learning-rate variables (also of an inner optimizer)."""
    skip = set()
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if opt is None:
            continue
        skip.add(id(opt.iterations))
        skip.add(id(getattr(opt, "_iterations", None)))
        lr = getattr(opt, "_learning_rate", None)
        if isinstance(lr, keras.Variable):
            skip.add(id(lr))
    return skip


def _slot_values(optimizer) -> dict[str, np.ndarray]:
    """Optimizer variables by name, except the step counters and learning rates."""
    skip = _counters(optimizer)
    return {
        v.name: np.asarray(keras.ops.convert_to_numpy(v.value))
        for v in optimizer.variables
        if id(v) not in skip
    }


def rebuild_optimizer(
    model: keras.Model,
    *,
    learning_rate=KEEP,
    keep_state: bool = False,
):
    """Gives ``model`` a new optimizer built on its current trainable weights.

    Call it after changing ``trainable`` flags, from a callback's
    ``on_epoch_begin`` or between ``fit`` calls: it replaces
    ``model.optimizer`` by :func:`clone_optimizer` of it, builds it on
    ``model.trainable_variables``, and resets the model's train/test/predict
    functions so that the next step is traced anew. The result equals
    recompiling with the same optimizer settings, without touching the loss,
    metrics or ``jit_compile``.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"),
    ...                           keras.layers.Dense(1, name="b")])
    >>> model.layers[0].trainable = False
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    >>> _ = model.fit(np.ones((4, 3)), np.zeros((4, 1)), epochs=1, verbose=0)
    >>> model.layers[0].trainable = True
    >>> opt = rebuild_optimizer(model, learning_rate=0.01)
    >>> len([v for v in opt.variables if v.name.endswith("_momentum")])  # one per weight
    4
    >>> round(float(opt.learning_rate), 6), opt.momentum
    (0.01, 0.9)

    Args:
        model: a compiled ``keras.Model``.
        learning_rate: the new optimizer's learning rate (a float or a
            ``LearningRateSchedule``); omitted: the current one.
        keep_state: copy the slots (momentum, Adam moments, EMA...) of the
            weights that were already trainable into the new optimizer. The
            step counter restarts at 0 either way (as after ``compile``), so
            newly trainable weights get an Adam first step of about 1x the
            learning rate.

    Returns:
        The new optimizer (also ``model.optimizer``).

    Raises:
        ValueError: if the model is not compiled with an optimizer, or the
            backend is not torch, tensorflow or jax.
    """
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise ValueError(
            "Invalid value for argument `model`. Expected a model compiled with an "
            f"optimizer. Received: model={getattr(model, 'name', model)!r}"
        )
    sync, scope, after = _ops(keras.backend.backend())
    sync(model)
    old = model.optimizer
    slots = _slot_values(old) if keep_state and old.built else {}
    with scope(model):
        new = clone_optimizer(old, learning_rate)
        new.build(model.trainable_variables)
    if slots:
        skip = _counters(new)
        for v in new.variables:
            value = slots.get(v.name)
            if value is not None and tuple(value.shape) == tuple(v.shape) and id(v) not in skip:
                v.assign(value)
    model.optimizer = new
    compile_config = getattr(model, "_compile_config", None)
    if compile_config is not None and hasattr(compile_config, "config"):
        compile_config.config["optimizer"] = new  # what model.save() records
    model._compiled_trainable_state = {
        layer: layer.trainable for layer in model._flatten_layers()
    }
    model.train_function = None
    model.test_function = None
    model.predict_function = None
    model.make_train_function(force=True)
    after(model)
    return new
