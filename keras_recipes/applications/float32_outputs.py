"""float32 outputs for a mixed-precision model: softmax and loss in full precision."""

from __future__ import annotations

import keras

__all__ = ["with_float32_outputs"]


def with_float32_outputs(model: keras.Model) -> keras.Model:
    """The model with a float32 ``linear`` activation after its output, when it computes in less.

    Under a ``mixed_float16`` / ``mixed_bfloat16`` policy the last layer's outputs are
    half precision; Keras's mixed-precision guide makes the logits float32 so that the
    softmax and the loss are computed in full precision. A float32 model is returned
    unchanged.

    Example:

    >>> import keras
    >>> keras.config.set_dtype_policy("mixed_bfloat16")
    >>> inputs = keras.Input((4,))
    >>> net = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    >>> net.output.dtype, with_float32_outputs(net).output.dtype
    ('bfloat16', 'float32')
    >>> keras.config.set_dtype_policy("float32")

    Args:
        model: a functional or sequential ``keras.Model`` with one output.

    Returns:
        A ``keras.Model`` with the same inputs and name, float32 outputs.
    """
    if keras.backend.standardize_dtype(model.output.dtype) == "float32":
        return model
    out = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(model.output)
    return keras.Model(model.input, out, name=model.name)
