"""The entry of a per-backend dispatch table for the current Keras backend."""

from __future__ import annotations

from typing import TypeVar

import keras

__all__ = ["for_backend"]

T = TypeVar("T")


def for_backend(table: dict[str, T]) -> T:
    """Returns ``table[keras.backend.backend()]``, or says which backends are supported.

    Example:

    >>> for_backend({"torch": 1, "tensorflow": 2, "jax": 3}) in (1, 2, 3)
    True

    Raises:
        ValueError: if the current backend has no entry in `table`.
    """
    backend = keras.backend.backend()
    if backend not in table:
        raise ValueError(
            f"Unsupported Keras backend {backend!r}. Expected one of {sorted(table)}."
        )
    return table[backend]
