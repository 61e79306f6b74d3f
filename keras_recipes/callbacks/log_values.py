"""One reading of a ``fit`` log value as a number, shared by the callbacks."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["log_scalar"]


def log_scalar(value) -> float | None:
    """A log value as a float, or None when it is not one number.

    Numbers, NumPy scalars, and arrays or tensors holding one element (``F1Score``
    logs shape (1,)) are numbers; strings, ``None`` and arrays of several elements
    are not. NaN and infinities are returned as they are.

    Example:

    >>> log_scalar(np.array([0.5])), log_scalar(2), log_scalar("x"), log_scalar([1, 2])
    (0.5, 2.0, None, None)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")
    except (TypeError, ValueError):
        return None
    return float(array.reshape(-1)[0]) if array.size == 1 else None
