"""UnfreezeSchedule: unfreeze a backbone in stages inside one ``fit()``, on every backend."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from keras_recipes.applications.freezing import find_layer, unfreeze
from keras_recipes.backend.retrain import KEEP, rebuild_optimizer

__all__ = ["UnfreezeSchedule"]

_SCHEDULE = keras.optimizers.schedules.LearningRateSchedule


def _error(name: str, expected: str, value) -> ValueError:
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
    )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _valid_spec(spec) -> bool:
    if isinstance(spec, str):
        return bool(spec)
    if _is_int(spec):
        return spec > 0
    if isinstance(spec, (list, tuple)):
        return bool(spec) and all(isinstance(s, str) and s for s in spec)
    return False


def _valid_rate(rate) -> bool:
    if isinstance(rate, _SCHEDULE):
        return True
    return (
        isinstance(rate, (int, float, np.floating))
        and not isinstance(rate, bool)
        and math.isfinite(float(rate))
        and float(rate) > 0
    )


def _rate_repr(rate) -> str:
    if isinstance(rate, _SCHEDULE):
        return type(rate).__name__
    return f"{float(rate):g}"


@keras.saving.register_keras_serializable(package="keras_recipes")
class UnfreezeSchedule(keras.callbacks.Callback):
    """Unfreezes a nested backbone at given epochs, inside the same ``fit()``.

    The course's fine-tuning (warm up the new head with the backbone frozen,
    then unfreeze and go on with a much smaller learning rate) as one ``fit``.
    At the start of each epoch listed in ``schedule``, the layers it names
    become trainable (:func:`keras_recipes.applications.unfreeze`, batch norm
    kept in inference mode), and the model gets a **new optimizer** of the same
    class and settings, built on the new trainable set, with the stage's
    learning rate, and a rebuilt train function.

    Why: in Keras 3, changing ``trainable`` during ``fit`` is a silent no-op on
    TensorFlow and an error on torch and JAX, and ``compile()`` inside a
    callback fails. The rebuild here works on all three backends, with or
    without ``jit_compile``, and gives the same weights as "fit to the stage
    epoch, unfreeze, ``compile`` with the same optimizer settings, fit on".
    Newly trainable weights start with fresh optimizer state: with Adam, the
    first step of a weight just unfrozen is about 1x the learning rate, not
    the ~2.5x that Adam's global step count would give it in the old
    optimizer (bias correction of a step count of ~1000).

    The backbone is found by name at any depth (inside a transfer model,
    itself inside ``keras_recipes.models.AugmentedModel``). Stages accumulate:
    ``{2: "block5_*", 4: "all"}`` trains block 5 from epoch 2 and everything
    from epoch 4. A stage is applied once; a run resumed with
    :meth:`set_state` (or with ``fit(initial_epoch=...)`` past a stage)
    re-applies the stages already passed at train begin, so the backbone
    trains after a resume while parts scheduled later stay frozen. A stage
    that changes neither the trainable set nor the learning rate (e.g. a model
    reloaded from a ``.keras`` file saved after it) keeps the optimizer and
    its state.

    Example:

    >>> import keras, numpy as np
    >>> from keras_recipes.applications import build_transfer_model
    >>> backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)],
    ...                             name="backbone")
    >>> model = build_transfer_model(backbone, 2, input_shape=(8, 8, 3), weights=None)
    >>> model.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9),
    ...               loss="sparse_categorical_crossentropy")
    >>> x, y = np.linspace(0, 255, 8 * 8 * 8 * 3).reshape(8, 8, 8, 3), np.arange(8) % 2
    >>> cb = UnfreezeSchedule(schedule={1: "all"}, learning_rate=1e-3, verbose=0)
    >>> _ = model.fit(x, y, epochs=2, batch_size=4, callbacks=[cb], verbose=0)
    >>> len(model.trainable_weights), round(float(model.optimizer.learning_rate), 6)
    (4, 0.001)
    >>> cb.get_state()
    {'applied': [1]}

    Args:
        backbone: name of the (nested) layer to unfreeze.
        schedule: ``{epoch: what}``; at the start of ``epoch`` (0-based, as in
            ``on_epoch_begin``), ``what`` becomes trainable: ``"all"``, an int
            ``N`` (the last ``N`` layers with weights), a glob pattern over
            layer names (``"block5_*"``) or a list of layer names.
            Default ``{10: "all"}``.
        learning_rate: learning rate from each stage on: a float, a
            ``keras.optimizers.schedules.LearningRateSchedule`` (it restarts at
            step 0 of the new optimizer, as after ``compile``), a dict
            ``{stage_epoch: rate}`` (stages not in it keep the current rate),
            or ``None`` to keep the current rate. The optimizer's class and
            other settings (momentum, clipping, weight decay...) are kept.
        keep_batchnorm_frozen: keep batch-norm layers of the backbone in
            inference mode (their moving statistics stay bitwise unchanged).
        keep_optimizer_state: copy the optimizer slots (momentum, Adam moments)
            of the weights that were already trainable (the head) into the new
            optimizer; the step count restarts at 0 either way. Default: a
            fresh optimizer, exactly as a recompile.
        verbose: 1 prints one line per stage applied; 0 is silent.

    Raises:
        ValueError: for an invalid argument (at construction), or when no
            layer named ``backbone`` exists in the model (at train begin).

    References:
        - Howard & Ruder, Universal Language Model Fine-tuning (gradual
          unfreezing), ACL 2018. https://arxiv.org/abs/1801.06146
        - Keras guide, Transfer learning & fine-tuning.
          https://keras.io/guides/transfer_learning/
    """

    def __init__(
        self,
        backbone: str = "backbone",
        schedule: dict[int, str | int | Sequence[str]] | None = None,
        *,
        learning_rate: float | dict | keras.optimizers.schedules.LearningRateSchedule | None = None,
        keep_batchnorm_frozen: bool = True,
        keep_optimizer_state: bool = False,
        verbose: int = 1,
    ):
        super().__init__()
        if not isinstance(backbone, str) or not backbone:
            raise _error("backbone", "the name of a layer (a non-empty str)", backbone)
        if schedule is None:
            schedule = {10: "all"}
        if not isinstance(schedule, dict) or not schedule:
            raise _error("schedule", "a non-empty dict {epoch: layers}", schedule)
        for epoch, spec in schedule.items():
            if not _is_int(epoch) or epoch < 0:
                raise _error("schedule", "epochs that are ints >= 0", schedule)
            if not _valid_spec(spec):
                raise _error(
                    "schedule",
                    "values 'all', an int > 0, a glob pattern or a list of layer names",
                    schedule,
                )
        schedule = {int(e): (list(s) if isinstance(s, tuple) else s) for e, s in schedule.items()}
        if isinstance(learning_rate, dict):
            unknown = sorted(set(learning_rate) - set(schedule))
            if unknown:
                raise _error(
                    "learning_rate", f"a dict keyed by epochs of the schedule {sorted(schedule)}",
                    learning_rate,
                )
            if not all(r is None or _valid_rate(r) for r in learning_rate.values()):
                raise _error(
                    "learning_rate", "a dict of floats > 0 or LearningRateSchedules",
                    learning_rate,
                )
        elif learning_rate is not None and not _valid_rate(learning_rate):
            raise _error(
                "learning_rate",
                "a float > 0, a dict {epoch: rate}, a LearningRateSchedule or None",
                learning_rate,
            )
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise _error("verbose", "0, 1 or 2", verbose)
        self.backbone = backbone
        self.schedule = dict(sorted(schedule.items()))
        self.learning_rate = learning_rate
        self.keep_batchnorm_frozen = bool(keep_batchnorm_frozen)
        self.keep_optimizer_state = bool(keep_optimizer_state)
        self.verbose = verbose
        self.applied: list[int] = []
        self.events: list[dict] = []
        self._resume_pending = False

    # --------------------------------------------------------------- decision
    def due_stages(self, epoch: int, applied: Sequence[int] = ()) -> list[int]:
        """Stages to apply at the start of ``epoch``: passed and not yet applied.

        Args:
            epoch: the epoch about to start (0-based).
            applied: stage epochs already applied.

        Returns:
            Sorted stage epochs (several when resuming past more than one).
        """
        done = set(applied)
        return [e for e in self.schedule if e <= epoch and e not in done]

    def stage_learning_rate(self, stages: Sequence[int]):
        """The learning rate after applying ``stages`` (``None``: keep the current)."""
        if isinstance(self.learning_rate, dict):
            for stage in reversed(sorted(stages)):
                rate = self.learning_rate.get(stage)
                if rate is not None:
                    return rate
            return None
        return self.learning_rate

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        model = self.model
        find_layer(model, self.backbone)  # a clear error now rather than at the stage
        if self._resume_pending:
            self._resume_pending = False
            if self.applied:
                self._apply(list(self.applied), epoch=None)
        else:
            self.applied = []
            self.events = []

    def on_epoch_begin(self, epoch, logs=None):
        due = self.due_stages(epoch, self.applied)
        if due:
            self._apply(due, epoch=epoch)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """The stages applied so far, JSON-serializable (for checkpoints)."""
        return {"applied": list(self.applied)}

    def set_state(self, state: dict) -> None:
        """Restores :meth:`get_state`'s dict; the next ``on_train_begin`` re-applies it.

        Args:
            state: ``{"applied": [stage epochs]}``.

        Raises:
            ValueError: for unknown keys or stages not in the schedule.
        """
        if not isinstance(state, dict) or set(state) - {"applied"}:
            raise _error("state", "the dict of get_state()", state)
        applied = list(state.get("applied", []))
        if not all(_is_int(e) and int(e) in self.schedule for e in applied):
            raise _error("state", f"applied stages among {sorted(self.schedule)}", state)
        self.applied = sorted(int(e) for e in applied)
        self._resume_pending = True

    def get_config(self) -> dict:
        rate = self.learning_rate
        if isinstance(rate, _SCHEDULE):
            rate = keras.saving.serialize_keras_object(rate)
        elif isinstance(rate, dict):
            rate = {
                k: keras.saving.serialize_keras_object(v) if isinstance(v, _SCHEDULE) else v
                for k, v in rate.items()
            }
        return {
            "backbone": self.backbone,
            "schedule": dict(self.schedule),
            "learning_rate": rate,
            "keep_batchnorm_frozen": self.keep_batchnorm_frozen,
            "keep_optimizer_state": self.keep_optimizer_state,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        schedule = {int(k): v for k, v in config.pop("schedule").items()}
        rate = config.pop("learning_rate", None)
        if isinstance(rate, dict) and "class_name" in rate:
            rate = keras.saving.deserialize_keras_object(rate)
        elif isinstance(rate, dict):
            rate = {
                int(k): keras.saving.deserialize_keras_object(v) if isinstance(v, dict) else v
                for k, v in rate.items()
            }
        return cls(schedule=schedule, learning_rate=rate, **config)

    # ---------------------------------------------------------------- actions
    def _same_rate(self, optimizer, rate) -> bool:
        current = getattr(optimizer, "inner_optimizer", optimizer).get_config()["learning_rate"]
        if isinstance(rate, _SCHEDULE):
            return current == keras.saving.serialize_keras_object(rate)
        if isinstance(current, (int, float)):
            return bool(np.isclose(float(current), float(rate), rtol=1e-6, atol=0.0))
        return False

    def _apply(self, stages: list[int], epoch: int | None) -> None:
        model = self.model
        net = find_layer(model, self.backbone)
        before = [id(v) for v in model.trainable_variables]
        names = []
        for stage in stages:
            layers = unfreeze(
                net, layers=self.schedule[stage], keep_batchnorm_frozen=self.keep_batchnorm_frozen
            )
            names.extend(layer.name for layer in layers)
        after = model.trainable_variables
        rate = self.stage_learning_rate(stages)
        changed = before != [id(v) for v in after]
        rebuilt = False
        if changed or (rate is not None and not self._same_rate(model.optimizer, rate)):
            rebuild_optimizer(
                model,
                learning_rate=KEEP if rate is None else rate,
                keep_state=self.keep_optimizer_state,
            )
            rebuilt = True
        self.applied = sorted(set(self.applied) | set(stages))
        optimizer = model.optimizer
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        event = {
            "epoch": epoch,
            "stages": list(stages),
            "layers": len(set(names)),
            "trainable_weights": len(after),
            "trainable_params": int(sum(np.prod(v.shape) for v in after)),
            "optimizer_rebuilt": rebuilt,
            "learning_rate": _rate_repr(inner._learning_rate)
            if isinstance(inner._learning_rate, _SCHEDULE)
            else float(keras.ops.convert_to_numpy(inner.learning_rate)),
        }
        self.events.append(event)
        if self.verbose:
            when = "resume" if epoch is None else f"Epoch {epoch + 1}"
            what = " + ".join(repr(self.schedule[s]) for s in stages)
            lr = event["learning_rate"]
            lr = f"{lr:g}" if isinstance(lr, float) else lr
            print(
                f"\n{when}: UnfreezeSchedule: {what} of {self.backbone!r} trainable "
                f"({event['trainable_weights']} weights, {event['trainable_params']:,} "
                f"parameters); " + (
                    f"new {type(inner).__name__} optimizer, learning_rate={lr}."
                    if rebuilt else "optimizer unchanged."
                )
            )
