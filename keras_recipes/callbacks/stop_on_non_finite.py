"""StopOnNonFinite: ``keras.callbacks.TerminateOnNaN`` that keeps Keras's asynchronous dispatch."""

from __future__ import annotations

import math
import threading

import keras
import numpy as np

__all__ = ["StopOnNonFinite"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training when the training loss becomes NaN or infinite, and says where.

    Like ``keras.callbacks.TerminateOnNaN``, but ``async_safe``: on torch and jax Keras
    runs its per-batch hook in a worker thread and keeps dispatching training steps,
    where ``TerminateOnNaN`` makes Keras wait for every step's loss before dispatching
    the next. Training therefore stops at most a few steps after the batch whose loss
    was not finite; that first batch is the one reported (:attr:`nonfinite`). The hook
    sets the stop flag on the raw model: on jax, reading ``Callback.model`` from the
    worker thread would sync the training state while the next step donates its
    buffers.

    Example:

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    >>> x = np.full((8, 1), 1e3, "float32")
    >>> stop = StopOnNonFinite(verbose=0)
    >>> history = model.fit(x, x, batch_size=2, epochs=5, verbose=0, callbacks=[stop])
    >>> stop.nonfinite["epoch"], len(history.history["loss"])
    (0, 1)

    Args:
        monitor: the per-batch log to check (``"loss"``).
        verbose: 1 prints one line when training stops.

    Attributes:
        nonfinite: ``{"epoch": e, "batch": b}`` of the first non-finite batch (0-based),
            or ``None``.
    """

    async_safe = True

    def __init__(self, monitor: str = "loss", verbose: int = 1):
        super().__init__()
        self.monitor = str(monitor)
        self.verbose = int(verbose)
        self.nonfinite: dict | None = None
        self._epoch = 0
        self._lock = threading.Lock()  # several batches' hooks may run at once

    def on_train_begin(self, logs=None):
        self.nonfinite = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        finite = math.isfinite(float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0]))
        if finite:
            return
        with self._lock:
            if self.nonfinite is None or (self._epoch, batch) < (
                    self.nonfinite["epoch"], self.nonfinite["batch"]):
                self.nonfinite = {"epoch": self._epoch, "batch": int(batch)}
            self._model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nonfinite is not None and self.verbose:
            where = self.nonfinite
            print(f"\nStopOnNonFinite: the {self.monitor} became non-finite at epoch "
                  f"{where['epoch'] + 1}, batch {where['batch'] + 1}: training stopped.")

    def get_config(self) -> dict:
        return {"monitor": self.monitor, "verbose": self.verbose}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
