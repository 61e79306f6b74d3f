"""EpochScalars: each epoch's logs as TensorBoard scalars, without TensorFlow."""

from __future__ import annotations

import os

import keras

from keras_recipes.callbacks.event_writer import EventWriter
from keras_recipes.callbacks.log_values import log_scalar

__all__ = ["EpochScalars"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class EpochScalars(keras.callbacks.Callback):
    """Writes each epoch's logs to TensorBoard in ``keras.callbacks.TensorBoard``'s layout.

    Tags and folders are those of Keras's epoch scalars (``log_dir/train/epoch_loss``,
    ``log_dir/validation/epoch_loss`` for ``val_loss``, ...; as Keras, the optimizer's
    learning rate as ``train/epoch_learning_rate``), written with the package's
    TensorFlow-free ``EventWriter``, so a torch or jax run does not import TensorFlow
    (which ``keras.callbacks.TensorBoard`` does, adding seconds to every run).

    Example:

    >>> import tempfile, numpy as np, keras
    >>> from keras_recipes.callbacks.event_writer import read_scalars
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    >>> _ = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
    ...               callbacks=[EpochScalars(log_dir)])
    >>> [step for step, _ in read_scalars(log_dir + "/validation")["epoch_loss"]]
    [0, 1]

    Args:
        log_dir: the run's TensorBoard folder.
    """

    def __init__(self, log_dir: str | os.PathLike):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.writers: dict[str, EventWriter] = {}

    def _writer(self, split: str) -> EventWriter:
        if split not in self.writers:
            self.writers[split] = EventWriter(os.path.join(self.log_dir, split))
        return self.writers[split]

    def on_epoch_end(self, epoch, logs=None):
        logs = {**_learning_rates(getattr(self, "_model", None)), **(logs or {})}
        for key, value in logs.items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            value = log_scalar(value)
            if value is None:  # not one number: a string, several values
                continue
            self._writer(split).scalar(f"epoch_{name}", value, epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}

    def get_config(self) -> dict:
        return {"log_dir": self.log_dir}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _learning_rates(model) -> dict[str, float]:
    """The optimizer's learning rate(s), named as ``keras.callbacks.TensorBoard`` logs them."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if hasattr(optimizer, "optimizers"):
        return {f"learning_rate_{o.name}": float(keras.ops.convert_to_numpy(o.learning_rate))
                for o in optimizer.optimizers}
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return {"learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate))}
    return {}
