"""EarlyStopping: a drop-in superset of ``keras.callbacks.EarlyStopping``."""

from __future__ import annotations

import dataclasses
import math
import warnings

import keras
import numpy as np

from keras_recipes.callbacks.log_values import log_scalar

__all__ = ["EarlyStopping", "StopDecision", "StopState", "STOP_REASONS"]

#: Every value :attr:`EarlyStopping.stop_reason` can take besides ``None``.
STOP_REASONS = (
    "non_finite",  # the monitored value was NaN or ±inf (check_finite=True)
    "threshold_reached",  # better than stopping_threshold: good enough
    "diverged",  # worse than divergence_threshold
    "overfitting",  # validation worse while training better, overfit_patience epochs in a row
    "patience",  # no improvement for `patience` epochs
    "baseline_not_reached",  # `patience` epochs passed and the baseline was never beaten
)


@dataclasses.dataclass(frozen=True)
class StopState:
    """What :class:`EarlyStopping` remembers between epochs (JSON-friendly values).

    Attributes:
        best: best finite monitored value so far (``None`` before the first).
        best_epoch: epoch of `best`.
        wait: epochs since the last improvement that also beat the baseline.
        overfit_wait: consecutive epochs with the validation metric worse and
            the training metric better than the epoch before.
        previous: monitored value of the previous epoch (for the overfit rule).
        previous_train: its training counterpart in the previous epoch.
    """

    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    overfit_wait: int = 0
    previous: float | None = None
    previous_train: float | None = None


@dataclasses.dataclass(frozen=True)
class StopDecision:
    """Result of :meth:`EarlyStopping.evaluate` for one epoch.

    Attributes:
        state: the state after this epoch.
        improved: this epoch became the new best.
        stop: training should stop now.
        reason: one of :data:`STOP_REASONS` when `stop`, else ``None``.
        message: a human-readable explanation (empty when nothing happened).
    """

    state: StopState
    improved: bool
    stop: bool
    reason: str | None
    message: str = ""


# Directions of Keras's metric names, for when the compiled metric objects are not
# built yet (TensorFlow builds them in the first step).
_MAX_NAMES = (
    "acc", "accuracy", "auc", "precision", "recall", "f1_score", "fbeta_score", "iou",
    "mean_iou", "r2_score", "pearson_correlation", "concordance_correlation",
)
_MIN_NAMES = (
    "mae", "mse", "mape", "msle", "rmse", "mean_absolute_error", "mean_squared_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "root_mean_squared_error", "crossentropy", "hinge", "squared_hinge", "categorical_hinge",
    "kl_divergence", "kld", "poisson", "log_cosh", "logcosh",
)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar(value, name: str) -> float:
    """A logged value as a float; size-1 arrays (e.g. ``F1Score``'s shape (1,)) are accepted."""
    number = log_scalar(value)
    if number is None:
        raise ValueError(
            f"EarlyStopping monitors a single number, but `{name}` has shape "
            f"{np.shape(keras.ops.convert_to_numpy(value))}. "
            "Monitor a scalar metric (e.g. an F1Score with `average='macro'`)."
        )
    return number


def _metrics_unbuilt(model) -> bool:
    return any(
        hasattr(m, "metrics") and not getattr(m, "built", True)
        for m in getattr(model, "metrics", [])
    )


def _error(name: str, expected: str, value) -> ValueError:
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
    )


@keras.saving.register_keras_serializable(package="keras_recipes")
class EarlyStopping(keras.callbacks.Callback):
    """Stops training when a monitored metric stops improving, diverges, overfits or is NaN.

    Same arguments and defaults as ``keras.callbacks.EarlyStopping``, plus the
    checks the course needs to stop at the right epoch (`docs/techniques.md` §4: stop
    when the validation loss starts rising while the training loss still
    falls, and keep the best weights). What it fixes in Keras 3.15's callback:

    - a NaN/inf monitored value never becomes `best`; with ``check_finite``
      (default) it stops training at once (reason ``"non_finite"``). Keras
      keeps a NaN first value as best and later restores that epoch's weights;
    - `baseline`: training stops when the baseline is still not beaten after
      `patience` epochs, even if the metric improves every epoch (Keras never
      stops in that case);
    - the state (`best`, `wait`, ...) can be saved with :meth:`get_state` and
      restored with :meth:`set_state`, so a resumed run keeps counting, and
      ``reset_on_train_begin=False`` lets one instance span several ``fit()``;
    - ``mode="auto"`` with a metric of unknown direction fails at
      ``on_train_begin`` (Keras fails after the first epoch). Exception: a
      name that is neither a loss nor a known Keras metric name, while the
      compiled metrics are not built yet (TensorFlow builds them in the first
      step), is resolved from the compiled metric at the first epoch end, and
      raises there (as Keras) if still unknown, even when the value is missing;

    New rules: ``min_delta_mode="rel"`` (improvement relative to ``|best|``),
    ``stopping_threshold`` (stop once good enough), ``divergence_threshold``
    (stop at once when worse), ``overfit_patience`` (stop after that many
    consecutive epochs where the validation metric got worse than in the
    epoch before while its training counterpart, ``val_loss`` ↔ ``loss``,
    got better).

    The decision is the pure method :meth:`evaluate` (state and one epoch's
    values in, new state and decision out); the Keras hooks only feed it.
    Checks run in this order each epoch: non-finite, best/wait update,
    stopping threshold, divergence threshold, overfitting, patience.

    ``restore_best_weights=True`` restores the best epoch's weights at the end
    of training, whatever ended it (this callback, another one, or the last
    epoch). The best weights are kept as on-device copies (``keras.ops.copy``
    of every model variable), not host copies (a model that is not a Keras
    model, only duck-typed with ``get_weights``/``set_weights``, uses those).
    Logged values that are size-1 arrays (``F1Score``: shape (1,)) are
    monitored as their single number, as in Keras. They are not part of
    :meth:`get_state`: after a resume, weights are restored only if a new best
    is found (a warning says so otherwise).

    Example:

    >>> stopper = EarlyStopping(monitor="val_loss", patience=2, mode="min")
    >>> state = StopState()
    >>> for epoch, val_loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.7]):
    ...     decision = stopper.evaluate(state, epoch, val_loss)
    ...     state = decision.state
    ...     if decision.stop:
    ...         break
    >>> epoch, decision.reason, state.best, state.best_epoch
    (3, 'patience', 0.8, 1)
    >>> EarlyStopping(mode="min").evaluate(StopState(), 0, float("nan")).reason
    'non_finite'

    Args:
        monitor: quantity to monitor (a key of the epoch logs).
        min_delta: minimum change that counts as an improvement (>= 0).
        patience: epochs without improvement before stopping (0 and 1 both
            stop at the first epoch without improvement, as in Keras).
        verbose: 0 silent, > 0 print when stopping or restoring (as Keras).
        mode: ``"auto"``, ``"min"`` or ``"max"``. ``"auto"``: minimize losses,
            otherwise the compiled metric's own direction (accuracy, AUC...:
            maximize); unknown direction raises at ``on_train_begin``.
        baseline: value to beat; epochs that do not beat it count as no
            improvement, and training stops after `patience` such epochs
            (reason ``"baseline_not_reached"`` if it was never beaten).
        restore_best_weights: restore the best epoch's weights at the end.
        start_from_epoch: epochs ignored at the start (warm-up); only the
            non-finite check applies to them.
        check_finite: stop when the monitored value is NaN or ±inf. When
            False, such values count as no improvement.
        min_delta_mode: ``"abs"`` (improvement > `min_delta`) or ``"rel"``
            (improvement > ``min_delta * |best|``).
        stopping_threshold: stop once the metric is better than this.
        divergence_threshold: stop once the metric is worse than this.
        overfit_patience: stop after this many consecutive epochs where the
            validation metric got worse and its training counterpart got
            better (`monitor` must start with ``"val_"``). ``None``: off.
        reset_on_train_begin: reset the state at each ``fit()`` (as Keras).
            ``False`` keeps counting across ``fit()`` calls.

    Attributes:
        best, best_epoch, wait: the current state (see :class:`StopState`);
            settable, as in Keras. `best_epoch` is 0 before the first best (as
            Keras; ``state.best_epoch`` is ``None`` then).
        monitor_op: ``keras.ops.greater`` or ``keras.ops.less`` (as Keras),
            ``None`` while the direction of ``mode="auto"`` is not resolved.
        stopped_epoch: epoch at which this callback stopped training (0 when
            it did not, as in Keras; use `stop_reason` to tell them apart).
        stop_reason: one of :data:`STOP_REASONS`, or ``None``.

    Raises:
        ValueError: for an invalid argument (at construction), or an unknown
            metric direction with ``mode="auto"`` (at ``on_train_begin``).

    References:
        - Prechelt, "Early Stopping - But When?", Neural Networks: Tricks of
          the Trade, 1998.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
        *,
        check_finite: bool = True,
        min_delta_mode: str = "abs",
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        overfit_patience: int | None = None,
        reset_on_train_begin: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise _error("monitor", "a non-empty string", monitor)
        if not _is_number(min_delta) or not min_delta >= 0:
            raise _error("min_delta", "a float >= 0", min_delta)
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise _error("patience", "an int >= 0", patience)
        if not isinstance(verbose, int) or verbose < 0:
            raise _error("verbose", "an int >= 0", verbose)
        if mode not in ("auto", "min", "max"):
            raise _error("mode", "one of 'auto', 'min', 'max'", mode)
        for name, value in (
            ("baseline", baseline),
            ("stopping_threshold", stopping_threshold),
            ("divergence_threshold", divergence_threshold),
        ):
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise _error(name, "None or a finite float", value)
        if (
            not isinstance(start_from_epoch, int)
            or isinstance(start_from_epoch, bool)
            or start_from_epoch < 0
        ):
            raise _error("start_from_epoch", "an int >= 0", start_from_epoch)
        if min_delta_mode not in ("abs", "rel"):
            raise _error("min_delta_mode", "'abs' or 'rel'", min_delta_mode)
        if overfit_patience is not None:
            if (
                not isinstance(overfit_patience, int)
                or isinstance(overfit_patience, bool)
                or overfit_patience < 1
            ):
                raise _error("overfit_patience", "None or an int >= 1", overfit_patience)
            if not monitor.startswith("val_"):
                raise ValueError(
                    "Invalid value for argument `monitor`. Expected a validation metric "
                    "('val_...') when `overfit_patience` is set, so that its training "
                    f"counterpart can be compared. Received: monitor={monitor!r}"
                )
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.patience = patience
        self.verbose = int(verbose)
        self.mode = mode
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = start_from_epoch
        self.check_finite = bool(check_finite)
        self.min_delta_mode = min_delta_mode
        self.stopping_threshold = None if stopping_threshold is None else float(stopping_threshold)
        self.divergence_threshold = (
            None if divergence_threshold is None else float(divergence_threshold)
        )
        self.overfit_patience = overfit_patience
        self.reset_on_train_begin = bool(reset_on_train_begin)
        self._sign: float | None = {"min": -1.0, "max": 1.0}.get(mode)
        self._resume_pending = False
        self._reset()

    def get_config(self) -> dict:
        """The constructor arguments."""
        return {
            "monitor": self.monitor,
            "min_delta": self.min_delta,
            "patience": self.patience,
            "verbose": self.verbose,
            "mode": self.mode,
            "baseline": self.baseline,
            "restore_best_weights": self.restore_best_weights,
            "start_from_epoch": self.start_from_epoch,
            "check_finite": self.check_finite,
            "min_delta_mode": self.min_delta_mode,
            "stopping_threshold": self.stopping_threshold,
            "divergence_threshold": self.divergence_threshold,
            "overfit_patience": self.overfit_patience,
            "reset_on_train_begin": self.reset_on_train_begin,
        }

    @classmethod
    def from_config(cls, config: dict) -> EarlyStopping:
        return cls(**config)

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self.state = StopState()
        self.stopped_epoch = 0
        self.stop_reason: str | None = None
        self.best_weights: list | None = None
        self._missing_warned = False

    # `best`, `best_epoch`, `wait` and `monitor_op` are public, settable attributes as in
    # Keras; they read and write `self.state` (and the direction), so that `get_state`,
    # `evaluate` and the hooks see what user code sets.
    @property
    def best(self) -> float | None:
        return self.state.best

    @best.setter
    def best(self, value) -> None:
        value = None if value is None else _scalar(value, "best")
        self.state = dataclasses.replace(self.state, best=value)

    @property
    def best_epoch(self) -> int:
        """Epoch of `best`; 0 before the first (as Keras), see ``state.best_epoch``."""
        return 0 if self.state.best_epoch is None else self.state.best_epoch

    @best_epoch.setter
    def best_epoch(self, value) -> None:
        self.state = dataclasses.replace(
            self.state, best_epoch=None if value is None else int(value)
        )

    @property
    def wait(self) -> int:
        return self.state.wait

    @wait.setter
    def wait(self, value) -> None:
        self.state = dataclasses.replace(self.state, wait=int(value))

    @property
    def monitor_op(self):
        """``keras.ops.greater`` (maximize), ``keras.ops.less`` (minimize) or ``None``
        (direction not resolved yet), as Keras's attribute."""
        return {1.0: keras.ops.greater, -1.0: keras.ops.less}.get(self._sign)

    @monitor_op.setter
    def monitor_op(self, op) -> None:
        if op is None:
            self._sign = {"min": -1.0, "max": 1.0}.get(self.mode)
        elif op is keras.ops.greater:
            self._sign = 1.0
        elif op is keras.ops.less:
            self._sign = -1.0
        else:
            raise _error("monitor_op", "keras.ops.greater, keras.ops.less or None", op)

    def get_state(self) -> dict:
        """The counters as a JSON-serializable dict (for checkpoints)."""
        return {
            **dataclasses.asdict(self.state),
            "stopped_epoch": self.stopped_epoch,
            "stop_reason": self.stop_reason,
        }

    def set_state(self, state: dict) -> None:
        """Restores :meth:`get_state`'s dict; the next ``on_train_begin`` keeps it."""
        fields = {f.name for f in dataclasses.fields(StopState)}
        unknown = set(state) - fields - {"stopped_epoch", "stop_reason"}
        if unknown:
            raise ValueError(
                "Invalid value for argument `state`. Expected the dict of `get_state()`. "
                f"Received unknown keys: {sorted(unknown)}"
            )
        self.state = StopState(**{k: v for k, v in state.items() if k in fields})
        self.stopped_epoch = int(state.get("stopped_epoch", 0))
        self.stop_reason = state.get("stop_reason")
        self.best_weights = None
        self._resume_pending = True

    # --------------------------------------------------------------- decision
    def _resolve_direction(self, model=None, final: bool = False) -> float | None:
        if self._sign is not None:
            return self._sign
        name = self.monitor.removeprefix("val_")
        sign = None
        if name == "loss" or name.endswith("_loss"):
            sign = -1.0
        elif model is not None:
            for metric in getattr(model, "metrics", []):
                for m in [metric, *getattr(metric, "metrics", [])]:
                    if getattr(m, "name", None) == name and hasattr(m, "_direction"):
                        sign = 1.0 if m._direction == "up" else -1.0
        if sign is None and (name in _MAX_NAMES or name.endswith(("_accuracy", "_acc"))):
            sign = 1.0
        if sign is None and (name in _MIN_NAMES or name.endswith(("_crossentropy", "_error"))):
            sign = -1.0
        if sign is None and not final and model is not None and _metrics_unbuilt(model):
            return None  # resolved at the first epoch end, once the metrics exist
        if sign is None:
            raise ValueError(
                f"Invalid value for argument `mode`. With mode='auto' the direction of "
                f"monitor={self.monitor!r} must be known (a loss, or a compiled metric with a "
                "direction such as accuracy or AUC). Pass mode='min' or mode='max'. "
                f"Received: mode={self.mode!r}"
            )
        self._sign = sign
        return sign

    def _better(self, a: float, b: float, delta: float = 0.0) -> bool:
        return self._sign * (a - b) > delta

    def _improves(self, current: float, reference: float) -> bool:
        delta = self.min_delta if self.min_delta_mode == "abs" else self.min_delta * abs(reference)
        return self._better(current, reference, delta)

    def evaluate(
        self,
        state: StopState,
        epoch: int,
        current: float,
        train_current: float | None = None,
    ) -> StopDecision:
        """The stopping decision for one epoch: a pure function of its arguments.

        Args:
            state: the state before this epoch (``StopState()`` at the start).
            epoch: the epoch index (0-based, as ``fit`` counts).
            current: the monitored value of this epoch.
            train_current: the training counterpart of a ``val_`` metric (only
                used by the overfit rule).

        Returns:
            A :class:`StopDecision` with the new state. Nothing on ``self``
            changes.
        """
        self._resolve_direction()
        current = _scalar(current, self.monitor)
        finite = math.isfinite(current)
        if not finite and self.check_finite:
            best = "none yet" if state.best is None else f"{state.best:.6g}"
            return StopDecision(
                state, False, True, "non_finite",
                f"{self.monitor} = {current} is not finite (best so far: {best})",
            )
        if epoch < self.start_from_epoch:
            return StopDecision(state, False, False, None)
        if not finite:
            # check_finite=False: a non-finite value is no improvement, never the best.
            state = dataclasses.replace(state, wait=state.wait + 1, overfit_wait=0)
            return self._patience_decision(state, improved=False)

        improved = state.best is None or self._improves(current, state.best)
        beats_baseline = self.baseline is None or self._improves(current, self.baseline)
        best, best_epoch = (current, epoch) if improved else (state.best, state.best_epoch)
        wait = 0 if (improved and beats_baseline) else state.wait + 1

        overfit_wait = 0
        if train_current is not None:
            train_current = _scalar(train_current, self.monitor.removeprefix("val_"))
        train_ok = train_current is not None and math.isfinite(train_current)
        if (
            self.overfit_patience is not None
            and train_ok
            and state.previous is not None
            and state.previous_train is not None
        ):
            val_worse = self._better(state.previous, current)
            train_better = self._better(train_current, state.previous_train)
            overfit_wait = state.overfit_wait + 1 if (val_worse and train_better) else 0
        new_state = StopState(
            best=best,
            best_epoch=best_epoch,
            wait=wait,
            overfit_wait=overfit_wait,
            previous=current,
            previous_train=train_current if train_ok else None,
        )
        if self.stopping_threshold is not None and self._better(current, self.stopping_threshold):
            return StopDecision(
                new_state, improved, True, "threshold_reached",
                f"{self.monitor} = {current:.6g} is better than "
                f"stopping_threshold={self.stopping_threshold:g}",
            )
        if self.divergence_threshold is not None and self._better(
            self.divergence_threshold, current
        ):
            return StopDecision(
                new_state, improved, True, "diverged",
                f"{self.monitor} = {current:.6g} is worse than "
                f"divergence_threshold={self.divergence_threshold:g}",
            )
        if self.overfit_patience is not None and overfit_wait >= self.overfit_patience:
            return StopDecision(
                new_state, improved, True, "overfitting",
                f"{self.monitor} got worse while {self.monitor.removeprefix('val_')} got "
                f"better for {overfit_wait} consecutive epochs",
            )
        return self._patience_decision(new_state, improved)

    def _patience_decision(self, state: StopState, improved: bool) -> StopDecision:
        if state.wait >= max(self.patience, 1):
            never_beat = self.baseline is not None and (
                state.best is None or not self._improves(state.best, self.baseline)
            )
            if never_beat:
                return StopDecision(
                    state, improved, True, "baseline_not_reached",
                    f"{self.monitor} did not beat baseline={self.baseline:g} in "
                    f"{state.wait} epochs (best: {state.best})",
                )
            return StopDecision(
                state, improved, True, "patience",
                f"{self.monitor} did not improve for {state.wait} epochs "
                f"(best: {state.best:.6g} at epoch {state.best_epoch + 1})"
                if state.best is not None
                else f"{self.monitor} had no finite value for {state.wait} epochs",
            )
        return StopDecision(state, improved, False, None)

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._resolve_direction(self._model)
        if self._resume_pending:
            self._resume_pending = False
            self.stopped_epoch = 0
            self.stop_reason = None
        elif self.reset_on_train_begin:
            self._reset()
        else:
            self.stopped_epoch = 0
            self.stop_reason = None
        self._last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._last_epoch = epoch
        if self._sign is None:
            # As Keras: the direction is settled (or fails) at the first epoch end, even
            # when the monitored value is missing.
            self._resolve_direction(self.model, final=True)
        current = logs.get(self.monitor)
        if current is None:
            if not self._missing_warned:
                self._missing_warned = True
                warnings.warn(
                    f"EarlyStopping conditioned on metric `{self.monitor}` which is not "
                    f"available. Available metrics are: {', '.join(logs)}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return
        train_current = (
            logs.get(self.monitor.removeprefix("val_"))
            if self.overfit_patience is not None
            else None
        )
        decision = self.evaluate(self.state, epoch, current, train_current)
        self.state = decision.state
        if decision.improved and self.restore_best_weights:
            self.best_weights = self._snapshot()
        if decision.stop:
            self.model.stop_training = True
            self.stopped_epoch = epoch
            self.stop_reason = decision.reason
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({decision.reason}): {decision.message}")

    def _snapshot(self) -> list:
        """On-device copies of a Keras model's variables; ``get_weights()`` for other
        models (duck-typed ones, as Keras's callback accepts)."""
        weights = getattr(self.model, "weights", None)
        if isinstance(weights, (list, tuple)) and all(
            isinstance(v, keras.Variable) for v in weights
        ):
            self._host_weights = False
            return [keras.ops.copy(v.value) for v in weights]
        self._host_weights = True
        return self.model.get_weights()

    def _restore(self, best_weights) -> None:
        if getattr(self, "_host_weights", False):
            self.model.set_weights(best_weights)
            return
        for variable, value in zip(self.model.weights, best_weights, strict=True):
            variable.assign(value)

    def on_train_end(self, logs=None):
        if not self.restore_best_weights or self.state.best_epoch is None:
            return
        if self.best_weights is None:
            warnings.warn(
                f"EarlyStopping: the best epoch ({self.state.best_epoch + 1}) was before this "
                "callback's state was restored, and its weights are not kept across runs: "
                "the final weights are kept.",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if self.state.best_epoch == self._last_epoch:
            return  # the current weights are the best ones
        self._restore(self.best_weights)
        if self.verbose:
            print(
                "Restoring model weights from the end of the best epoch: "
                f"{self.state.best_epoch + 1}."
            )
