"""GradientHistogram: per-weight gradient histograms, norms and alerts in TensorBoard."""

from __future__ import annotations

import fnmatch
import functools
import math
import os
import time
import warnings
from collections.abc import Sequence

import keras
import numpy as np

from keras_recipes.backend import loss_and_gradients, to_host
from keras_recipes.backend.gradient_capture import capture_gradients, distribution_loss_scale
from keras_recipes.callbacks.event_writer import EventWriter, histogram_buckets
from keras_recipes.callbacks.monitoring_budget import MonitoringBudget

__all__ = ["GradientHistogram", "full_weight_paths"]

ALERT_KINDS = ("vanishing", "exploding", "nonfinite")


def full_weight_paths(model: keras.Model) -> dict[int, str]:
    """Unique full paths of a model's weights, keyed by ``id(weight)``.

    Keras 3's ``weight.path`` is fixed when the weight is created, so a
    functional model used as a layer of another (a VGG19 backbone inside a
    transfer model) keeps paths like ``"block1_conv1/kernel"``. Here every
    nested model's name is prefixed (``"backbone/block1_conv1/kernel"``) unless
    the path already starts with it (a nested ``Sequential``), and clashes are
    made unique with a ``"_1"``, ``"_2"``... suffix.

    Example:

    >>> import keras
    >>> inp = keras.Input((3,))
    >>> backbone = keras.Model(inp, keras.layers.Dense(2, name="fc")(inp), name="backbone")
    >>> outer_in = keras.Input((3,))
    >>> model = keras.Model(outer_in, keras.layers.Dense(1, name="head")(backbone(outer_in)))
    >>> sorted(full_weight_paths(model).values())
    ['backbone/fc/bias', 'backbone/fc/kernel', 'head/bias', 'head/kernel']

    Args:
        model: a built ``keras.Model``.

    Returns:
        A dict from ``id(weight)`` to its full path, for every weight of `model`.
    """
    out: dict[int, str] = {}

    def visit(layer, prefix: str, parent: str) -> None:
        for sub in getattr(layer, "layers", []):
            if isinstance(sub, keras.Model):
                visit(sub, f"{prefix}/{sub.name}" if prefix else sub.name, prefix)
        for weight in layer.weights:
            if id(weight) in out:
                continue
            path = weight.path
            if not prefix:
                full = path
            elif path.startswith(prefix.rsplit("/", 1)[-1] + "/"):
                full = f"{parent}/{path}" if parent else path
            else:
                full = f"{prefix}/{path}"
            out[id(weight)] = full

    visit(model, "", "")
    seen: dict[str, int] = {}
    for key, path in list(out.items()):
        if path in seen:
            seen[path] += 1
            out[key] = f"{path}_{seen[path]}"
        else:
            seen[path] = 0
    return out


def _as_patterns(value, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(
        f"Invalid value for argument `{name}`. Expected None, a glob pattern string or a "
        f"list of them. Received: {name}={value!r}"
    )


def _host(variable) -> np.ndarray:
    """A NumPy copy of a variable's value.

    Through ``convert_to_tensor`` first: inside a ``tf.distribute`` strategy
    scope ``variable.value`` is a ``MirroredVariable``, which
    ``keras.ops.convert_to_numpy`` cannot read ("object __array__ method not
    producing an array"); its tensor is the primary replica's value.
    """
    return to_host(keras.ops.convert_to_tensor(variable))


def _norm(array: np.ndarray) -> float:
    """L2 norm; float32 BLAS dot, redone in float64 only when the squares overflow."""
    flat = np.asarray(array).reshape(-1)
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float32)
    squares = float(np.dot(flat, flat))
    if math.isinf(squares) and np.isfinite(flat).all():
        flat = flat.astype(np.float64)
        squares = float(np.dot(flat, flat))
    return math.sqrt(squares)


def _new_function(method):
    """A new function object calling `method`: jax traces it anew (it caches by callable)."""

    def step(*args, **kwargs):
        return method(*args, **kwargs)

    return step


def _counts_every_step(model) -> bool:
    """Whether each train-function call is one optimizer step, so the captured step can be
    foreseen before it runs: not with ``steps_per_execution > 1`` or a loss-scale optimizer
    (which skips steps)."""
    return (getattr(model, "steps_per_execution", 1) == 1
            and not hasattr(model.optimizer, "inner_optimizer"))


@keras.saving.register_keras_serializable(package="keras_recipes")
class GradientHistogram(keras.callbacks.Callback):
    """Logs gradient histograms, gradient norms and update ratios of every weight to TensorBoard.

    The practice of watching gradients layer by layer (vanishing and exploding
    gradients, `docs/techniques.md` §2), on every backend, with no TensorFlow
    needed. For every trainable weight (re-read from the model at every logging
    point, so weights unfrozen during ``fit`` appear from then on) it writes to
    ``log_dir/train``, beside ``keras.callbacks.TensorBoard``'s own events:

    - histogram ``gradients/<path>`` of the gradient's finite entries;
    - scalars ``gradient_norm/<path>`` (L2 norm), ``gradient_norm/global``,
      ``update_ratio/<path>`` = ‖W_t − W_prev‖ / ‖W_t‖ (the change of the weight
      since the previous logging point, or since the start of ``fit`` for the
      first one, relative to its current norm; 0 when it did not change),
      ``nonfinite/<path>`` (count of NaN/±inf
      gradient entries: counted and reported, never dropped), and
      ``gradient_norm_ratio/first_to_last`` (norm of the first layer's
      gradients over the last layer's).

    ``<path>`` is the weight's full path, with nested models' names included
    (``backbone/block1_conv1/kernel``; see `full_weight_paths`).

    Where the gradients come from:

    - ``data=None`` (default): **captured from the real training steps**, with
      no extra forward or backward pass: the gradients the optimizer receives
      on the captured step are copied (see
      ``keras_recipes.backend.gradient_capture``). ``every="epoch"`` captures
      the last step of each epoch (needs a known number of steps per epoch;
      when unknown, capture starts once the first epoch has counted them),
      ``every=N`` every N-th training step. Under data parallelism
      (``keras_recipes.distribute`` on every engine, or Keras's own ``fit`` in
      a multi-replica ``tf.distribute`` scope) these are the gradients summed
      over the replicas, on the scale of a one-device run of the same global
      batch; Keras's own multi-replica ``fit`` with a clipping optimizer is
      refused (a ``ValueError`` says why).
    - ``data=(x, y)`` / ``(x, y, sample_weight)`` or a dataset (its first batch
      is kept): gradients of the loss on that fixed **probe batch** (the
      course uses 100 held-out samples), computed after the epoch
      (``every="epoch"``) or after every N-th step, with
      ``keras_recipes.backend.loss_and_gradients`` (stateless). Inside the
      scope of an N-replica ``tf.distribute`` strategy, where Keras scales
      every loss by 1/N, the gradients are scaled back (see
      ``keras_recipes.backend.gradient_capture.distribution_loss_scale``).

    Either way there are **no side effects**: weights, batch-norm statistics,
    random seed states, ``optimizer.iterations`` and the history of a run are
    bitwise identical to the same run without the callback. (The train
    function is retraced once at ``on_train_begin`` to include the capture, and
    the previous one is put back at ``on_train_end``.)

    Cost: the gradients and weights are copied to the host at each logging
    point and the norms and alerts computed there; the histograms are bucketed
    and the events written in a background thread (``EventWriter(...,
    background=True)``), off the training loop. Everything is on disk when
    ``fit`` returns.

    Logging steps: ``every="epoch"`` logs at step = epoch index (as
    ``keras.callbacks.TensorBoard``'s epoch scalars); ``every=N`` at step =
    the training step's ``optimizer.iterations`` value (as its batch scalars).

    Alerts, each at most once per ``fit()``, emitted as a ``RuntimeWarning``,
    printed when ``verbose=1``, written as scalar ``alerts/<kind>`` and kept in
    :attr:`alerts`: ``"vanishing"`` (first-to-last layer gradient-norm ratio
    below `vanishing_ratio`), ``"exploding"`` (global norm above
    `exploding_norm`), ``"nonfinite"`` (any NaN/inf gradient entry; with
    `stop_on_nonfinite=True` training stops).

    Example:

    >>> import keras, numpy as np, tempfile
    >>> from keras_recipes.callbacks.event_writer import read_scalars
    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(1, name="out")], name="net"
    ... )
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> x, y = np.ones((8, 4), "float32"), np.zeros((8, 1), "float32")
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[GradientHistogram(log_dir)])
    >>> tags = read_scalars(log_dir + "/train")
    >>> sorted(t for t in tags if t.startswith("gradient_norm/"))
    ['gradient_norm/global', 'gradient_norm/net/out/bias', 'gradient_norm/net/out/kernel']
    >>> [step for step, _ in tags["gradient_norm/global"]]
    [0, 1]

    Args:
        log_dir: TensorBoard log directory; events go to ``log_dir/train``.
        data: ``None`` (capture from training steps), a probe batch
            ``(x, y)`` / ``(x, y, sample_weight)``, or an iterable of such
            batches (its first batch is used).
        every: ``"epoch"`` or an int N >= 1 (every N training steps).
        histograms: write gradient histograms (the scalars are always written).
        bins: number of histogram buckets.
        include: glob pattern(s) over full weight paths to log (default all).
        exclude: glob pattern(s) over full weight paths not to log.
        vanishing_ratio: alert when the first layer's gradient norm divided by
            the last layer's falls below this (``None``: never).
        exploding_norm: alert when the global gradient norm exceeds this
            (``None``: never).
        stop_on_nonfinite: stop training at the first non-finite gradient.
        training: run the probe batch in training mode (dropout, batch
            statistics; still stateless). Only used with `data`.
        verbose: 0 silent, 1 print alerts.
        budget: a :class:`MonitoringBudget` shared with the run's other monitoring
            callbacks: a logging step whose cost would take the monitoring over its
            share of the training time is skipped (``None``: log at every step asked).
            The capture is part of that cost: on jax (a plain step runs beside the capturing
            one) and torch, a skipped step's gradients are not copied at all, each copy is
            charged to the budget, and on jax so is the capturing step's compilation
            (expected, until it is done, to take as long as the plain step's). Granted
            whatever the budget: a fit's first log, in its first epoch, and the first log
            after the set of trainable weights changes (``UnfreezeSchedule``): every fit
            logs its gradients at least once, and once more after each unfreeze.

    Raises:
        ValueError: for an invalid argument (at construction); at
            ``on_train_begin``, for a `data` whose batches are not ``(x, y)``
            or ``(x, y, sample_weight)``, and for capturing (``data=None``)
            in Keras's own ``fit`` under a multi-replica ``tf.distribute``
            strategy with an optimizer that clips.

    References:
        - Glorot & Bengio, "Understanding the difficulty of training deep
          feedforward neural networks", AISTATS 2010.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        *,
        data=None,
        every: str | int = "epoch",
        histograms: bool = True,
        bins: int = 30,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        vanishing_ratio: float | None = 1e-4,
        exploding_norm: float | None = None,
        stop_on_nonfinite: bool = False,
        training: bool = True,
        verbose: int = 1,
        budget: MonitoringBudget | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(
                "Invalid value for argument `log_dir`. Expected a non-empty path. "
                f"Received: log_dir={log_dir!r}"
            )
        if every != "epoch" and (
            not isinstance(every, int) or isinstance(every, bool) or every < 1
        ):
            raise ValueError(
                "Invalid value for argument `every`. Expected 'epoch' or an int >= 1. "
                f"Received: every={every!r}"
            )
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
            raise ValueError(
                f"Invalid value for argument `bins`. Expected an int >= 1. Received: bins={bins!r}"
            )
        if vanishing_ratio is not None and not (
            isinstance(vanishing_ratio, (int, float)) and vanishing_ratio > 0
        ):
            raise ValueError(
                "Invalid value for argument `vanishing_ratio`. Expected None or a float > 0. "
                f"Received: vanishing_ratio={vanishing_ratio!r}"
            )
        if exploding_norm is not None and not (
            isinstance(exploding_norm, (int, float)) and exploding_norm > 0
        ):
            raise ValueError(
                "Invalid value for argument `exploding_norm`. Expected None or a float > 0. "
                f"Received: exploding_norm={exploding_norm!r}"
            )
        if data is not None and isinstance(data, (tuple, list)) and len(data) not in (2, 3):
            raise ValueError(
                "Invalid value for argument `data`. Expected None, (x, y), (x, y, "
                f"sample_weight) or an iterable of such batches. Received: a {type(data).__name__}"
                f" of length {len(data)}"
            )
        if verbose not in (0, 1, True, False):
            raise ValueError(
                "Invalid value for argument `verbose`. Expected 0 or 1. "
                f"Received: verbose={verbose!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.data = data
        self.every = every
        self.histograms = bool(histograms)
        self.bins = bins
        self.include = _as_patterns(include, "include")
        self.exclude = _as_patterns(exclude, "exclude")
        self.vanishing_ratio = vanishing_ratio
        self.exploding_norm = exploding_norm
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.training = bool(training)
        self.verbose = int(verbose)
        self.budget = budget
        self._owner = f"GradientHistogram:{id(self)}"
        #: Alerts raised in the current (or last) ``fit()``: dicts with keys
        #: ``kind``, ``step``, ``value`` and ``message``.
        self.alerts: list[dict] = []
        #: Steps logged in the current (or last) ``fit()``.
        self.logged_steps: list[int] = []
        self._probe = None
        self._writer: EventWriter | None = None
        self._capture = None
        if every != "epoch":
            # Only every=N needs a hook after each step. Not defining it otherwise keeps
            # Keras's asynchronous batch-end dispatch (TensorFlow, jax) switched on.
            self.on_train_batch_end = self._log_every_n

    def get_config(self) -> dict:
        """Constructor arguments (without `data`, which is not serializable)."""
        return {
            "log_dir": self.log_dir,
            "every": self.every,
            "histograms": self.histograms,
            "bins": self.bins,
            "include": list(self.include) if self.include else None,
            "exclude": list(self.exclude) if self.exclude else None,
            "vanishing_ratio": self.vanishing_ratio,
            "exploding_norm": self.exploding_norm,
            "stop_on_nonfinite": self.stop_on_nonfinite,
            "training": self.training,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config: dict) -> GradientHistogram:
        return cls(**config)

    # ------------------------------------------------------------------ setup
    @property
    def train_dir(self) -> str:
        """Directory of the event files (``log_dir/train``)."""
        return os.path.join(self.log_dir, "train")

    def _resolve_probe(self):
        if self._probe is not None or self.data is None:
            return
        batch = self.data
        if not isinstance(batch, (tuple, list)):
            try:
                batch = next(iter(batch))
            except TypeError as e:
                raise ValueError(
                    "Invalid value for argument `data`. Expected (x, y), (x, y, sample_weight) "
                    f"or an iterable of such batches. Received: {type(self.data).__name__}"
                ) from e
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError(
                "Invalid value for argument `data`. Its batches must be (x, y) or (x, y, "
                f"sample_weight). Received a batch of type {type(batch).__name__}"
            )
        to_numpy = lambda t: None if t is None else keras.ops.convert_to_numpy(t)  # noqa: E731
        self._probe = tuple(keras.tree.map_structure(to_numpy, part) for part in batch)

    def _iterations(self, optimizer) -> int:
        return int(_host(optimizer.iterations))

    def _install_capture(self, period: int) -> bool:
        model = self.model  # syncs the jax state before the optimizer is read
        optimizer = model.optimizer
        if not optimizer.built:
            # TensorFlow builds the optimizer in the first traced step; build it now
            # on the same variables (zero-initialized slots: the same state).
            if not model.built or not model.trainable_variables:
                return False  # retried before the next step
            optimizer.build(model.trainable_variables)
        iterations = self._iterations(optimizer)
        # Capture global steps g with (g - g0) % period == 0; iteration n of this
        # optimizer is global step g_now + (n - iterations).
        phase = iterations - (self._global_step - self._g0)
        self._capture = capture_gradients(optimizer, period=period, phase=phase)
        if self.budget is not None:  # the host copy of a captured step counts as the log's
            self._capture.charge = functools.partial(self.budget.charge, self._owner)
        self._capture_origin = (self._global_step, iterations)
        self._capture.install()
        self._fresh_train_step(model)
        model.make_train_function(force=True)
        self._capture_next = False
        self._split = self._split_train_function(model)
        # Which step is captured is chosen here before each step: on jax by running the
        # plain or the capturing step, on torch by the capture's `skip_next`.
        self._per_step = self._split or (
            self._capture.decides_in_python and _counts_every_step(model))
        return True

    def _split_train_function(self, model) -> bool:
        """jax: a plain compiled step for ordinary steps, the capturing one for captured ones.

        A jitted function whose trace holds a ``jax.debug.callback`` is never dispatched
        by jax's C++ fast path: every step would pay Python dispatch. So the captured
        step runs the capturing function and the others a second one, traced with the
        capture suspended; ``on_train_batch_begin`` picks (Keras's jax ``fit`` reads
        ``model.train_function`` at each step). Not with ``steps_per_execution > 1``,
        a loss-scale optimizer (skipped steps), or a step that is not jitted.
        """
        if (not self._capture.slows_every_step or model.run_eagerly or not model.jit_compile
                or not _counts_every_step(model)):
            return False
        capturing = model.train_function
        ours = vars(model).get("train_step")
        object.__setattr__(model, "train_step", _new_function(self._train_step_method))
        try:
            model.make_train_function(force=True)
            plain = model.train_function
        finally:
            object.__setattr__(model, "train_step", ours)
        capture = self._capture
        # Seconds of each function's first call: its trace and compilation. The capturing
        # one's is monitoring work, expected to take as long as the plain one's.
        compiled = self._compiled = {"plain": None, "capturing": None}

        def train_function(state, data):
            if self._capture_next:
                start = time.perf_counter()
                try:
                    return capturing(state, data)
                finally:
                    if compiled["capturing"] is None:
                        compiled["capturing"] = time.perf_counter() - start
                        if self.budget is not None:
                            self.budget.charge(self._owner, compiled["capturing"], once=True)
            capture.suspended = True
            start = time.perf_counter()
            try:
                return plain(state, data)
            finally:
                capture.suspended = False
                if compiled["plain"] is None:
                    compiled["plain"] = time.perf_counter() - start

        model.train_function = train_function
        return True

    def _fresh_train_step(self, model) -> None:
        """Gives the model a new ``train_step`` function object until ``on_train_end``.

        jax caches traces by the callable it traces, and two bound methods of one
        model compare equal: while the previous train function is alive (we keep it
        to put it back), a rebuilt one would reuse its trace, made without the
        capture. A fresh function per installation forces the retrace.
        """
        self._restore_train_step(model)
        previous = vars(model).get("train_step")
        self._train_step_method = model.train_step
        train_step = _new_function(self._train_step_method)
        object.__setattr__(model, "train_step", train_step)
        self._train_step_state = (train_step, previous)

    def _restore_train_step(self, model) -> None:
        state, self._train_step_state = getattr(self, "_train_step_state", None), None
        if state is None:
            return
        ours, previous = state
        if vars(model).get("train_step") is ours:
            if previous is None:
                object.__delattr__(model, "train_step")
            else:
                object.__setattr__(model, "train_step", previous)

    def _remove_capture(self) -> None:
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    def on_train_begin(self, logs=None):
        if self.budget is not None:
            self.budget.begin()
        model = self._model
        self.alerts = []
        self.logged_steps = []
        self._alerted: set[str] = set()
        self._resolve_probe()
        self._g0 = self._iterations(model.optimizer)
        self._global_step = self._g0
        self._epoch_start = self._g0
        self._last_batch = -1
        self._steps_unknown = not (self.params or {}).get("steps")
        self._epoch_iterations = None
        self._previous = {
            id(v): _host(v)
            for v in model.trainable_weights
        }
        self._saved_train_function = model.train_function
        self._saved_optimizer = model.optimizer
        self._period = None
        self._capture = None
        self._split = False
        self._per_step = False
        self._capture_next = False
        self._granted = None  # the budget's answer for the coming log, asked at its capture
        self._first_epoch = self._epoch = None  # the fit's first epoch, the current one
        # The trainable weights at the last granted log: the first log after they change
        # (an unfreeze) is granted whatever the budget.
        self._logged_trainable = self._trainable_key()
        self._compiled = None  # jax: first-call seconds of the plain and capturing steps
        self._empty_warned = False
        if self.data is None:
            if self.every == "epoch":
                self._period = (self.params or {}).get("steps")
                if not self._period:
                    warnings.warn(
                        "GradientHistogram(every='epoch') without `data` needs the number of "
                        "steps per epoch, which is unknown: gradients are captured from the "
                        "second epoch on. Pass `data=` or `every=N` to log the first epoch.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            else:
                self._period = self.every
            if self._period:
                self._install_capture(self._period)
        # Last: nothing above leaves it open. Histograms are bucketed and written in the
        # writer's background thread, off the training loop; on_train_end waits for them.
        self._writer = EventWriter(self.train_dir, background=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._global_step
        self._last_batch = -1
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch = epoch

    def _trainable_key(self) -> tuple[int, ...]:
        return tuple(id(v) for v in self._model.trainable_variables)

    def _ask_budget(self, once: float = 0.0) -> bool:
        """The budget's answer for the next log. Granted whatever the budget: a fit's first
        log, in the fit's first epoch (which compiles anyway), so that every fit logs once;
        and the first log after the set of trainable weights changed (an unfreeze, which
        compiles a new step anyway), so that every set is logged once."""
        first = self._epoch == self._first_epoch and not self.budget.granted.get(self._owner)
        trainable = self._trainable_key()
        changed = trainable != self._logged_trainable
        granted = self.budget.allow(self._owner, once=once, force=first or changed)
        if granted:
            self._logged_trainable = trainable
        return granted

    def on_train_batch_begin(self, batch, logs=None):
        # Steps are counted here (every begun step completes before the next hook).
        self._last_batch = int(batch)
        self._global_step = self._epoch_start + int(batch)
        if batch == 0 and self._steps_unknown:
            # With data of unknown length, jax and TensorFlow begin one more batch than
            # they run (the one that finds the data exhausted): count the optimizer's steps.
            optimizer = self.model.optimizer  # self.model syncs the jax state
            self._epoch_iterations = (optimizer, self._iterations(optimizer))
        swapped = False
        if self._capture is None:
            if self._period and self.data is None:
                self._install_capture(self._period)  # model was not built at train begin
        elif self._model.optimizer is not self._capture.optimizer:
            # Another callback gave the model a new optimizer (e.g. UnfreezeSchedule):
            # wrap the new one and retrace, so newly trainable weights are captured.
            self._remove_capture()
            self._install_capture(self._period)
            swapped = True
        if batch == 0 or swapped:
            self._snapshot_new_trainables()
        if self._capture is not None and getattr(self, "_per_step", False):
            # The step about to run makes the optimizer's iterations n (see _install_capture).
            g_install, iterations = self._capture_origin
            self._capture_next = self._capture.captures(
                iterations + (self._global_step - g_install) + 1)
            if self._capture_next and self.budget is not None:
                # The capture is part of the log's work: ask the budget before it runs,
                # and leave the step uncaptured (jax: the plain step) when the log would be
                # skipped anyway. On jax the first capture also compiles the capturing step.
                once = 0.0
                if self._split and self._compiled["capturing"] is None:
                    once = self._compiled["plain"] or 0.0
                self._granted = self._ask_budget(once)
                self._capture_next = self._granted
            self._capture.skip_next = not self._capture_next

    def _snapshot_new_trainables(self) -> None:
        """Weights made trainable since the last look get their update-ratio reference."""
        missing = [v for v in self._model.trainable_weights if id(v) not in self._previous]
        if missing:
            _ = self.model  # syncs the jax state before values are read
            for v in missing:
                self._previous[id(v)] = _host(v)

    def _log_every_n(self, batch, logs=None):
        """``on_train_batch_end`` when ``every=N`` (see ``__init__``)."""
        previous = self._global_step
        self._global_step = self._epoch_start + int(batch) + 1
        n = self.every
        if (self._global_step - self._g0) // n == (previous - self._g0) // n:
            return
        if self._capture is not None:
            self._budgeted(self._log_captured)
        elif self._probe is not None:
            self._budgeted(lambda: self._log_probe(self._global_step))

    def on_epoch_end(self, epoch, logs=None):
        self._global_step = self._epoch_start + self._last_batch + 1
        if self._epoch_iterations is not None:
            optimizer, start = self._epoch_iterations
            self._epoch_iterations = None
            if self.model.optimizer is optimizer:
                self._global_step = self._epoch_start + self._iterations(optimizer) - start
        if self.every == "epoch":
            if self._capture is not None:
                self._budgeted(lambda: self._log_captured(step=epoch))
            elif self._probe is not None:
                self._budgeted(lambda: self._log_probe(epoch))
            elif self.data is None and not self._period:
                # Steps per epoch learned from the first epoch: capture from now on.
                self._period = self._global_step - self._epoch_start
                if self._period > 0:
                    self._g0 = self._global_step
                    self._install_capture(self._period)
        if self._writer is not None:
            self._writer.flush()

    def _budgeted(self, log) -> None:
        """Runs `log` unless the budget says no; charges its main-thread time."""
        if log is None:
            return
        if self.budget is None:
            log()
            return
        granted, self._granted = self._granted, None  # decided at the captured step
        if not (self._ask_budget() if granted is None else granted):
            return
        start = time.perf_counter()
        try:
            log()
        finally:
            self.budget.charge(self._owner, time.perf_counter() - start)

    def on_train_end(self, logs=None):
        if self.budget is not None:
            self.budget.end()
        model = self._model
        capture_was_used = self._capture is not None or self._period is not None
        self._remove_capture()
        self._restore_train_step(model)
        if capture_was_used and self.data is None:
            if model.optimizer is self._saved_optimizer:
                model.train_function = self._saved_train_function
            else:
                model.train_function = None
        self._saved_train_function = None
        self._saved_optimizer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---------------------------------------------------------------- logging
    def _selected(self, path: str) -> bool:
        if self.include is not None and not any(fnmatch.fnmatchcase(path, p) for p in self.include):
            return False
        if self.exclude is not None and any(fnmatch.fnmatchcase(path, p) for p in self.exclude):
            return False
        return True

    def _log_captured(self, step: int | None = None) -> None:
        got = self._capture.fetch()
        if got is None:
            return
        iteration, variables, grads = got
        if step is None:
            origin_global, origin_iterations = self._capture_origin
            step = origin_global + (iteration - origin_iterations)
        self._log(step, variables, grads)

    def _log_probe(self, step: int) -> None:
        model = self.model  # syncs the jax state
        x, y, *rest = self._probe
        sample_weight = rest[0] if rest else None
        variables = list(model.trainable_weights)  # re-read: unfrozen weights appear
        if not variables:
            return
        _, grads = loss_and_gradients(
            model, x, y, sample_weight=sample_weight, training=self.training, variables=variables
        )
        scale = distribution_loss_scale()  # 1/N inside an N-replica tf.distribute scope
        if scale != 1.0:
            grads = [np.asarray(g) / scale for g in grads]
        self._log(step, variables, grads)

    def _log(self, step: int, variables: list, grads: list[np.ndarray]) -> None:
        model = self.model  # syncs the jax state before weights are read
        paths = full_weight_paths(model)
        values = []
        histograms = []  # (tag, gradient): bucketed in the writer's background thread
        rows = []
        for variable, grad in zip(variables, grads, strict=True):
            path = paths.get(id(variable), variable.path)
            if not self._selected(path):
                continue
            grad = np.asarray(grad)
            norm = _norm(grad)
            weight = _host(variable)
            prev = self._previous.get(id(variable))
            self._previous[id(variable)] = weight
            if self.histograms:
                histograms.append((f"gradients/{path}", grad))
            nonfinite = int(grad.size - np.count_nonzero(np.isfinite(grad)))
            values.append(EventWriter.scalar_value(f"gradient_norm/{path}", norm))
            values.append(EventWriter.scalar_value(f"nonfinite/{path}", nonfinite))
            if prev is not None and prev.shape == weight.shape:
                change, size = _norm(weight - prev), _norm(weight)
                ratio = 0.0 if change == 0 else (change / size if size > 0 else float("inf"))
                values.append(EventWriter.scalar_value(f"update_ratio/{path}", ratio))
            rows.append((path, norm, nonfinite))
        if not rows:
            if not self._empty_warned:
                self._empty_warned = True
                warnings.warn(
                    "GradientHistogram: no trainable weight matches include/exclude; "
                    "nothing logged.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return
        global_norm = float(np.sqrt(sum(norm**2 for _, norm, _ in rows)))
        values.append(EventWriter.scalar_value("gradient_norm/global", global_norm))
        layer_norms: dict[str, float] = {}
        for path, norm, _ in rows:
            layer = path.rsplit("/", 1)[0]
            layer_norms[layer] = layer_norms.get(layer, 0.0) + norm**2
        ordered = list(layer_norms.values())
        ratio = None
        if len(ordered) >= 2 and ordered[-1] > 0:
            ratio = float(np.sqrt(ordered[0] / ordered[-1]))
            values.append(EventWriter.scalar_value("gradient_norm_ratio/first_to_last", ratio))
        total_nonfinite = sum(n for _, _, n in rows)
        if total_nonfinite:
            bad = [p for p, _, n in rows if n]
            self._alert(
                "nonfinite", step, total_nonfinite,
                f"{total_nonfinite} non-finite gradient entries at step {step} in "
                f"{len(bad)} weight(s), first: {bad[0]}",
                values,
            )
            if self.stop_on_nonfinite:
                model.stop_training = True
        if (
            self.vanishing_ratio is not None
            and ratio is not None
            and np.isfinite(ratio)
            and ratio < self.vanishing_ratio
        ):
            first, last = next(iter(layer_norms)), list(layer_norms)[-1]
            self._alert(
                "vanishing", step, ratio,
                f"vanishing gradients at step {step}: gradient norm of {first} / {last} = "
                f"{ratio:.3g} < vanishing_ratio={self.vanishing_ratio:g}",
                values,
            )
        if (
            self.exploding_norm is not None
            and np.isfinite(global_norm)
            and global_norm > self.exploding_norm
        ):
            self._alert(
                "exploding", step, global_norm,
                f"exploding gradients at step {step}: global gradient norm {global_norm:.4g} > "
                f"exploding_norm={self.exploding_norm:g}",
                values,
            )
        bins = self.bins

        def with_histograms():
            return values + [
                EventWriter.histogram_value(tag, histogram_buckets(grad, bins)[0])
                for tag, grad in histograms
            ]

        if self.budget is not None:  # the bucketing in the writer's thread counts too
            with_histograms = self.budget.timed(self._owner, with_histograms)
        self._writer.submit(with_histograms, step)
        self.logged_steps.append(int(step))

    def _alert(self, kind: str, step: int, value: float, message: str, values: list) -> None:
        if kind in self._alerted:
            return
        self._alerted.add(kind)
        self.alerts.append({"kind": kind, "step": int(step), "value": value, "message": message})
        values.append(EventWriter.scalar_value(f"alerts/{kind}", value))
        warnings.warn(f"GradientHistogram: {message}", RuntimeWarning, stacklevel=3)
        if self.verbose:
            print(f"GradientHistogram: {message}")
