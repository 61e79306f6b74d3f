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
        data: ``(x, y)`` or ``(x, y, sample_weight)`` arrays, a ``tf.data.Dataset`` or
            a ``keras.utils.PyDataset``.
        epochs: the 0-based epochs after which to evaluate (ints).
        prefix: put before each metric name in the logs.
        on_stop: also evaluate the epoch where training is stopped.

    Attributes:
        results: ``{epoch: {metric: value}}`` of every evaluation.

    Raises:
        ValueError: for a tuple `data` of other than 2 or 3 arrays, or `epochs` that
            are not ints >= 0.
    """

    def __init__(self, data, epochs: Iterable[int], prefix: str = "test_", on_stop: bool = True):
        super().__init__()
        if isinstance(data, list):
            data = tuple(data)
        if isinstance(data, tuple) and len(data) not in (2, 3):
            raise ValueError(
                "Invalid value for argument `data`. Expected (x, y), (x, y, sample_weight), a "
                f"tf.data.Dataset or a keras.utils.PyDataset. Received: a tuple of {len(data)}"
            )
        try:
            chosen = list(epochs)
        except TypeError:
            chosen = [None]
        if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in chosen):
            raise ValueError(
                "Invalid value for argument `epochs`. Expected an iterable of ints >= 0 "
                f"(0-based epochs). Received: epochs={epochs!r}"
            )
        self.data = data
        self.epochs = set(chosen)
        self.prefix = str(prefix)
        self.on_stop = bool(on_stop)
        self.results: dict[int, dict[str, float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch not in self.epochs and not (self.on_stop and self.model.stop_training):
            return
        if isinstance(self.data, tuple):
            x, y, *weights = self.data
            out = self.model.evaluate(x, y, sample_weight=weights[0] if weights else None,
                                      verbose=0, return_dict=True)
        else:
            out = self.model.evaluate(self.data, verbose=0, return_dict=True)
        scores = {k: float(v) for k, v in out.items()}
        self.results[int(epoch)] = scores
        if logs is not None:
            logs.update({self.prefix + k: v for k, v in scores.items()})

    def get_config(self) -> dict:
        """The settings; the data are not part of the config."""
        return {"epochs": sorted(self.epochs), "prefix": self.prefix, "on_stop": self.on_stop}
