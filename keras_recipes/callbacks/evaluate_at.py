"""EvaluateAt: scores held-out data at chosen epochs and adds them to the epoch's logs."""

from __future__ import annotations

from collections.abc import Iterable

import keras

__all__ = ["EvaluateAt"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class EvaluateAt(keras.callbacks.Callback):
    """Evaluates `data` at the end of chosen epochs and adds ``<prefix><metric>`` to the logs.

    A second held-out set (a test split beside the validation split) scored at the
    moments that matter, the end of each training phase and the epoch where
    training stops, without a full evaluation every epoch. The scores join the
    epoch's logs, so ``History``, ``CSVLogger``, TensorBoard writers and
    :class:`RunCheckpoint` that run after it see them. Place it after the callbacks
    that may stop training (``EarlyStopping``): with ``on_stop=True`` the epoch where
    ``model.stop_training`` became true is scored too.

    Example:

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    >>> history = model.fit(x, y, epochs=3, verbose=0,
    ...                     callbacks=[EvaluateAt((x, y), epochs=[1])])
    >>> len(history.history["test_loss"])  # epoch 1 only
    1

    Args:
        data: ``(x, y)`` arrays, a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``.
        epochs: the 0-based epochs after which to evaluate.
        prefix: put before each metric name in the logs.
        on_stop: also evaluate the epoch where training is stopped.

    Attributes:
        results: ``{epoch: {metric: value}}`` of every evaluation.
    """

    def __init__(self, data, epochs: Iterable[int], prefix: str = "test_", on_stop: bool = True):
        super().__init__()
        self.data = data
        self.epochs = {int(e) for e in epochs}
        self.prefix = str(prefix)
        self.on_stop = bool(on_stop)
        self.results: dict[int, dict[str, float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch not in self.epochs and not (self.on_stop and self.model.stop_training):
            return
        if isinstance(self.data, tuple):
            out = self.model.evaluate(*self.data, verbose=0, return_dict=True)
        else:
            out = self.model.evaluate(self.data, verbose=0, return_dict=True)
        scores = {k: float(v) for k, v in out.items()}
        self.results[int(epoch)] = scores
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in scores.items()})

    def get_config(self) -> dict:
        """The settings; the data are not part of the config."""
        return {"epochs": sorted(self.epochs), "prefix": self.prefix, "on_stop": self.on_stop}
