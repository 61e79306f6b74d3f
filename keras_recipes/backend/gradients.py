"""Gradients of a compiled model's loss outside ``fit``, on every backend.

The computation is *stateless*: it runs ``model.stateless_call`` and
``model.stateless_compute_loss`` on copies of the variable values, so batch-norm
moving statistics, seed-generator states, metric states and
``optimizer.iterations`` are exactly as they were before the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_recipes.backend.dispatch import for_backend
from keras_recipes.backend.random_state import get_random_state, set_random_state

__all__ = ["loss_and_gradients"]


def _forward_loss(model, trainable_values, non_trainable_values, x, y, sample_weight, training):
    kwargs = {"training": training} if model._call_has_training_arg else {}
    y_pred, _, losses = model.stateless_call(
        trainable_values, non_trainable_values, x, return_losses=True, **kwargs
    )
    if losses:
        model._losses_override.clear()
        model._losses_override = losses
    try:
        loss, _ = model.stateless_compute_loss(
            trainable_values,
            non_trainable_values,
            [v.value for v in model.metrics_variables],
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )
    finally:
        if losses:
            model._losses_override.clear()
    return loss


def _split(model, variables):
    """Returns (positions in model.trainable_variables, values) for `variables`."""
    trainable = list(model.trainable_variables)
    if variables is None:
        return list(range(len(trainable)))
    ids = {id(v): i for i, v in enumerate(trainable)}
    out = []
    for v in variables:
        if id(v) not in ids:
            raise ValueError(
                "Invalid value for argument `variables`. Expected trainable variables of "
                f"the model. Received: a variable with path {getattr(v, 'path', v)!r}"
            )
        out.append(ids[id(v)])
    return out


def _replace(values, positions, selected):
    full = list(values)
    for p, val in zip(positions, selected, strict=True):
        full[p] = val
    return full


def _jax(model, positions, training):
    """``(tv, ntv, x, y, sw) -> (loss, grads)`` with ``jax.value_and_grad``."""
    import jax

    def compute(tv, ntv, x, y, sample_weight):
        def f(selected):
            full = _replace(tv, positions, selected)
            return _forward_loss(model, full, ntv, x, y, sample_weight, training)

        return jax.value_and_grad(f)([tv[p] for p in positions])

    return compute


def _torch(model, positions, training):
    """``(tv, ntv, x, y, sw) -> (loss, grads)`` with autograd (run eagerly)."""
    import torch

    def compute(tv, ntv, x, y, sample_weight):
        tv = [t.detach() for t in tv]
        ntv = [t.detach().clone() for t in ntv]
        leaves = [tv[p].clone().requires_grad_(True) for p in positions]
        full = _replace(tv, positions, leaves)
        with torch.enable_grad():
            loss = _forward_loss(model, full, ntv, x, y, sample_weight, training)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        grads = [
            torch.zeros_like(leaf) if g is None else g
            for g, leaf in zip(grads, leaves, strict=True)
        ]
        return loss.detach(), grads

    return compute


def _tensorflow(model, positions, training):
    """``(tv, ntv, x, y, sw) -> (loss, grads)`` with a ``GradientTape``."""
    import tensorflow as tf

    def compute(tv, ntv, x, y, sample_weight):
        tv = [tf.identity(t) for t in tv]
        ntv = [tf.identity(t) for t in ntv]
        with tf.GradientTape() as tape:
            for p in positions:
                tape.watch(tv[p])
            loss = _forward_loss(model, tv, ntv, x, y, sample_weight, training)
        grads = tape.gradient(loss, [tv[p] for p in positions])
        grads = [
            tf.zeros_like(tv[p]) if g is None else g
            for g, p in zip(grads, positions, strict=True)
        ]
        return loss, grads

    return compute


def _jax_jit(fn: Callable) -> Callable:
    import jax

    return jax.jit(fn)


def _tf_function(fn: Callable) -> Callable:
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True, autograph=False)


# Per backend: the computation's factory, and the compiler that makes it one program (None:
# run eagerly).
_DISPATCH: dict[str, tuple[Callable, Callable | None]] = {
    "jax": (_jax, _jax_jit),
    "torch": (_torch, None),
    "tensorflow": (_tensorflow, _tf_function),
}


def loss_and_gradients(
    model: keras.Model,
    x,
    y,
    *,
    sample_weight=None,
    training: bool = False,
    variables: Sequence | None = None,
    jit_compile: bool = True,
) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients of a compiled model on one batch, with no side effects.

    The loss is the model's compiled loss plus its regularization losses, as
    ``fit`` minimizes it (without loss scaling). Nothing in the model changes:
    batch-norm statistics, dropout seed states, metrics and the optimizer are
    left untouched, even with ``training=True``, and so are the global random
    generators (torch's, which Keras's torch Dropout without a seed draws from,
    NumPy's and Python's): a training run draws the same numbers with or without it.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(loss="mse")
    >>> _ = model.layers[0].kernel.assign(np.ones((3, 1)))
    >>> x, y = np.ones((2, 3), "float32"), np.zeros((2, 1), "float32")
    >>> loss, (g,) = loss_and_gradients(model, x, y)
    >>> float(loss), g.ravel().tolist()  # loss = 3², dL/dW = 2·3·x
    (9.0, [6.0, 6.0, 6.0])

    Args:
        model: a built, compiled ``keras.Model``.
        x: inputs of one batch (NumPy or backend tensors, or a structure of them).
        y: targets of that batch.
        sample_weight: optional per-sample weights.
        training: run the forward pass in training mode (dropout active, batch
            norm on batch statistics). Still no state is updated.
        variables: a subset of ``model.trainable_variables`` to differentiate
            with respect to (default: all of them, in that order).
        jit_compile: on JAX (``jax.jit``) and TensorFlow (``tf.function``),
            compile the computation once per model, variable set, ``training``
            and input signature, and reuse it: the first call pays the tracing,
            later calls run in milliseconds instead of op by op (a 21-layer MLP:
            see ``benchmarks/bench_loss_and_gradients.py``). ``False`` runs
            eagerly every time. PyTorch always runs eagerly.

    Returns:
        ``(loss, grads)``: the loss as a Python float and a list of NumPy arrays,
        one per variable, in the order of ``variables``.

    Raises:
        ValueError: if the model is not compiled or a variable is not trainable.
    """
    if not getattr(model, "compiled", False):
        raise ValueError(
            "Invalid value for argument `model`. Expected a compiled model (call "
            f"`model.compile(loss=...)` first). Received: model={model.name!r} (not compiled)"
        )
    if not isinstance(jit_compile, bool):
        raise ValueError(
            "Invalid value for argument `jit_compile`. Expected True or False. "
            f"Received: jit_compile={jit_compile!r}"
        )
    positions = _split(model, variables)
    x = keras.tree.map_structure(lambda t: keras.ops.convert_to_tensor(t), x)
    y = keras.tree.map_structure(lambda t: keras.ops.convert_to_tensor(t), y)
    if sample_weight is not None:
        sample_weight = keras.ops.convert_to_tensor(sample_weight)
    compute = _computation(model, positions, bool(training), jit_compile)
    # Layers without a seed may draw from the framework's global generator (torch's
    # Dropout): put it back, so that training draws what it would have drawn.
    random_state = get_random_state()
    try:
        loss, grads = compute(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            x,
            y,
            sample_weight,
        )
    finally:
        set_random_state(random_state)
    return float(keras.ops.convert_to_numpy(loss)), [
        np.asarray(keras.ops.convert_to_numpy(g)) for g in grads
    ]


# Compiled computations live on the model object (written to its __dict__, so
# Keras's attribute tracking does not see them) and die with it.
_CACHE_ATTR = "_keras_recipes_gradient_fns"


def _computation(model, positions, training, jit_compile):
    """The (cached, when compiled) ``(tv, ntv, x, y, sw) -> (loss, grads)`` of `model`."""
    make, compiler = for_backend(_DISPATCH)
    if not jit_compile or compiler is None:
        return make(model, positions, training)
    # A traced computation bakes in which variables are trainable, the compiled
    # loss and `training`: any change of those makes a new entry. Shapes and
    # dtypes of the inputs are handled by the compiler's own retracing.
    key = (
        keras.backend.backend(),
        tuple(id(v) for v in model.trainable_variables),
        tuple(id(v) for v in model.non_trainable_variables),
        tuple(positions),
        training,
        id(getattr(model, "_compile_loss", None)),
    )
    cache = model.__dict__.setdefault(_CACHE_ATTR, {})
    if key not in cache:
        cache[key] = compiler(make(model, positions, training))
    return cache[key]
