"""Copy the gradients of real training steps out of ``fit``, on every backend.

Keras's train step on every backend ends in ``optimizer.apply(grads, ...)``
(jax reaches it through ``optimizer.stateless_apply`` inside the jitted step).
The object :func:`capture_gradients` returns replaces the ``apply`` of one optimizer *instance*
by a wrapper that, on the chosen steps only, copies the gradients it receives
and then calls the original ``apply`` unchanged. Nothing is added to the
model's or the optimizer's variables, no extra forward or backward pass runs,
and no random stream moves: the update is exactly the one ``fit`` would make.

Where the copy goes depends on the backend (the one dispatch table below):

- ``torch``: the step runs eagerly; the wrapper clones the gradient tensors
  (on their device) on a capture step. Under ``jit_compile=True`` the capture
  is excluded from compilation (``torch.compiler.disable``), which splits the
  compiled graph at the optimizer call.
- ``tensorflow``: the step is a ``tf.function`` (XLA or not); the wrapper adds
  a ``tf.cond`` that assigns the gradients to non-trainable ``tf.Variable``
  accumulators created outside the function (not tracked by the model or the
  optimizer). Under a multi-replica ``tf.distribute`` strategy each replica's
  ``apply`` receives its own partial, not yet all-reduced, gradients: there the
  wrapper goes on the optimizer's ``_all_reduce_sum_gradients`` instead and
  copies its output, the gradients summed over the replicas that the update
  applies (Keras scales each replica's loss by ``1/N``: the one-device scale).
  An optimizer that clips (``clipnorm``, ``clipvalue``, ``global_clipnorm``)
  is refused there with a ``ValueError``: Keras clips each replica's part
  before the sum, so no gradient of that run equals the one-device one
  (``keras_recipes.distribute`` sums first, and capture reads ``apply`` again).
- ``jax``: the step is pure (``stateless_apply``); variables outside its state
  cannot be written from inside it. The wrapper adds a ``jax.lax.cond`` whose
  true branch hands the gradients to the host with ``jax.debug.callback``;
  its ``fetch()`` waits for pending callbacks with
  ``jax.effects_barrier()``.

Whether a step is captured is decided inside the compiled step from the
optimizer's own ``iterations`` counter: the step that makes ``iterations``
equal to ``n`` is captured when ``(n - phase) % period == 0``. ``period`` and
``phase`` are baked into the trace, so the train function must be rebuilt
(``model.make_train_function(force=True)``) after ``install()`` and
``remove()``.

With a ``LossScaleOptimizer`` (mixed precision) the inner optimizer is wrapped,
so the captured gradients are unscaled and skipped steps are not captured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np

from keras_recipes.backend.dispatch import for_backend

__all__ = ["capture_gradients", "distribution_loss_scale"]


class _Capture:
    """Shared bookkeeping; subclasses implement `_make_apply` and `_read`."""

    #: The optimizer method the wrapper replaces (see `_make_hook`).
    hook = "apply"
    #: Whether a compiled step that holds the capture is slower on every step, not only
    #: on captured ones (jax: a host callback takes the step off the C++ dispatch path),
    #: so a plain step should run the others (``suspended`` traces one).
    slows_every_step = False
    #: Whether the capture decides in Python at each step (eager torch), so that its owner
    #: can leave the next captured step out with ``skip_next``.
    decides_in_python = False

    def __init__(self, optimizer, period: int, phase: int):
        self.optimizer = optimizer
        self.target = getattr(optimizer, "inner_optimizer", optimizer)
        self.period = int(period)
        self.phase = int(phase) % self.period
        self.variables: list = list(getattr(self.target, "_trainable_variables", []) or [])
        self._last_step = -1
        self._installed = False
        #: While True, a trace of the optimizer's step leaves the capture out (a plain step
        #: compiled beside the capturing one; see GradientHistogram on jax).
        self.suspended = False
        #: Called with the CPU seconds of each copy made on the host outside the step
        #: (jax's callback), e.g. ``MonitoringBudget.charge``; None: not measured.
        self.charge: Callable[[float], None] | None = None
        #: Set by the owner before a step: a captured step is not copied (honoured where
        #: ``decides_in_python``; the others decide inside the compiled step).
        self.skip_next = False

    def _variables_of(self, trainable_variables):
        if trainable_variables is None:
            return list(self.target._trainable_variables)
        return list(trainable_variables)

    def install(self) -> None:
        if self._installed:
            return
        hook = self.hook
        self._previous = vars(self.target).get(hook)  # another capture's wrapper, or None
        original = getattr(self.target, hook)
        inner = self._make_hook(original)
        active = self

        def wrapper(*args, **kwargs):
            if not active._installed or active.suspended:  # removed, or a plain trace
                return original(*args, **kwargs)
            return inner(*args, **kwargs)

        self._wrapper = wrapper
        # An instance attribute shadows the class method; remove() takes it away.
        object.__setattr__(self.target, hook, wrapper)
        self._installed = True

    def _make_hook(self, original: Callable) -> Callable:
        return self._make_apply(original)

    def remove(self) -> None:
        if not self._installed:
            return
        self._installed = False
        if vars(self.target).get(self.hook) is self._wrapper:
            if self._previous is None:
                object.__delattr__(self.target, self.hook)
            else:
                object.__setattr__(self.target, self.hook, self._previous)
        # Otherwise a later capture wrapped ours: ours now passes calls straight through.

    def captures(self, iterations: int) -> bool:
        """Whether the step that makes ``optimizer.iterations`` equal `iterations` is captured."""
        return (iterations - self.phase) % self.period == 0

    def fetch(self) -> tuple[int, list, list[np.ndarray]] | None:
        got = self._read()
        if got is None:
            return None
        step, variables, grads = got
        if step <= self._last_step:
            return None
        self._last_step = step
        return step, variables, grads


class _TorchCapture(_Capture):
    decides_in_python = True

    def __init__(self, optimizer, period, phase):
        super().__init__(optimizer, period, phase)
        self._count = int(keras.ops.convert_to_numpy(self.target.iterations.value))
        self._store = None

    def _store_copies(self, count: int, variables: list, grads: list) -> None:
        start = time.perf_counter()  # the training thread waits for the copies
        self._store = (count, variables, [None if g is None else g.detach().clone()
                                          for g in grads])
        if self.charge is not None:
            self.charge(time.perf_counter() - start)

    def _make_apply(self, original: Callable) -> Callable:
        import torch

        @torch.compiler.disable
        def capture(grads, trainable_variables):
            self._count += 1
            if self.captures(self._count) and not self.skip_next:
                self._store_copies(self._count, self._variables_of(trainable_variables), grads)

        def apply(grads, trainable_variables=None):
            grads = list(grads)
            if grads:
                capture(grads, trainable_variables)
            return original(grads, trainable_variables)

        return apply

    def _read(self):
        if self._store is None:
            return None
        step, variables, grads = self._store
        out = []
        for g, v in zip(grads, variables, strict=True):
            out.append(
                np.zeros(v.shape, "float32") if g is None else g.detach().cpu().numpy()
            )
        return step, variables, out


class _TensorFlowCapture(_Capture):
    def __init__(self, optimizer, period, phase):
        super().__init__(optimizer, period, phase)
        import tensorflow as tf

        self._tf = tf
        value = getattr(self.target.iterations, "value", None)
        strategy = getattr(value, "distribute_strategy", None)
        if (strategy is not None and strategy.num_replicas_in_sync > 1
                and not getattr(self.target, "sums_replica_gradients_first", False)):
            # Each replica's `apply` receives its own part of the gradient; the sum
            # over replicas is made in `_all_reduce_sum_gradients`: copy its output.
            clips = {k: getattr(self.target, k, None)
                     for k in ("clipnorm", "clipvalue", "global_clipnorm")}
            clips = {k: v for k, v in clips.items() if v is not None}
            if clips:
                raise ValueError(
                    "Capturing gradients from the training steps under a multi-replica "
                    f"tf.distribute strategy ({type(strategy).__name__}, "
                    f"{strategy.num_replicas_in_sync} replicas) with an optimizer that clips "
                    f"({', '.join(f'{k}={v}' for k, v in clips.items())}) is not supported: "
                    "Keras clips each replica's partial gradient before summing them, so "
                    "the run's gradients are not the one-device ones. Train with "
                    "keras_recipes.distribute (`setup('mirrored').fit(...)`), which sums "
                    "them before the clip, or log a probe batch (GradientHistogram(..., "
                    "data=(x, y)))."
                )
            self.hook = "_all_reduce_sum_gradients"
        with tf.init_scope():
            self._accumulators = {
                id(v): tf.Variable(
                    tf.zeros(v.shape, dtype=v.dtype), trainable=False, name="grad_capture"
                )
                for v in self.variables
            }
            self._step = tf.Variable(-1, dtype="int64", trainable=False, name="grad_capture_step")
        self._traced_variables: list = []

    def _make_hook(self, original: Callable) -> Callable:
        if self.hook == "apply":
            return self._make_apply(original)
        target = self.target

        def all_reduce_sum_gradients(grads_and_vars):
            reduced = list(original(grads_and_vars))
            # The pairs hold the variables' tf values: match them by the optimizer's key.
            by_key = {target._var_key(v): v for v in self.variables}
            present = [(g, by_key.get(target._var_key(v))) for g, v in reduced if g is not None]
            self._copy_on_capture_steps([g for g, _ in present], [v for _, v in present])
            return reduced

        return all_reduce_sum_gradients

    def _copy_on_capture_steps(self, grads: list, variables: list) -> None:
        tf = self._tf
        pairs = [(self._accumulators[id(v)], g) for v, g in zip(variables, grads, strict=True)
                 if v is not None and id(v) in self._accumulators]
        self._traced_variables = [v for v in variables
                                  if v is not None and id(v) in self._accumulators]
        step = tf.cast(tf.convert_to_tensor(self.target.iterations), "int64") + 1

        def copy():
            for acc, g in pairs:
                acc.assign(tf.convert_to_tensor(g))
            self._step.assign(step)
            return tf.constant(True)

        tf.cond(tf.equal(tf.math.floormod(step - self.phase, self.period), 0), copy,
                lambda: tf.constant(False))

    def _make_apply(self, original: Callable) -> Callable:
        def apply(grads, trainable_variables=None):
            grads = list(grads)
            if grads:
                variables = self._variables_of(trainable_variables)
                present = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
                self._copy_on_capture_steps([g for g, _ in present], [v for _, v in present])
            return original(grads, trainable_variables)

        return apply

    def _read(self):
        step = int(self._step.numpy())
        if step < 0 or step <= self._last_step:
            return None
        variables = self._traced_variables
        return step, variables, [self._accumulators[id(v)].numpy() for v in variables]


class _JaxCapture(_Capture):
    slows_every_step = True  # jax dispatches a jitted function with a callback in Python

    def __init__(self, optimizer, period, phase):
        super().__init__(optimizer, period, phase)
        self._store = None
        self._traced_variables: list = []

    def _host_store(self, step, *grads):
        start = time.thread_time()
        step = int(np.asarray(step))
        if self._store is None or step > self._store[0]:
            self._store = (step, [np.array(g, copy=True) for g in grads])
        if self.charge is not None:
            self.charge(time.thread_time() - start)

    def _make_apply(self, original: Callable) -> Callable:
        import jax
        import jax.numpy as jnp

        def apply(grads, trainable_variables=None):
            grads = list(grads)
            if grads:
                variables = self._variables_of(trainable_variables)
                kept = [(v, g) for v, g in zip(variables, grads, strict=True) if g is not None]
                self._traced_variables = [v for v, _ in kept]
                # Inside stateless_apply this reads the traced value of the scope.
                step = jnp.asarray(self.target.iterations.value, "int32") + 1
                pred = jnp.equal(jnp.mod(step - self.phase, self.period), 0)

                def send(operands):
                    jax.debug.callback(self._host_store, *operands)

                jax.lax.cond(pred, send, lambda operands: None, (step, *[g for _, g in kept]))
            return original(grads, trainable_variables)

        return apply

    def _read(self):
        import jax

        jax.effects_barrier()
        if self._store is None:
            return None
        step, grads = self._store
        return step, self._traced_variables, grads


def _tensorflow_loss_scale() -> float:
    import tensorflow as tf

    return 1.0 / tf.distribute.get_strategy().num_replicas_in_sync


_LOSS_SCALE: dict[str, Callable[[], float]] = {
    "torch": lambda: 1.0,
    "tensorflow": _tensorflow_loss_scale,
    "jax": lambda: 1.0,
}


def distribution_loss_scale() -> float:
    """The factor Keras's ``compute_loss`` applies to the loss in the current context.

    Under TensorFlow, inside the scope of a ``tf.distribute`` strategy with N
    replicas, Keras scales every computed loss by ``1/N`` (so that summing the
    replicas' gradients gives the mean); a loss and its gradients computed
    there outside ``fit`` (``keras_recipes.backend.loss_and_gradients``) are
    therefore ``1/N`` of their true value. Divide by this factor to undo it.
    1.0 everywhere else.

    Example:

    >>> distribution_loss_scale()  # no multi-replica strategy in scope
    1.0

    Returns:
        ``1/num_replicas_in_sync`` of the current ``tf.distribute`` strategy on
        TensorFlow (1.0 outside any scope), 1.0 on torch and jax.
    """
    return float(_LOSS_SCALE[keras.backend.backend()]())


_DISPATCH: dict[str, type[_Capture]] = {
    "torch": _TorchCapture,
    "tensorflow": _TensorFlowCapture,
    "jax": _JaxCapture,
}


def capture_gradients(optimizer, *, period: int, phase: int = 0) -> _Capture:
    """Captures the gradients an optimizer receives on every `period`-th step.

    Call ``install()`` before the train function is (re)built, read captured
    gradients with ``fetch()``, and ``remove()`` the wrapper when done.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    >>> model.optimizer.build(model.trainable_variables)
    >>> _ = model.layers[0].kernel.assign(np.zeros((2, 1)))
    >>> capture = capture_gradients(model.optimizer, period=1)
    >>> capture.install()
    >>> _ = model.make_train_function(force=True)  # trace it with the wrapper
    >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=4, verbose=0)
    >>> step, variables, (g,) = capture.fetch()
    >>> step, g.ravel().tolist()  # d/dw mean((w·x - 1)²) at w = 0: -2
    (1, [-2.0, -2.0])
    >>> capture.remove()
    >>> model.train_function = None  # the next fit traces without the wrapper

    Args:
        optimizer: a built Keras optimizer (``model.optimizer``).
        period: capture every `period`-th step (an int >= 1).
        phase: capture the step that makes ``optimizer.iterations`` equal to
            ``n`` when ``(n - phase) % period == 0``.

    Returns:
        A capture object with ``install()``, ``remove()`` and ``fetch()``;
        ``fetch()`` returns ``(iterations, variables, grads)`` for the latest
        captured step not fetched before (``grads`` as NumPy arrays, in the
        order of ``variables``), or ``None``.

    Raises:
        ValueError: for an unsupported backend, an unbuilt optimizer or a bad
            `period`.
    """
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise ValueError(
            f"Invalid value for argument `period`. Expected an int >= 1. Received: period={period}"
        )
    capture = for_backend(_DISPATCH)
    target = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(target, "built", False):
        raise ValueError(
            "Invalid value for argument `optimizer`. Expected a built optimizer (fit the model "
            "or call `optimizer.build(model.trainable_variables)`). Received: an unbuilt "
            f"{type(optimizer).__name__}"
        )
    return capture(optimizer, period, phase)
