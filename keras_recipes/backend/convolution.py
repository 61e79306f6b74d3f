"""Fast small-image convolutions on JAX's CPU backend.

XLA's CPU convolution is pathologically slow when the image is tiny: a 3x3
convolution of a (10, 2, 2, 512) batch with 512 filters runs about 25 times
slower under ``jax.jit`` than in PyTorch, and VGG19 on 32x32 images has four
such layers in its last block (there the feature map is 2x2), which dominate its
training step. The same convolution written as im2col (the ``kh·kw`` shifted
slices of the padded input, concatenated) and one matrix product is about as
fast as PyTorch's, and faster at other tiny sizes too (timings with their date
and hardware: ``benchmarks/results/jax_cpu_compilation.md``).

:func:`fast_small_convolutions` routes the ``Conv2D`` layers of a model whose
output has at most `max_positions` pixels through that formulation, on JAX
only. The layers keep their class, weights and config (a saved model reloads
as plain ``Conv2D``); the result equals XLA's convolution up to float rounding
(the sum is taken in another order).
"""

from __future__ import annotations

import keras

__all__ = ["fast_small_convolutions"]

_ATTR = "_keras_recipes_small_conv"


def _im2col_conv(x, kernel, padding: str):
    """``conv(x, kernel)`` for NHWC `x`, HWIO `kernel`, stride 1, no dilation, one group."""
    import jax.numpy as jnp

    kh, kw, cin, cout = kernel.shape
    if padding == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2  # XLA's SAME split for stride 1
        x = jnp.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    n, height, width = x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1
    cols = jnp.concatenate(
        [x[:, i:i + height, j:j + width, :] for i in range(kh) for j in range(kw)], axis=-1)
    out = jnp.reshape(cols, (-1, kh * kw * cin)) @ jnp.reshape(kernel, (kh * kw * cin, cout))
    return jnp.reshape(out, (n, height, width, cout))


def _eligible(layer) -> bool:
    return (
        type(layer) is keras.layers.Conv2D  # not a subclass with its own convolution
        and layer.data_format == "channels_last"
        and tuple(layer.strides) == (1, 1)
        and tuple(layer.dilation_rate) == (1, 1)
        and getattr(layer, "groups", 1) == 1
        and layer.padding in ("same", "valid")
    )


def fast_small_convolutions(model: keras.Model, max_positions: int = 16) -> int:
    """On JAX, compute small-output ``Conv2D`` layers of `model` as im2col + matmul.

    A layer is routed when it is a plain ``Conv2D`` (channels_last, stride 1,
    no dilation, one group, ``"same"`` or ``"valid"`` padding) and, at call
    time, its output has at most `max_positions` pixels (``H·W``, static
    shapes); anything else calls Keras's own convolution. Nested models are
    searched too. On torch and TensorFlow nothing changes and 0 is returned.
    Call it before the model is trained or predicts: a compiled ``fit`` or
    ``predict`` function keeps the computation it traced.

    Example:

    >>> import keras, numpy as np
    >>> conv = keras.layers.Conv2D(4, 3, padding="same")
    >>> model = keras.Sequential([keras.Input((2, 2, 8)), conv])
    >>> routed = fast_small_convolutions(model)
    >>> routed == (1 if keras.backend.backend() == "jax" else 0)
    True
    >>> model.predict(np.ones((1, 2, 2, 8)), verbose=0).shape
    (1, 2, 2, 4)

    Args:
        model: a ``keras.Model`` (or layer) whose ``Conv2D`` layers to route.
        max_positions: the largest output ``H·W`` computed as im2col; above it
            XLA's convolution is used (it is the faster one on larger images).

    Returns:
        The number of ``Conv2D`` layers routed (0 on torch and TensorFlow).

    Raises:
        ValueError: if `max_positions` is not a positive integer.
    """
    if isinstance(max_positions, bool) or not isinstance(max_positions, int) or max_positions < 1:
        raise ValueError(
            "Invalid value for argument `max_positions`. Expected a positive integer. "
            f"Received: max_positions={max_positions!r}"
        )
    if keras.backend.backend() != "jax":
        return 0
    count = 0
    for layer in _layers(model):
        if not _eligible(layer):
            continue
        original = getattr(layer, _ATTR, None) or layer.convolution_op
        layer.__dict__[_ATTR] = original
        layer.__dict__["convolution_op"] = _routed(layer, original, max_positions)
        count += 1
    return count


def _routed(layer, original, max_positions: int):
    def convolution_op(inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if layer.padding == "valid" and height is not None and width is not None:
            height, width = height - kernel.shape[0] + 1, width - kernel.shape[1] + 1
        if height is None or width is None or height * width > max_positions:
            return original(inputs, kernel)
        return _im2col_conv(inputs, kernel, layer.padding)

    return convolution_op


def _layers(model):
    seen = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])
