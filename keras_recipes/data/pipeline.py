"""The shared shape of every loader's result: splits as tf.data pipelines or NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DatasetSplits", "to_dataset"]


def to_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = True,
):
    """Wraps NumPy arrays in a batched, prefetched ``tf.data.Dataset`` of ``(x, y)``.

    ``tf.data`` pipelines feed ``model.fit`` under every Keras backend. Shuffling
    is reshuffled each epoch and reproducible for a given ``seed``.

    Example:

    >>> import numpy as np
    >>> ds = to_dataset(np.zeros((5, 2), "float32"), np.arange(5), batch_size=2)
    >>> [int(b[0].shape[0]) for b in ds]
    [2, 2, 1]
    """
    if int(batch_size) < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an int >= 1. "
            f"Received: batch_size={batch_size}"
        )
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)


@dataclass
class DatasetSplits:
    """Train/validation/test splits of one data set.

    Attributes:
        train, validation, test: ``tf.data.Dataset`` of ``(images, labels)``
            batches, or ``(x, y)`` NumPy tuples when the loader was asked for
            ``format="numpy"``. ``test`` may be ``None`` when the data set has none.
        class_names: the name of each class, index = integer label.
        source: where the data came from (a path, a URL, or a description).
    """

    train: object
    validation: object
    test: object
    class_names: list[str]
    source: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
