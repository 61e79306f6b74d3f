"""Compile-time settings of the recipes: keeping XLA compilation cheap on a CPU.

Two things make a small model's training step compile for longer than it
trains under the JAX backend on a CPU, and both are per-backend matters, so
they are dispatched here through ``{"torch": ..., "tensorflow": ..., "jax": ...}``
tables:

- ``prefer_fast_compilation()``: JAX's default ``threefry`` random-bit layout
  (``jax_threefry_partitionable=True``, the default since JAX 0.5) lets XLA
  shard a draw across devices, and costs XLA's CPU compiler seconds of CPU per
  random draw of a 4-D shape (a dropout mask, a noise tensor) in a jitted
  function, some twenty times what the older layout costs (timings with their
  date and hardware: ``benchmarks/results/jax_cpu_compilation.md``). On one
  device the layout only changes which random numbers are drawn, not their
  distribution, so it is switched off on JAX. torch and
  TensorFlow have nothing to switch.
- ``allow_jit(layer)``: Keras marks ``RandomRotation`` and
  ``RandomTranslation`` (and a few other image layers) ``supports_jit=False``
  for every backend, because TensorFlow implements their transform with
  ``ImageProjectiveTransformV3``, an op without an XLA kernel; one such layer
  makes ``fit`` run a whole JAX model op by op, each op compiled on its own
  (hundreds of small XLA compilations for a small CNN). On JAX the transform is
  plain ``jax.numpy`` and ``map_coordinates``, traceable by ``jax.jit``, so
  there the layer is marked jittable; on TensorFlow and torch it stays as
  Keras marks it.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_recipes.backend.dispatch import for_backend

__all__ = ["allow_jit", "prefer_fast_compilation"]


_JAX_SETTINGS = {
    "jax_threefry_partitionable": False,
    # XLA's executables are kept (in a fresh temporary folder, removed at exit) and found
    # again by the hash of the program: a variant trained once per seed compiles once.
    "jax_compilation_cache_dir": None,  # set on use
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
}


def _jax_fast_compilation() -> Callable[[], None]:
    import atexit
    import shutil
    import tempfile

    import jax

    previous = {}
    for name, value in _JAX_SETTINGS.items():
        try:
            previous[name] = getattr(jax.config, name)
            if name == "jax_compilation_cache_dir":
                if previous[name]:  # the user's own cache: keep it
                    continue
                value = tempfile.mkdtemp(prefix="keras_recipes_xla_")
                atexit.register(shutil.rmtree, value, ignore_errors=True)
            jax.config.update(name, value)
        except (AttributeError, KeyError):  # a JAX without the option: nothing to do
            previous.pop(name, None)

    def restore() -> None:
        for name, value in previous.items():
            jax.config.update(name, value)

    return restore


def _nothing() -> None:
    return None


def _no_settings() -> Callable[[], None]:
    return _nothing


_FAST_COMPILATION: dict[str, Callable[[], Callable[[], None]]] = {
    "jax": _jax_fast_compilation,
    "tensorflow": _no_settings,
    "torch": _no_settings,
}


def prefer_fast_compilation() -> Callable[[], None]:
    """Switches the backend to the settings that compile a training step fastest on a CPU.

    On JAX: ``jax_threefry_partitionable=False`` (see the module docstring);
    random draws made afterwards differ from those of JAX's default layout
    (same distribution). On torch and TensorFlow: nothing. A recipe calls it
    once, at the start of a run, before any random draw
    (``keras_recipes.experiments.start_run`` does).

    Example:

    >>> restore = prefer_fast_compilation()
    >>> restore()  # the backend's previous settings again

    Returns:
        A function of no arguments that restores the previous settings.
    """
    return for_backend(_FAST_COMPILATION)()


def _mark_jittable(layer: keras.layers.Layer) -> None:
    stack = [layer]
    while stack:
        sublayer = stack.pop()
        sublayer.supports_jit = True
        stack.extend(getattr(sublayer, "layers", []))


def _keep(layer: keras.layers.Layer) -> None:
    return None


_ALLOW_JIT: dict[str, Callable[[keras.layers.Layer], None]] = {
    "jax": _mark_jittable,
    "tensorflow": _keep,
    "torch": _keep,
}


def allow_jit(layer: keras.layers.Layer) -> keras.layers.Layer:
    """Marks `layer` (and the layers it holds) jittable where the backend can trace it.

    For Keras's image augmentation layers that Keras marks
    ``supports_jit=False`` for TensorFlow's sake (``RandomRotation``,
    ``RandomTranslation``): on JAX they are traced by ``jax.jit`` like any
    other layer, so ``fit`` can compile the whole training step; on
    TensorFlow and torch the layer is returned unchanged.

    Example:

    >>> rotate = allow_jit(keras.layers.RandomRotation(0.1, seed=0))
    >>> rotate.supports_jit == (keras.backend.backend() == "jax")
    True

    Args:
        layer: a ``keras.layers.Layer`` (a ``keras.Sequential`` of layers included).

    Returns:
        `layer` itself.

    Raises:
        ValueError: if `layer` is not a ``keras.layers.Layer``.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            "Invalid value for argument `layer`. Expected a keras.layers.Layer. "
            f"Received: layer={layer!r}"
        )
    for_backend(_ALLOW_JIT)(layer)
    return layer
