"""Per-backend support for the random batch-augmentation layers (MixUp, CutMix).

The layers themselves compute with ``keras.ops`` on uniforms drawn from a
``keras.random.SeedGenerator``. Three things cannot be said portably with the
public Keras API, so they are dispatched here, on the Keras backend:

- ``compile_kernel(fn)``: the pure mixing kernel is wrapped in ``jax.jit`` on
  JAX (an eager JAX call otherwise runs, and compiles, op by op) and in
  ``tf.function`` on TensorFlow (eager dispatch of its ~100 small ops costs
  ~40 ms a call); on torch it runs as is. ``kernel_ops()``: ``keras.ops`` plus
  ``blend(x, partner, w) = x + w·(partner - x)``, the one full-size step with
  a faster form on a backend: ``torch.lerp`` on torch (one pass over the
  batch instead of three), the plain formula elsewhere (XLA fuses it).
- ``compile_seeded_kernel(fn, n)`` / ``fuses_draw(x, state)``: on JAX, an
  eager call on concrete arrays runs the uniform draw (from the layer's seed
  state, as ``keras.random.uniform(seed=generator)`` does), the kernel and the
  seed update as ONE cached ``jax.jit`` function, instead of dispatching the
  ~6 ops of ``SeedGenerator.next`` and ``keras.random.uniform`` one by one
  around the jitted kernel (~2-5 ms CPU a call, 10% of a 128x224x224x3
  MixUp). Under an outer trace (``jax.jit``, the train step) the traced path
  is kept. TensorFlow and torch draw as before (no such dispatch cost there).
- ``uniform(shape, generator)``: ``keras.random.uniform(shape, seed=generator)``
  except on TensorFlow, where the draw names the Philox generator
  explicitly: that is what TF's default ``alg="auto_select"`` picks when run
  op by op on CPU (the same stream), but under XLA (``jit_compile=True``,
  the compiled train step) ``auto_select`` takes a generator that costs
  ~4.5 ms CPU for 128x57 uniforms against ~0.5 ms for Philox. The two raw ops
  are called directly: naming the algorithm in ``tf.random.stateless_uniform``
  costs ~5 ms of Python per eager call.
- ``seed_is_frozen(x, state)``: True when a layer is traced by ``jax.jit``
  while its seed state is not threaded through the trace (the state would be
  baked in as a constant: the same "random" draw on every call).
- ``in_foreign_tf_graph(x)`` / ``tf_graph_ops()`` / ``TFGraphRandom``: inside a
  ``tf.data`` pipeline under the torch or JAX backend, inputs are TensorFlow
  graph tensors that ``keras.ops`` cannot take. The layers then run the same
  kernel on ``tf_graph_ops()``, a namespace with the ``keras.ops`` signatures
  they use, implemented with TensorFlow, and draw uniforms from a TensorFlow
  stateless generator.
"""

from __future__ import annotations

import random as _python_random
import sys
from collections.abc import Callable
from types import SimpleNamespace

import keras

__all__ = [
    "TFGraphRandom",
    "compile_kernel",
    "compile_seeded_kernel",
    "fuses_draw",
    "kernel_ops",
    "in_foreign_tf_graph",
    "seed_is_frozen",
    "tf_graph_ops",
    "uniform",
]


# --------------------------------------------------------------------------
# compile_kernel


def _jax_jit(fn: Callable) -> Callable:
    import jax

    return jax.jit(fn)


def _tf_function(fn: Callable) -> Callable:
    import tensorflow as tf

    # One trace per input signature: the kernel needs static image sizes.
    return tf.function(fn, autograph=False)


def _identity(fn: Callable) -> Callable:
    return fn


_COMPILE: dict[str, Callable[[Callable], Callable]] = {
    "jax": _jax_jit,
    # A graph: ~1 ms per eager call instead of ~40 ms of op-by-op dispatch; inlined
    # when called from tf.data, a train step or tf.function(jit_compile=True).
    "tensorflow": _tf_function,
    "torch": _identity,
}


def compile_kernel(fn: Callable) -> Callable:
    """Returns `fn` compiled for the current backend where that pays (JAX, TensorFlow)."""
    return _COMPILE.get(keras.backend.backend(), _identity)(fn)


# --------------------------------------------------------------------------
# compile_seeded_kernel / fuses_draw: draw + kernel + seed update in one call


def _jax_seeded(fn: Callable, n_uniforms: int) -> Callable:
    import jax
    import jax.numpy as jnp

    def run(seed, images, *args):
        # The same stream as an eager `keras.random.uniform(seed=generator)`: the
        # draw uses the current state, which then advances by [0, 1]
        # (`SeedGenerator.next`).
        u = keras.random.uniform((images.shape[0], n_uniforms), dtype="float32", seed=seed)
        return fn(images, *args, u), seed + jnp.asarray([0, 1], seed.dtype)

    return jax.jit(run)


_SEEDED: dict[str, Callable[[Callable, int], Callable]] = {"jax": _jax_seeded}


def compile_seeded_kernel(fn: Callable, n_uniforms: int) -> Callable | None:
    """``run(seed, images, *args) -> (fn(images, *args, u), next_seed)`` compiled, or None.

    ``u`` is ``keras.random.uniform((batch, n_uniforms), seed=seed)``: the draw of
    a ``SeedGenerator`` whose state is ``seed``, and ``next_seed`` its next state.
    Only on JAX (one ``jax.jit`` call instead of eager dispatch of the draw); None
    elsewhere, where the caller draws and calls the kernel itself.
    """
    make = _SEEDED.get(keras.backend.backend())
    return None if make is None else make(fn, n_uniforms)


def _jax_fuses_draw(x, state) -> bool:
    import jax

    return not isinstance(x, jax.core.Tracer) and not isinstance(state, jax.core.Tracer)


_FUSES: dict[str, Callable] = {"jax": _jax_fuses_draw}


def fuses_draw(x, state) -> bool:
    """True when an eager call should use ``compile_seeded_kernel`` (concrete JAX arrays)."""
    check = _FUSES.get(keras.backend.backend())
    return check is not None and check(x, state)


# --------------------------------------------------------------------------
# kernel_ops: keras.ops plus the blend, in its fastest form per backend


def _lerp(x, partner, weight):
    import torch

    return torch.lerp(x, partner, weight)  # one pass instead of three


def _blend(x, partner, weight):
    return x + weight * (partner - x)  # fused by XLA on JAX


_BLEND: dict[str, Callable] = {"torch": _lerp, "jax": _blend, "tensorflow": _blend}


class _KernelOps:
    """``keras.ops``, plus ``blend(x, partner, w)``: ``x + w·(partner - x)``,
    bit-exact ``x`` where ``w = 0`` (an unmixed sample stays as it was)."""

    def __getattr__(self, name):
        return getattr(keras.ops, name)

    @staticmethod
    def blend(x, partner, weight):
        return _BLEND.get(keras.backend.backend(), _blend)(x, partner, weight)


KERNEL_OPS = _KernelOps()


def _scalar(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class _TorchKernelOps(_KernelOps):
    """The kernel's ``keras.ops`` on torch tensors, called on ``torch`` directly.

    An eager torch kernel makes about a hundred small calls; through
    ``keras.ops`` each converts and checks its arguments again (~70
    ``convert_to_tensor`` calls per MixUp call), which costs more than the
    arithmetic at training-batch sizes. Here each op the kernel uses calls its
    ``torch`` function, with the same results and dtypes as ``keras.ops`` for
    the arguments the kernel passes (torch tensors, Python numbers); anything
    else (NumPy arrays, a float16 ``clip`` on the CPU, ops not listed) goes
    through ``keras.ops`` unchanged.
    """

    def __init__(self):
        import torch
        from keras.src.backend.torch.core import to_torch_dtype

        self._torch = torch
        self._tensor = torch.Tensor
        self._dtype = to_torch_dtype

    def convert_to_tensor(self, x, dtype=None):
        if isinstance(x, self._tensor):
            if dtype is None:
                return x
            d = self._dtype(dtype)
            return x if x.dtype == d else x.to(d)
        return keras.ops.convert_to_tensor(x, dtype)

    def cast(self, x, dtype):
        if isinstance(x, self._tensor):
            d = self._dtype(dtype)
            return x if x.dtype == d else x.to(d)
        return keras.ops.cast(x, dtype)

    def _unary(name):  # noqa: N805  (a helper building methods)
        def op(self, x):
            if isinstance(x, self._tensor) and x.is_floating_point():
                return getattr(self._torch, name)(x)
            return getattr(keras.ops, name)(x)

        op.__name__ = name
        return op

    sqrt, log, exp = _unary("sqrt"), _unary("log"), _unary("exp")
    cos, sin, sigmoid, floor = _unary("cos"), _unary("sin"), _unary("sigmoid"), _unary("floor")
    round = _unary("round")

    def _binary(torch_name, keras_name):  # noqa: N805
        def op(self, x1, x2):
            t = self._tensor
            if isinstance(x1, t) and (isinstance(x2, t) or _scalar(x2)):
                return getattr(self._torch, torch_name)(x1, x2)
            return getattr(keras.ops, keras_name)(x1, x2)

        op.__name__ = keras_name
        return op

    less, greater = _binary("lt", "less"), _binary("gt", "greater")
    logical_and = _binary("logical_and", "logical_and")

    def logical_not(self, x):
        if isinstance(x, self._tensor):
            return self._torch.logical_not(x)
        return keras.ops.logical_not(x)

    def _extreme(tensor_fn, clamp_kw, keras_name):  # noqa: N805
        def op(self, x1, x2):
            t = self._tensor
            if isinstance(x1, t) and x1.is_floating_point():
                if _scalar(x2):  # keras.ops converts the number to x1's float dtype
                    return self._torch.clamp(x1, **{clamp_kw: float(x2)})
                if isinstance(x2, t) and x2.dtype == x1.dtype:
                    return getattr(self._torch, tensor_fn)(x1, x2)
            return getattr(keras.ops, keras_name)(x1, x2)

        op.__name__ = keras_name
        return op

    maximum = _extreme("maximum", "min", "maximum")
    minimum = _extreme("minimum", "max", "minimum")

    def clip(self, x, x_min, x_max):
        t = self._tensor
        if (isinstance(x, t) and x.dtype == self._torch.float32
                and all(_scalar(b) or (isinstance(b, t) and b.dtype == x.dtype)
                        for b in (x_min, x_max))):
            return self._torch.clip(x, min=x_min, max=x_max)
        return keras.ops.clip(x, x_min, x_max)

    def where(self, condition, x1, x2):
        t = self._tensor
        if (isinstance(condition, t) and condition.dtype == self._torch.bool
                and isinstance(x1, t) and (isinstance(x2, t) or _scalar(x2))):
            if _scalar(x2) and not x1.is_floating_point():
                return keras.ops.where(condition, x1, x2)
            return self._torch.where(condition, x1, x2)
        return keras.ops.where(condition, x1, x2)

    def reshape(self, x, newshape):
        if isinstance(x, self._tensor):
            return self._torch.reshape(x, tuple(newshape))
        return keras.ops.reshape(x, newshape)

    def expand_dims(self, x, axis):
        if isinstance(x, self._tensor) and isinstance(axis, int):
            return self._torch.unsqueeze(x, axis)
        return keras.ops.expand_dims(x, axis)

    def concatenate(self, xs, axis=0):
        xs = list(xs)
        if all(isinstance(x, self._tensor) for x in xs) and len({x.dtype for x in xs}) == 1:
            return self._torch.cat(xs, dim=axis)
        return keras.ops.concatenate(xs, axis=axis)

    def sum(self, x, axis=None, keepdims=False):
        if isinstance(x, self._tensor) and x.is_floating_point() and isinstance(axis, int):
            return self._torch.sum(x, dim=axis, keepdim=keepdims)
        return keras.ops.sum(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False, initial=None):
        if (isinstance(x, self._tensor) and x.is_floating_point() and isinstance(axis, int)
                and initial is None):
            return self._torch.amax(x, dim=axis, keepdim=keepdims)
        return keras.ops.max(x, axis=axis, keepdims=keepdims, initial=initial)

    def argmax(self, x, axis=None, keepdims=False):
        if isinstance(x, self._tensor) and x.is_floating_point():
            return self._torch.argmax(x, dim=axis, keepdim=keepdims).to(self._torch.int32)
        return keras.ops.argmax(x, axis=axis, keepdims=keepdims)

    def argsort(self, x, axis=-1):
        if isinstance(x, self._tensor) and x.is_floating_point() and axis is not None:
            return self._torch.argsort(x, dim=axis, stable=True).to(self._torch.int32)
        return keras.ops.argsort(x, axis=axis)

    def take(self, x, indices, axis=None):
        t = self._tensor
        if (isinstance(x, t) and isinstance(indices, t) and indices.ndim == 1
                and axis is not None and not indices.is_floating_point()):
            # Partner indices are in [0, batch): no negative index to wrap.
            return self._torch.index_select(x, axis, indices.long())
        return keras.ops.take(x, indices, axis=axis)

    del _unary, _binary, _extreme


_OPS_CLASSES: dict[str, type] = {"torch": _TorchKernelOps}  # elsewhere: KERNEL_OPS
_OPS: dict[str, _KernelOps] = {}


def kernel_ops():
    """The op namespace of the mixing kernel on the current backend."""
    backend = keras.backend.backend()
    if backend not in _OPS:
        make = _OPS_CLASSES.get(backend)
        _OPS[backend] = KERNEL_OPS if make is None else make()
    return _OPS[backend]


# --------------------------------------------------------------------------
# uniform: the layers' one random draw per call


def _keras_uniform(shape, generator):
    return keras.random.uniform(shape, dtype="float32", seed=generator)


def _tf_philox_uniform(shape, generator):
    import tensorflow as tf

    seed = generator.next()  # the state, advanced by [0, 1], as keras.random does
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)  # keras's int32 seed
    # The two ops `tf.random.stateless_uniform(..., alg="philox")` runs, called directly:
    # the same numbers, but eagerly ~0.4 ms instead of ~5.5 ms (its Python wrapper costs
    # the rest when the algorithm is named).
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    return tf.raw_ops.StatelessRandomUniformV2(
        shape=tf.convert_to_tensor(shape, tf.int32), key=key, counter=counter, alg=_PHILOX,
        dtype=tf.float32,
    )


_PHILOX = 1  # tf.random.Algorithm.PHILOX


_UNIFORM: dict[str, Callable] = {
    "tensorflow": _tf_philox_uniform,
    "jax": _keras_uniform,
    "torch": _keras_uniform,
}


def uniform(shape, generator: keras.random.SeedGenerator):
    """float32 uniforms in [0, 1) of `shape`, drawn from (and advancing) `generator`."""
    return _UNIFORM.get(keras.backend.backend(), _keras_uniform)(shape, generator)


# --------------------------------------------------------------------------
# seed_is_frozen


def _jax_seed_is_frozen(x, state) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer) and not isinstance(state, jax.core.Tracer)


def _never(x, state) -> bool:
    return False


_FROZEN: dict[str, Callable] = {
    "jax": _jax_seed_is_frozen,
    "torch": _never,
    "tensorflow": _never,
}


def seed_is_frozen(x, state) -> bool:
    """True if `x` is traced by a compiler while the seed `state` is a constant."""
    return _FROZEN.get(keras.backend.backend(), _never)(x, state)


# --------------------------------------------------------------------------
# tf.data under a non-TensorFlow backend


def in_foreign_tf_graph(x) -> bool:
    """True for a TensorFlow graph tensor (e.g. in ``tf.data``) under torch or JAX."""
    if keras.backend.backend() == "tensorflow":
        return False
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    return isinstance(x, tf.Tensor) and not tf.executing_eagerly()


_TF_OPS: SimpleNamespace | None = None


def _tf_shape(x):
    import tensorflow as tf

    static = x.shape.as_list()
    if all(d is not None for d in static):
        return tuple(static)
    dynamic = tf.shape(x)
    return tuple(d if d is not None else dynamic[i] for i, d in enumerate(static))


def _build_tf_ops() -> SimpleNamespace:
    import tensorflow as tf

    def _dtype(d):
        return tf.as_dtype(keras.backend.standardize_dtype(d))

    def cast(x, dtype):
        return tf.cast(x, _dtype(dtype))

    def convert_to_tensor(x, dtype=None):
        return tf.convert_to_tensor(x, dtype=None if dtype is None else _dtype(dtype))

    def take(x, indices, axis=None):
        return tf.gather(x, indices, axis=0 if axis is None else axis)

    def where(condition, x1, x2):
        return tf.where(condition, x1, x2)

    def clip(x, x_min, x_max):
        return tf.clip_by_value(x, tf.cast(x_min, x.dtype), tf.cast(x_max, x.dtype))

    def arange(start, stop=None, step=1, dtype="int32"):
        if stop is None:
            start, stop = 0, start
        return tf.range(start, stop, step, dtype=_dtype(dtype))

    def argmax(x, axis=None):
        return tf.cast(tf.argmax(x, axis=axis), tf.int32)

    def argsort(x, axis=-1):
        return tf.argsort(x, axis=axis, stable=True)

    def one_hot(x, num_classes, axis=-1, dtype="float32"):
        return tf.one_hot(tf.cast(x, tf.int32), num_classes, axis=axis, dtype=_dtype(dtype))

    def reduce_max(x, axis=None, keepdims=False):
        return tf.reduce_max(x, axis=axis, keepdims=keepdims)

    def reduce_sum(x, axis=None, keepdims=False):
        return tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    def concatenate(xs, axis=0):
        return tf.concat(list(xs), axis=axis)

    def squeeze(x, axis=None):
        return tf.squeeze(x, axis=axis)

    def blend(x, partner, weight):
        return x + weight * (partner - x)

    return SimpleNamespace(
        blend=blend,
        shape=_tf_shape,
        cast=cast,
        convert_to_tensor=convert_to_tensor,
        take=take,
        where=where,
        clip=clip,
        arange=arange,
        argmax=argmax,
        argsort=argsort,
        one_hot=one_hot,
        max=reduce_max,
        sum=reduce_sum,
        concatenate=concatenate,
        squeeze=squeeze,
        reshape=tf.reshape,
        expand_dims=tf.expand_dims,
        logical_and=tf.logical_and,
        logical_or=tf.logical_or,
        logical_not=tf.logical_not,
        less=tf.less,
        greater=tf.greater,
        maximum=tf.maximum,
        minimum=tf.minimum,
        floor=tf.floor,
        round=tf.round,
        sqrt=tf.sqrt,
        log=tf.math.log,
        exp=tf.exp,
        cos=tf.cos,
        sin=tf.sin,
        sigmoid=tf.sigmoid,
    )


def tf_graph_ops() -> SimpleNamespace:
    """The ``keras.ops`` subset used by the mixing kernels, implemented with TensorFlow."""
    global _TF_OPS
    if _TF_OPS is None:
        _TF_OPS = _build_tf_ops()
    return _TF_OPS


class TFGraphRandom:
    """Uniforms for a TensorFlow graph: a stateless generator with a counter.

    The ``[seed, counter]`` state is a ``tf.Variable`` created outside any
    graph (``tf.init_scope``) on first use, so ``ds.map(layer)`` gets fresh
    draws for every batch and the same stream for the same seed.

    Args:
        seed: an int, or None for a random seed.
    """

    def __init__(self, seed: int | None = None):
        self.seed = _python_random.randint(1, int(1e9)) if seed is None else int(seed)
        self._state = None

    def uniform(self, shape):
        import tensorflow as tf

        if self._state is None:
            with tf.init_scope():
                self._state = tf.Variable(
                    [self.seed % (2**31 - 1), 0], dtype=tf.int64, trainable=False,
                    name="mixing_seed_state",
                )
        seed = tf.cast(tf.math.floormod(self._state, 2**31 - 1), tf.int32)
        with tf.control_dependencies([seed]):
            self._state.assign_add(tf.constant([0, 1], tf.int64))
        return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
