"""The interface of every data-parallel engine, and what all of them share."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

__all__ = ["DistributeContext"]


def _is_array_data(x) -> bool:
    """True for NumPy/backend arrays or flat structures of them (not datasets)."""
    leaves = keras.tree.flatten(x) if isinstance(x, (list, tuple, dict)) else [x]
    return bool(leaves) and all(
        hasattr(a, "shape") and hasattr(a, "__len__") and len(getattr(a, "shape", ())) > 0
        for a in leaves
    )


def _num_rows(x) -> int:
    leaves = keras.tree.flatten(x) if isinstance(x, (list, tuple, dict)) else [x]
    return int(leaves[0].shape[0])


def check_even_split(x, batch_size, num_replicas: int, argument: str = "x") -> None:
    """Raises unless every global batch of array data splits evenly over replicas.

    Engines that shard a batch by device (``tf.distribute``, JAX ``DataParallel``)
    need every global batch, the last partial one included, to be a multiple of
    the replica count; otherwise replicas weigh unequal parts equally (TF) or
    the batch cannot be sharded at all (JAX). Data sets are not inspected.
    """
    if num_replicas <= 1 or x is None or not _is_array_data(x):
        return
    n = _num_rows(x)
    batch_size = 32 if batch_size is None else int(batch_size)
    last = n % batch_size
    if batch_size % num_replicas or last % num_replicas:
        raise ValueError(
            f"Invalid value for argument `batch_size`. Expected a global batch size that "
            f"splits evenly over {num_replicas} replicas, including the last partial batch "
            f"of `{argument}`. Received: batch_size={batch_size} for {n} rows (last batch: "
            f"{last or batch_size} rows). Use a batch size that is a multiple of "
            f"{num_replicas} and drop or pad the remainder (e.g. "
            f"`{argument}[:{n - last}]`)."
        )


class _ReplicaStateSync(keras.callbacks.Callback):
    """Averages replica-local states (batch-norm statistics) before they are read.

    Runs before each validation (``on_test_begin``), at each epoch end (before
    the other callbacks read the weights) and at the end of training.
    """

    def __init__(self, context: DistributeContext):
        super().__init__()
        self._context = context

    def on_test_begin(self, logs=None):
        self._context.sync_replica_states(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self._context.sync_replica_states(self.model)

    def on_train_end(self, logs=None):
        self._context.sync_replica_states(self.model)


class DistributeContext:
    """Data-parallel training on one backend's own engine: the common interface.

    A context is returned by ``keras_recipes.distribute.setup(kind)``; one
    subclass per engine implements it (``tf.distribute`` strategies, Keras's
    ``DataParallel`` on JAX, torch ``DistributedDataParallel``, or a single
    device). Code written against this interface runs unchanged on each:

    1. build and compile the model inside ``with context.scope():``;
    2. train with ``context.fit(model, x, ..., batch_size=GLOBAL_BATCH)``: the
       batch size is the **global** batch, split evenly over the replicas;
       ``callbacks`` run in every process (they must decide identically, e.g.
       early stopping), ``chief_callbacks`` only in the chief process (writers:
       TensorBoard, gradient histograms, checkpoints), so there is one writer;
    3. save or report from the chief only (``context.is_chief``).

    A callback that creates variables while training (a new optimizer when
    layers are unfrozen) must create them in ``scope_for(model)``
    (``UnfreezeSchedule`` does): the strategy's scope on TensorFlow (``fit``
    itself runs outside it, as Keras 3's own ``fit`` does: reading a mirrored
    variable with ``keras.ops.convert_to_numpy`` fails inside it), the
    distribution's scope on JAX (``fit`` runs inside it, so the data are
    sharded). Replica-local states that no engine synchronizes (batch
    norm moving statistics under ``tf.distribute`` and torch DDP) are averaged
    across replicas before each validation and at each epoch end; for moving
    averages this equals averaging them at every step.

    Example:

    >>> import keras, numpy as np
    >>> from keras_recipes.distribute import setup
    >>> context = setup("none")
    >>> with context.scope():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer="sgd", loss="mse")
    >>> history = context.fit(model, np.ones((4, 2)), np.ones((4, 1)), batch_size=2, verbose=0)
    >>> context.num_replicas, context.is_chief, len(history.history["loss"])
    (1, True, 1)
    >>> context.max_replica_difference(model)
    0.0

    Attributes:
        kind: the engine's name (``"none"``, ``"mirrored"``, ``"multi_worker"``,
            ``"data_parallel"`` or ``"ddp"``).
        backend: the Keras backend it runs on.
    """

    kind: str = "none"

    def __init__(self) -> None:
        self.backend = keras.backend.backend()

    # --- topology -----------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        """Model replicas that train in lockstep (devices, over all processes)."""
        return 1

    @property
    def num_processes(self) -> int:
        """Processes (hosts or launched workers) taking part."""
        return 1

    @property
    def process_index(self) -> int:
        """This process's index, ``0 <= process_index < num_processes``."""
        return 0

    @property
    def is_chief(self) -> bool:
        """True in the one process that writes logs, checkpoints and reports."""
        return self.process_index == 0

    @property
    def predict_gathers(self) -> bool:
        """True when ``model.predict`` in this engine's scope returns every process's outputs."""
        return True

    def global_batch_size(self, per_replica_batch_size: int) -> int:
        """The global batch that gives each replica ``per_replica_batch_size`` rows."""
        if int(per_replica_batch_size) < 1:
            raise ValueError(
                "Invalid value for argument `per_replica_batch_size`. Expected an int "
                f">= 1. Received: per_replica_batch_size={per_replica_batch_size}"
            )
        return int(per_replica_batch_size) * self.num_replicas

    def scope(self) -> contextlib.AbstractContextManager:
        """Context in which models, optimizers and their variables are created."""
        return contextlib.nullcontext()

    def shutdown(self) -> None:
        """Releases what the engine holds (torch: leaves the process group)."""

    def _fit_scope(self) -> contextlib.AbstractContextManager:
        """Context in which ``fit`` and ``evaluate`` run."""
        return self.scope()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} kind={self.kind!r} backend={self.backend!r} "
            f"num_replicas={self.num_replicas} num_processes={self.num_processes} "
            f"process_index={self.process_index}>"
        )

    # --- training -------------------------------------------------------------
    def fit(
        self,
        model: keras.Model,
        x=None,
        y=None,
        *,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose: str | int = "auto",
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        chief_callbacks: Sequence[keras.callbacks.Callback] | None = None,
        validation_data=None,
        shuffle: bool = True,
        sample_weight=None,
        **kwargs,
    ) -> keras.callbacks.History:
        """Trains ``model`` data-parallel; the arguments of ``keras.Model.fit``.

        Args:
            model: a compiled ``keras.Model`` created inside ``scope()``.
            x, y, sample_weight: the **global** training data, as for
                ``Model.fit``: arrays, a ``tf.data.Dataset`` or a
                ``keras.utils.PyDataset`` of global batches.
            batch_size: the global batch size for array data (split evenly).
            epochs, validation_data, shuffle, **kwargs: as for ``Model.fit``.
            verbose: progress output; forced to 0 outside the chief process.
            callbacks: callbacks run in every process.
            chief_callbacks: callbacks run in the chief process only.

        Returns:
            The ``History`` of the run (identical in every process).

        Raises:
            ValueError: if the model is not compiled, or the engine cannot split
                the global batches evenly (see each engine).
        """
        if not getattr(model, "compiled", False):
            raise ValueError(
                "Invalid value for argument `model`. Expected a compiled model (call "
                f"`model.compile(...)` inside `context.scope()`). Received: model="
                f"{model.name!r} (not compiled)"
            )
        verbose = verbose if self.is_chief else 0
        with self._fit_scope(), self._chief_callbacks_here(list(chief_callbacks or [])) as chief:
            callbacks = [_ReplicaStateSync(self), *(callbacks or []), *chief]
            return self._fit(
                model, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                callbacks=callbacks, validation_data=validation_data, shuffle=shuffle,
                sample_weight=sample_weight, **kwargs,
            )

    def evaluate(
        self,
        model: keras.Model,
        x=None,
        y=None,
        *,
        batch_size: int | None = None,
        verbose: str | int = "auto",
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        sample_weight=None,
        **kwargs,
    ) -> dict[str, float]:
        """Evaluates ``model`` on the global data; metrics over all of it.

        Returns:
            ``{metric name: value}``, identical in every process.
        """
        callbacks = [_ReplicaStateSync(self), *(callbacks or [])]
        verbose = verbose if self.is_chief else 0
        with self._fit_scope():
            return self._evaluate(
                model, x, y, batch_size=batch_size, verbose=verbose, callbacks=callbacks,
                sample_weight=sample_weight, **kwargs,
            )

    def save_model(self, model: keras.Model, path, check_x=None) -> np.ndarray | None:
        """Saves `model` from the chief alone, atomically; returns the saved model's outputs.

        The chief writes a temporary file beside `path` and renames it, so a crash never
        leaves a half-written `path`. With `check_x`, call it in every process (a gathering
        ``predict`` needs all of them): the chief gets ``predict(check_x)`` of the saved
        model (read back from the file where ``predict`` cannot gather), to store beside it
        and check a reload against; the other processes get ``None``.

        Example:

        >>> import keras, numpy as np, tempfile
        >>> from keras_recipes.distribute import setup
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> path = tempfile.mkdtemp() + "/best.keras"
        >>> out = setup("none").save_model(model, path, check_x=np.ones((3, 2)))
        >>> bool(np.allclose(out, keras.saving.load_model(path).predict(np.ones((3, 2)),
        ...                                                              verbose=0)))
        True

        Args:
            model: the model to save.
            path: a ``.keras`` file.
            check_x: inputs to compute the saved model's outputs on, or ``None``.

        Returns:
            The outputs on `check_x` (NumPy) in the chief, else ``None``.
        """
        path = Path(path)
        if self.is_chief:
            tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
            model.save(tmp)
            os.replace(tmp, path)
        if check_x is None:
            return None
        if self.predict_gathers:  # every process takes part in a gathering predict
            out = model.predict(check_x, verbose=0)
        elif self.is_chief:
            out = keras.saving.load_model(path).predict(check_x, verbose=0)
        else:
            return None
        return np.asarray(keras.ops.convert_to_numpy(out)) if self.is_chief else None

    @contextlib.contextmanager
    def _chief_callbacks_here(self, chief_callbacks: list) -> Iterator[list]:
        """The chief callbacks this process runs during one ``fit``: all on the chief, else none."""
        yield chief_callbacks if self.is_chief else []

    def _fit(self, model, x, y, **kwargs):
        return model.fit(x, y, **kwargs)

    def _evaluate(self, model, x, y, **kwargs):
        return model.evaluate(x, y, return_dict=True, **kwargs)

    # --- replica state ----------------------------------------------------------
    def replica_values(self, variable) -> Iterator[np.ndarray]:
        """The value of ``variable`` held by each replica that this process sees."""
        yield np.asarray(keras.ops.convert_to_numpy(variable.value))

    def max_replica_difference(self, model: keras.Model) -> float:
        """Largest absolute difference of any weight between any two replicas.

        ``0.0`` means every replica holds bitwise the same weights (trainable
        and non-trainable, e.g. batch-norm statistics).
        """
        worst = 0.0
        for variable in model.weights:
            values = [v.astype(np.float64) for v in self.replica_values(variable)]
            for v in values[1:]:
                worst = max(worst, float(np.max(np.abs(v - values[0]), initial=0.0)))
        return worst

    def sync_replica_states(self, model: keras.Model) -> int:
        """Averages non-trainable float weights that differ across replicas.

        Elements that are equal on all replicas are left bitwise unchanged
        (frozen weights); elements that replicas updated independently (batch
        norm moving statistics) are replaced by their mean over replicas.

        Returns:
            The number of elements that differed (0 where nothing had to be done).
        """
        return 0
