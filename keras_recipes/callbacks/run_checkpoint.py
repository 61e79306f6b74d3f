"""RunCheckpoint: resumable training, a superset of ``keras.callbacks.BackupAndRestore``."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_recipes.backend.device import to_host
from keras_recipes.backend.random_state import get_random_state, set_random_state
from keras_recipes.callbacks.checkpoint_files import (
    assign_arrays,
    atomic_json,
    link_arrays,
    load_arrays,
    same_values,
    save_arrays,
)
from keras_recipes.callbacks.log_values import log_scalar
from keras_recipes.callbacks.monitoring_budget import MonitoringBudget

__all__ = ["RunCheckpoint", "latest_checkpoint"]

_MODES = ("auto", "min", "max")
# Until a checkpoint has been measured, its cost is guessed from its bytes at this rate (host
# copies, file writes and fsync: 0.29-0.36 GB/s measured on the 2-core CPU's disk for VGG19
# with SGD momentum, 160 MB in 0.45-0.55 s).
PRIOR_BYTES_PER_SECOND = 3e8
# The checkpoint writer thread of each folder in this process: a new RunCheckpoint of the
# same folder (after an exception ended a fit) waits for the last write before reading.
_WRITERS: dict[str, threading.Thread] = {}


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder (``epoch-NNNN`` holding ``state.json``), or None.

    A folder being written is named ``.epoch-NNNN.tmp`` until it is complete, so a
    checkpoint cut short by a crash is never returned. An ``epoch-NNNN`` folder whose
    ``state.json`` is missing or unreadable (damaged after it was written) is skipped
    with a ``UserWarning`` that names it, and the next newest is returned.
    """
    folder = Path(directory)
    writer = _WRITERS.get(os.fspath(folder.resolve()))
    if writer is not None and writer is not threading.current_thread():
        writer.join()  # a write still in progress in this process (finish_in_background)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("epoch-*"), reverse=True):
        try:
            state = json.loads((path / "state.json").read_text())
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("no 'epoch' entry")
        except (OSError, ValueError) as err:
            warnings.warn(f"RunCheckpoint: skipping the damaged checkpoint {path}: its "
                          f"state.json is missing or unreadable ({err}).", stacklevel=2)
            continue
        return path
    return None


def _check_folder(directory: Path) -> None:
    """Refuses a folder that holds files but no checkpoint (another tool's, or a typo)."""
    if not directory.is_dir():
        return
    foreign = sorted(p.name for p in directory.iterdir()
                     if not (p.name.startswith("epoch-") or p.name.startswith(".epoch-")))
    if foreign and not any(directory.glob("epoch-*")):
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ValueError(
            f"Invalid value for argument `directory`: {directory} is not a RunCheckpoint "
            f"folder (it holds {shown} and no epoch-NNNN checkpoint). Expected a new or "
            f"empty folder, or one written by RunCheckpoint. Received: directory="
            f"{os.fspath(directory)!r}"
        )


def _number(value):
    """A log value as a float (size-1 arrays such as F1Score's included); None if not finite."""
    v = log_scalar(value)
    return v if v is not None and math.isfinite(v) else None


def _fit_callback_list(callback):
    """The ``keras.callbacks.CallbackList`` of the ``fit`` calling ``set_model`` on `callback`.

    Keras builds one ``CallbackList`` per ``fit`` and calls each callback's ``set_model``
    from its own; the list is found in those calling frames. None when the callback is
    driven by hand.
    """
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(
            cb is callback for cb in owner.callbacks
        ):
            return owner
        frame = frame.f_back
    return None


@keras.saving.register_keras_serializable(package="keras_recipes")
class RunCheckpoint(keras.callbacks.Callback):
    """Resumable training: run the same ``fit`` again and it continues where it stopped.

    Used like ``keras.callbacks.BackupAndRestore``: at the end of every epoch the
    training state goes to `directory`; when ``fit`` starts and `directory` holds a
    checkpoint, that state is restored and training continues after its epoch. Beyond
    Keras's callback it saves and restores:

    - every model variable, the seed-generator states of Dropout and augmentation
      layers included, and the process-wide generators some layers draw from (torch's
      global RNG for an unseeded Dropout, NumPy's, Python's), so the random draws after
      a resume are those of an uninterrupted run;
    - the variables of the optimizer in use at the end of the epoch, also one that
      ``UnfreezeSchedule`` swapped in;
    - the state of every other callback of the ``fit`` that has ``get_state()`` /
      ``set_state()`` (``EarlyStopping``'s ``wait`` and ``best``, ``UnfreezeSchedule``'s
      stages, ...), and the arrays of those with a ``variables`` list (weight
      averages), restored before any callback's ``on_train_begin``;
    - the best weights by `monitor` and the history of every epoch (:attr:`history`:
      the logs, the learning rate and the epoch's seconds; :attr:`best`,
      :meth:`restore_best_weights`);
    - whether training had stopped early: a finished run resumed trains no more.

    A resumed run therefore ends with the weights and the stop epoch of an
    uninterrupted one, provided the data come in an order that depends on the epoch
    alone (``keras_recipes.data.epoch_batches`` with
    ``initial_epoch=checkpoint.initial_epoch``). Each checkpoint is a folder
    ``epoch-NNNN`` written under a temporary name, flushed to disk (``fsync``) and
    renamed once complete, so a
    ``kill -9`` during a write leaves the previous checkpoint as the newest; the
    older one is removed afterwards. A variable equal to the previous checkpoint's
    (a frozen backbone) is a hard link to the previous file, not a new copy. The
    host copies are taken at the end of the epoch; the files are written by a
    background thread while the next epoch trains. The last one is on disk when
    ``fit`` returns, or, with ``finish_in_background=True``, while the program goes on
    (the interpreter waits for it at exit). An epoch whose training loss is not
    finite is not checkpointed.

    At the end of training the last checkpoint stays (``BackupAndRestore`` deletes its
    backup): the best weights and the history remain readable after the process
    ends, and running the same finished ``fit`` again trains no epoch (one that
    early stopping ended included) instead of silently training it all over. Use a
    new folder for a new run. A folder that holds other files but no checkpoint is
    refused; a damaged newest checkpoint is skipped with a warning
    (:func:`latest_checkpoint`).

    Its hooks run after those of every other callback of the ``fit``, wherever it
    stands in the list (it moves itself to the end of Keras's ``CallbackList``), so
    it saves the other callbacks' state of this epoch and restores the optimizer
    after ``UnfreezeSchedule`` has rebuilt it.

    Example:

    >>> import tempfile, numpy as np, keras
    >>> from keras_recipes.callbacks import EarlyStopping
    >>> def build():
    ...     keras.utils.set_random_seed(0)
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    ...     return model
    >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    >>> backup = tempfile.mkdtemp()
    >>> class Interrupt(keras.callbacks.Callback):
    ...     def on_epoch_begin(self, epoch, logs=None):
    ...         if epoch == 2:
    ...             raise RuntimeError("interrupted")
    >>> try:
    ...     build().fit(x, y, epochs=4, verbose=0, shuffle=False,
    ...                 callbacks=[RunCheckpoint(backup), Interrupt()])
    ... except RuntimeError:
    ...     pass
    >>> checkpoint = RunCheckpoint(backup)
    >>> checkpoint.initial_epoch
    2
    >>> history = build().fit(x, y, epochs=4, verbose=0, shuffle=False,
    ...                       callbacks=[checkpoint])  # doctest: +ELLIPSIS
    RunCheckpoint: 2 epoch(s) done, resuming from .../epoch-0001
    >>> len(history.history["loss"]), [h["epoch"] for h in checkpoint.history]
    (2, [0, 1, 2, 3])

    Args:
        directory: the folder of the checkpoints (created on the first write). One
            folder per training run: a second ``fit`` with another model must use
            another folder.
        monitor: the log whose best epoch is kept (``"val_loss"``). If it is not in the
            logs, ``"loss"`` is used.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``max`` for names holding ``acc``,
            ``top``, ``auc``, ``precision``, ``recall`` or ``f1``; else ``min``).
        save_best: keep the weights of the best epoch (``best/`` in each checkpoint).
        write: whether this process writes files (``False`` in all but the chief
            process of a multi-process run; they restore from the chief's folder).
        verbose: 1 prints one line when a run resumes.
        budget: a :class:`MonitoringBudget` shared with the run's other monitoring
            callbacks: an epoch whose checkpoint would take the monitoring over its share
            of the training time is not written (a resume then starts after the last one
            written); before one is measured, a checkpoint's cost is guessed from its bytes
            (0.3 GB/s), so short epochs of a large model wait for the first one; the last
            epoch of the ``fit`` is always written. ``None``: every epoch.
        finish_in_background: let ``fit`` return while the last checkpoint is still being
            written, instead of waiting for it (its write time leaves the ``fit``; the
            next ``fit`` or the program then overlaps it). The writer thread is not a
            daemon: a program that ends normally waits for it. A new ``RunCheckpoint`` of
            the folder, :func:`latest_checkpoint` and :meth:`wait_for_writes` wait for
            it; a failed write is warned about when it fails and raised by the next of
            these in this instance (``wait_for_writes``, the next ``fit``).

    Raises:
        ValueError: for an empty `directory`, a folder holding other files and no
            checkpoint, a bad `mode`, or (at ``fit``) a checkpoint whose variables do
            not match the model's (naming the first such variable).

    References:
        - ``keras.callbacks.BackupAndRestore``, whose usage this follows.
    """

    # No per-batch *end* hook (the one Keras waits on): Keras keeps dispatching steps
    # asynchronously on torch and jax. on_train_batch_begin runs on the main thread.
    async_safe = True

    def __init__(
        self,
        directory: str | os.PathLike,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best: bool = True,
        write: bool = True,
        verbose: int = 1,
        budget: MonitoringBudget | None = None,
        finish_in_background: bool = False,
    ):
        super().__init__()
        if not directory:
            raise ValueError(
                "Invalid value for argument `directory`. Expected a folder path. "
                f"Received: directory={directory!r}"
            )
        if mode not in _MODES:
            raise ValueError(
                "Invalid value for argument `mode`. Expected one of 'auto', 'min', 'max'. "
                f"Received: mode={mode!r}"
            )
        self.directory = Path(directory)
        _check_folder(self.directory)
        self.monitor = str(monitor)
        self.mode = mode
        self.save_best = bool(save_best)
        self.write = bool(write)
        self.verbose = int(verbose)
        self.budget = budget
        self.finish_in_background = bool(finish_in_background)
        self._owner = f"RunCheckpoint:{id(self)}"
        self._best_unsaved = False  # the best epoch's weights are not in the last checkpoint
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        self._last: dict[str, list] = {}
        self._others: list = []
        self._pending_random = None
        self._load()

    # --------------------------------------------------------------- state on disk
    def _load(self) -> None:
        """Reads the newest checkpoint of `directory` (or starts empty)."""
        writer = _WRITERS.get(os.fspath(self.directory.resolve()))
        if writer is not None:
            writer.join()
        self.checkpoint_dir = latest_checkpoint(self.directory)
        state = {}
        if self.checkpoint_dir is not None:
            state = json.loads((self.checkpoint_dir / "state.json").read_text())
        self._state = state
        self.history: list[dict] = list(state.get("history", []))
        self.best: dict | None = state.get("best")
        self.sessions = int(state.get("sessions", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        self._resume_pending = self.checkpoint_dir is not None
        self._best_arrays = None
        self._best_from_disk = self.checkpoint_dir is not None and self.best is not None

    @property
    def initial_epoch(self) -> int:
        """The first epoch a resumed ``fit`` trains (0 without a checkpoint)."""
        if not self._state:
            return 0
        return int(self._state["epoch"]) + 1

    @property
    def stopped(self) -> bool:
        """Whether the checkpointed run had stopped before its last epoch (early stopping)."""
        return bool(self._state.get("stopped", False))

    @property
    def best_weights(self) -> list[np.ndarray] | None:
        """The model's variable values at the best epoch (host arrays), or None."""
        if self._best_arrays is None and self._best_from_disk:
            self.wait_for_writes()
            ckpt = latest_checkpoint(self.directory)
            self._best_arrays = None if ckpt is None else load_arrays(ckpt / "best")
        return self._best_arrays

    def restore_best_weights(self, model: keras.Model | None = None) -> int | None:
        """Assigns the best epoch's values to every variable of `model`; returns that epoch.

        Args:
            model: the model (default: the one of the last ``fit``).

        Returns:
            The best epoch (0-based), or None when no epoch was kept.
        """
        model = model if model is not None else self.model
        weights = self.best_weights
        if weights is None or self.best is None:
            return None
        assign_arrays(model.variables, weights, "best-epoch model")
        return int(self.best["epoch"])

    # ------------------------------------------------------------------ hooks
    def set_model(self, model):
        super().set_model(model)
        callbacks = _fit_callback_list(self)
        if callbacks is None:
            return
        self.wait_for_writes()
        self._load()  # a reused instance resumes from the folder, as a new one would
        # Run last: save the others' end-of-epoch state, restore after their on_train_begin.
        # A new list, not the one Keras is iterating to call set_model.
        self._others = [cb for cb in callbacks.callbacks if cb is not self]
        callbacks.callbacks = [*self._others, self]
        if self._resume_pending:
            self._restore_callbacks()

    def _stateful(self):
        """``{key: callback}`` of the fit's callbacks with get_state/set_state or variables."""
        out = {}
        for i, cb in enumerate(self._others):
            if hasattr(cb, "get_state") or hasattr(cb, "variables"):
                out[f"{i}:{type(cb).__name__}"] = cb
        return out

    def _restore_callbacks(self) -> None:
        saved = self._state.get("callbacks", {})
        for key, cb in self._stateful().items():
            if key in saved and hasattr(cb, "set_state"):
                cb.set_state(saved[key])
            arrays = load_arrays(self.checkpoint_dir / "callbacks" / key.replace(":", "-"))
            if arrays is not None and hasattr(cb, "variables"):
                assign_arrays(list(cb.variables), arrays, f"{key} callback")

    def on_train_begin(self, logs=None):
        if self.budget is not None:
            self.budget.begin()
            if self.write:  # the last epoch's checkpoint is always written: room for it
                self.budget.reserve(self._owner, self._prior_seconds())
        self._session_start = time.time()
        self.sessions += 1
        model = self.model  # on jax, reading it syncs the training state
        model._initial_epoch = None
        if not self._resume_pending:
            return
        self._resume_pending = False
        ckpt = self.checkpoint_dir
        assign_arrays(model.variables, load_arrays(ckpt / "model") or [], "model")
        optimizer = model.optimizer
        values = load_arrays(ckpt / "optimizer")
        if optimizer is not None and values:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            assign_arrays(optimizer.variables, values, "optimizer")
        names = self._state.get("random", [])
        arrays = load_arrays(ckpt / "random")
        if arrays is not None and len(arrays) == len(names):
            # Restored just before the first step: on torch, Keras's DataLoader draws a
            # seed from the global generator when the epoch's iterator is created, which
            # an uninterrupted run did before its first epoch.
            self._pending_random = dict(zip(names, arrays, strict=True))
        first = self.initial_epoch
        if self.stopped:
            first = max(first, int(self.params.get("epochs", first)))
        model._initial_epoch = first
        if self.verbose:
            print(f"RunCheckpoint: {self.initial_epoch} epoch(s) done, resuming from {ckpt}")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_train_batch_begin(self, batch, logs=None):
        if self._pending_random is not None:  # main thread, before the step
            set_random_state(self._pending_random)
            self._pending_random = None

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": int(epoch)}
        for key, value in (logs or {}).items():
            record[key] = _number(value)  # None: not finite, or not a number
        optimizer = self.model.optimizer
        if "learning_rate" not in record and optimizer is not None:
            record["learning_rate"] = _number(optimizer.learning_rate)
        record["seconds"] = time.time() - getattr(self, "_epoch_start", time.time())
        loss = _number((logs or {}).get("loss", 0.0))
        self.history.append(record)
        if loss is None:  # the training loss diverged: keep the last good checkpoint
            return
        best_changed = self._update_best(epoch, record)
        final = bool(self.model.stop_training) or epoch + 1 >= int(
            (self.params or {}).get("epochs") or 0)
        budgeted = self.write and self.budget is not None
        prior = self._prior_seconds() if budgeted else 0.0
        skip = budgeted and not self.budget.allow(self._owner, prior=prior, force=final)
        if budgeted and not final:  # room for the last one
            self.budget.reserve(self._owner, self.budget.expected(self._owner, prior))
        start = time.perf_counter()
        model_arrays = None if skip else self._save(epoch, best_changed)
        if best_changed and self.save_best:  # the snapshot's host copies, not a second copy
            self._best_arrays = model_arrays or [to_host(v.value) for v in self.model.variables]
            self._best_from_disk = False
            self._best_unsaved = skip
        if self.budget is not None and not skip:
            self.budget.charge(self._owner, time.perf_counter() - start)

    def _prior_seconds(self) -> float:
        """The expected cost of a first checkpoint: its bytes at PRIOR_BYTES_PER_SECOND."""
        variables = list(self.model.variables)
        if self.model.optimizer is not None:
            variables += list(self.model.optimizer.variables)
        size = sum(math.prod(v.shape) * _itemsize(v.dtype) for v in variables)
        return size / PRIOR_BYTES_PER_SECOND

    def on_train_end(self, logs=None):
        if not self.finish_in_background or self._write_error is not None:
            self.wait_for_writes()
        self.model._initial_epoch = None
        if self.budget is not None:
            self.budget.end()

    # ------------------------------------------------------------------- best
    def _direction(self, monitor: str) -> str:
        if self.mode != "auto":
            return self.mode
        name = monitor.lower()
        maximize = ("acc", "top", "auc", "precision", "recall", "f1")
        return "max" if any(k in name for k in maximize) else "min"

    def _update_best(self, epoch: int, record: dict) -> bool:
        monitor = self.monitor if self.monitor in record else "loss"
        value = record.get(monitor)
        if value is None:
            return False
        better = self.best is None or (
            value > self.best["value"] if self._direction(monitor) == "max"
            else value < self.best["value"])
        if not better:
            return False
        self.best = {"epoch": int(epoch), "monitor": monitor, "value": value, "logs": record}
        return True

    # ------------------------------------------------------------------ writes
    def _snapshot(self, kind: str, variables) -> list[tuple[np.ndarray, bool]]:
        """Host copies, each flagged as changed since the last checkpoint or not."""
        last = self._last.get(kind, [])
        values = []
        for i, v in enumerate(variables):
            a = to_host(v.value)
            prev = last[i] if i < len(last) else None
            if same_values(a, prev):
                values.append((prev, False))
            else:
                values.append((a, True))
        self._last[kind] = [a for a, _ in values]
        return values

    def _save(self, epoch: int, best_changed: bool) -> list[np.ndarray] | None:
        """Takes the host copies, starts the writer thread; returns the model's copies."""
        if not self.write:
            return None
        model = self.model
        arrays = {"model": self._snapshot("model", model.variables)}
        if model.optimizer is not None and model.optimizer.built:
            arrays["optimizer"] = self._snapshot("optimizer", model.optimizer.variables)
        states = {}
        for key, cb in self._stateful().items():
            if hasattr(cb, "get_state"):
                states[key] = cb.get_state()
            if hasattr(cb, "variables"):
                folder = "callbacks/" + key.replace(":", "-")
                arrays[folder] = self._snapshot(folder, list(cb.variables))
        rng = get_random_state()
        arrays["random"] = [(a, True) for a in rng.values()]
        now = time.time()
        state = {
            "random": list(rng),
            "epoch": int(epoch),
            "history": self.history,
            "best": self.best,
            "stopped": bool(model.stop_training),
            "sessions": self.sessions,
            "elapsed": self.elapsed + now - self._session_start,
            "callbacks": states,
        }
        state = json.loads(json.dumps(state, default=_jsonable))  # a copy, taken now
        best = "link" if not best_changed else ("write" if self.save_best else None)
        if best == "link" and self._best_unsaved and self._best_arrays is not None:
            arrays["best"] = [(a, True) for a in self._best_arrays]  # from a skipped epoch
            best = None
        self._best_unsaved = False
        self.wait_for_writes()
        self._writer = threading.Thread(
            target=self._write_guarded, args=(epoch, arrays, best, state),
            name="run-checkpoint-writer", daemon=False)  # a normal exit waits for it
        _WRITERS[os.fspath(self.directory.resolve())] = self._writer
        self._writer.start()
        return [a for a, _ in arrays["model"]]

    def _write_guarded(self, *args) -> None:
        start = time.thread_time()
        try:
            self._write(*args)
        except BaseException as err:  # raised again by wait_for_writes, in the main thread
            self._write_error = err
            warnings.warn(f"RunCheckpoint: could not write the checkpoint of epoch {args[0]} in "
                          f"{self.directory}: {err!r}", RuntimeWarning, stacklevel=1)
        finally:
            if self.budget is not None:
                self.budget.charge(self._owner, time.thread_time() - start)

    def _write(self, epoch: int, arrays: dict, best: str | None, state: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".epoch-{epoch:04d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        prev = latest_checkpoint(self.directory)
        for kind, values in arrays.items():
            (tmp / kind).parent.mkdir(parents=True, exist_ok=True)
            save_arrays(tmp / kind, values, prev / kind if prev is not None else None)
        if best == "write":
            link_arrays(tmp / "model", tmp / "best")
        elif best == "link" and prev is not None and (prev / "best").is_dir():
            link_arrays(prev / "best", tmp / "best")
        self._write_state(tmp, state)
        final = self.directory / f"epoch-{epoch:04d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_folder(self.directory)  # the rename itself is on disk
        for old in self.directory.glob("epoch-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def _write_state(self, folder: Path, state: dict) -> None:
        """The last file of a checkpoint: its presence marks the folder complete."""
        atomic_json(folder / "state.json", state)

    def wait_for_writes(self) -> None:
        """Blocks until the last checkpoint is on disk.

        Raises:
            OSError: if writing it failed (naming the folder and the cause).
        """
        if self._writer is not None:
            self._writer.join()
            key = os.fspath(self.directory.resolve())
            if _WRITERS.get(key) is self._writer:
                del _WRITERS[key]
            self._writer = None
        if self._write_error is not None:
            err, self._write_error = self._write_error, None
            raise OSError(f"Could not write the checkpoint in {self.directory}: {err}") from err

    def get_config(self) -> dict:
        return {
            "directory": os.fspath(self.directory),
            "monitor": self.monitor,
            "mode": self.mode,
            "save_best": self.save_best,
            "write": self.write,
            "verbose": self.verbose,
            "finish_in_background": self.finish_in_background,
        }


def _itemsize(dtype) -> int:
    try:
        return np.dtype(keras.backend.standardize_dtype(dtype)).itemsize
    except TypeError:  # bfloat16 and others NumPy does not know: 2 bytes or fewer
        return 2


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
