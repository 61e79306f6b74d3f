"""The gradient of a scalar function with respect to an input tensor, on every backend.

Virtual adversarial training (``keras_recipes.regularizers.virtual_adversarial_perturbation``)
needs ``∇_r KL(p(y|x) ‖ p(y|x + r))`` inside a training step that is itself being
differentiated: ``jax.grad`` nested in the step's ``jax.value_and_grad``, a
``tf.GradientTape`` nested in the step's tape (also under ``tf.function`` and XLA),
``torch.autograd.grad`` beside the step's ``loss.backward()``. The result is a
constant: no gradient flows back through it, and torch's ``.grad`` fields are not
touched (``autograd.grad`` does not accumulate).
"""

from __future__ import annotations

from collections.abc import Callable

from keras_recipes.backend.dispatch import for_backend

__all__ = ["input_gradient"]


def _jax(fn, r):
    import jax

    return jax.lax.stop_gradient(jax.grad(fn)(jax.lax.stop_gradient(r)))


def _torch(fn, r):
    import torch

    leaf = r.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(leaf)
        (grad,) = torch.autograd.grad(value, [leaf], allow_unused=True)
    return torch.zeros_like(leaf) if grad is None else grad.detach()


def _tensorflow(fn, r):
    import tensorflow as tf

    r = tf.stop_gradient(r)
    with tf.GradientTape() as tape:
        tape.watch(r)
        value = fn(r)
    grad = tape.gradient(value, r)
    return tf.zeros_like(r) if grad is None else tf.stop_gradient(grad)


_DISPATCH: dict[str, Callable] = {
    "jax": _jax,
    "torch": _torch,
    "tensorflow": _tensorflow,
}


def input_gradient(fn: Callable, r):
    """``∇_r fn(r)`` for a scalar-valued ``fn``, as a constant tensor of ``r``'s shape.

    Works eagerly and inside a compiled training step (``jax.jit``,
    ``tf.function`` with or without XLA, torch), where the step's own gradient
    does not flow through the result.

    Example:

    >>> import keras, numpy as np
    >>> r = keras.ops.convert_to_tensor(np.array([[1.0, -2.0]], "float32"))
    >>> g = input_gradient(lambda t: keras.ops.sum(t * t), r)  # ∇ Σr² = 2r
    >>> keras.ops.convert_to_numpy(g).tolist()
    [[2.0, -4.0]]

    Args:
        fn: a function of one tensor returning a scalar tensor.
        r: the tensor to differentiate with respect to.

    Returns:
        The gradient, with ``r``'s shape (zeros where ``fn`` does not depend on ``r``).
    """
    return for_backend(_DISPATCH)(fn, r)
