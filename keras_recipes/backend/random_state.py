"""The process-wide random states that a model's seed generators do not hold.

Keras keeps each layer's randomness in a ``SeedGenerator`` whose state is a model
variable, except where it takes a backend's global generator: on torch, a Dropout
layer without a seed uses ``torch.nn.functional.dropout`` and so torch's global RNG.
Python's ``random`` and NumPy's global generator are process-wide too. Saving and
restoring these three (and torch's CUDA generators) with a checkpoint makes a resumed
run draw what an uninterrupted one draws. This module is the one place that branches
on the backend for it.
"""

from __future__ import annotations

import random

import keras
import numpy as np

__all__ = ["get_random_state", "set_random_state"]


def _torch_get() -> dict[str, np.ndarray]:
    import torch

    state = {"torch_cpu": torch.get_rng_state().numpy().copy()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"torch_cuda{i}"] = s.numpy().copy()
    return state


def _torch_set(state: dict[str, np.ndarray]) -> None:
    import torch

    if "torch_cpu" in state:
        torch.set_rng_state(torch.from_numpy(np.asarray(state["torch_cpu"], dtype=np.uint8)))
    cuda = sorted(k for k in state if k.startswith("torch_cuda"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(
            [torch.from_numpy(np.asarray(state[k], dtype=np.uint8)) for k in cuda])


# Backends whose layers can draw from a global generator of the framework.
_BACKEND = {"torch": (_torch_get, _torch_set)}


def get_random_state() -> dict[str, np.ndarray]:
    """The global random states as ``{name: uint/int array}`` (copies).

    Example:

    >>> import random
    >>> state = get_random_state()
    >>> before = random.random(), float(np.random.rand())
    >>> set_random_state(state)
    >>> (random.random(), float(np.random.rand())) == before
    True

    Returns:
        ``python`` and ``numpy`` (Mersenne-Twister states as int64 arrays), plus the
        backend's own (``torch_cpu``, ``torch_cuda<i>``) where it has one.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": np.asarray([version, *internal, -1 if gauss is None else 0], dtype=np.int64),
        "python_gauss": np.asarray([0.0 if gauss is None else gauss], dtype=np.float64),
        "numpy": np.asarray([*keys, pos, has_gauss], dtype=np.int64),
        "numpy_gauss": np.asarray([cached], dtype=np.float64),
    }
    get = _BACKEND.get(keras.backend.backend())
    if get is not None:
        state.update(get[0]())
    return state


def set_random_state(state: dict[str, np.ndarray]) -> None:
    """Restores what :func:`get_random_state` returned (missing entries are left alone)."""
    if "python" in state:
        values = [int(v) for v in state["python"]]
        gauss = None if values[-1] == -1 else float(state["python_gauss"][0])
        random.setstate((values[0], tuple(values[1:-1]), gauss))
    if "numpy" in state:
        values = np.asarray(state["numpy"], dtype=np.int64)
        np.random.set_state(("MT19937", values[:-2].astype(np.uint32), int(values[-2]),
                             int(values[-1]), float(state["numpy_gauss"][0])))
    backend = _BACKEND.get(keras.backend.backend())
    if backend is not None:
        backend[1](state)
