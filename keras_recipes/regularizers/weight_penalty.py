"""`WeightPenalty`: the L1/L2 penalty that `add_weight_penalty` attaches to weights."""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["WeightPenalty"]


def _check_factor(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float >= 0. "
            f"Received: {name}={value!r}"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float >= 0. "
            f"Received: {name}={value!r}"
        )
    return value


@keras.saving.register_keras_serializable(package="keras_recipes")
class WeightPenalty(keras.regularizers.Regularizer):
    """L1 and/or L2 weight penalty, `Ω(W) = l1·Σ|W| + l2·ΣW²`.

    The same penalty as Keras's `L1L2`, as its own registered class so that
    `remove_weight_penalty` can tell the penalties it added from regularizers a
    layer was built with, and so that a layer config carrying it reloads in any
    process that imported `keras_recipes`. The gradient of the L2 part is
    `2·l2·W` (course §4: `Ω = λ Σ ||W||_F²`), so with plain SGD at learning rate
    `η` each step shrinks the weight by an extra `2·η·l2·W` ("weight decay").

    Example:

    >>> import numpy as np
    >>> penalty = WeightPenalty(l1=0.5, l2=0.1)
    >>> w = np.array([[1.0, -2.0], [3.0, 0.0]], "float32")
    >>> round(float(penalty(w)), 4)  # 0.5 * 6 + 0.1 * 14
    4.4

    Args:
        l1: factor of the L1 term `Σ|W|` (float >= 0).
        l2: factor of the L2 term `ΣW²` (float >= 0).

    Call arguments:
        x: the weight tensor.

    Returns:
        A scalar tensor of `x`'s dtype.

    Raises:
        ValueError: if `l1` or `l2` is negative, not finite or not a number.

    References:
        - Goodfellow, Bengio, Courville, *Deep Learning*, §7.1 (2016).
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = _check_factor(l1, "l1")
        self.l2 = _check_factor(l2, "l2")

    def __call__(self, x):
        x = ops.convert_to_tensor(x)
        penalty = ops.convert_to_tensor(0.0, dtype=x.dtype)
        if self.l1:
            penalty = penalty + ops.cast(self.l1, x.dtype) * ops.sum(ops.absolute(x))
        if self.l2:
            penalty = penalty + ops.cast(self.l2, x.dtype) * ops.sum(ops.square(x))
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self) -> str:
        return f"WeightPenalty(l1={self.l1}, l2={self.l2})"
