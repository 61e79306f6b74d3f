"""The shared shape of every loader's result: splits as tf.data pipelines or NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DatasetSplits", "epoch_batches", "to_dataset"]


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


def epoch_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int | None = 0,
    initial_epoch: int = 0,
    epochs: int = 1,
    transform=None,
    prefetch: bool = True,
):
    """Batches of NumPy arrays for ``fit``, without TensorFlow: a ``keras.utils.PyDataset``.

    With a `seed`, the batches of epochs ``[initial_epoch, epochs)`` come one epoch after the
    other, epoch ``e`` in the order ``np.random.default_rng([seed, e]).permutation(len(x))``:
    a pure function of ``(seed, e)``, so a run resumed at ``initial_epoch`` sees exactly the
    batches an uninterrupted run would, whatever the timing of the data thread, and fit with
    ``steps_per_epoch=ceil(len(x) / batch_size)`` (the dataset then spans all the epochs; Keras
    keeps its iterator between epochs). With ``seed=None`` the order is the arrays' own and
    there is one pass (``initial_epoch`` and `epochs` are ignored): validation and test data.

    Batch ``i + 1`` is prepared in a background thread while the model trains on batch ``i``
    (``prefetch=True``); the order never depends on that thread. `transform` (``f(x_batch,
    y_batch) -> (x_batch, y_batch)``, called in batch order) adds label encoding or
    augmentation. Pass ``shuffle=False`` to ``fit``: with its default ``shuffle=True`` Keras
    permutes a ``PyDataset``'s batches with Python's global ``random``.

    Example:

    >>> x, y = np.arange(5, dtype="float32")[:, None], np.arange(5)
    >>> ds = epoch_batches(x, y, 2, seed=0, epochs=2)
    >>> len(ds), [[int(v) for v in ds[i][1]] for i in range(len(ds))]
    (6, [[2, 4], [3, 0], [1], [1, 4], [3, 0], [2]])
    >>> [int(v) for v in np.random.default_rng([0, 1]).permutation(5)]
    [1, 4, 3, 0, 2]
    >>> resumed = epoch_batches(x, y, 2, seed=0, initial_epoch=1, epochs=2)
    >>> [[int(v) for v in resumed[i][1]] for i in range(len(resumed))]
    [[1, 4], [3, 0], [2]]
    >>> [int(b[1][0]) for b in epoch_batches(x, y, 2, seed=None)]
    [0, 2, 4]

    Args:
        x: inputs, first dimension = examples.
        y: targets, same first dimension.
        batch_size: examples per batch (an epoch's last batch may be smaller).
        seed: the order's seed; ``None``: the arrays' order, one pass.
        initial_epoch: the first epoch the dataset holds (a resumed run's).
        epochs: one past the last epoch it holds (``fit``'s `epochs`).
        transform: ``f(x_batch, y_batch) -> (x_batch, y_batch)``, or ``None``.
        prefetch: prepare the next batch in a background thread.

    Returns:
        A ``keras.utils.PyDataset`` of ``(x_batch, y_batch)`` tuples; ``len`` is the number
        of batches in all its epochs together.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(
            "Invalid value for argument `y`. Expected as many examples as `x` "
            f"({n}). Received: len(y)={len(y)}"
        )
    if n < 1:
        raise ValueError(f"Invalid value for argument `x`. Expected >= 1 example. Received: {n}")
    if int(batch_size) < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an int >= 1. "
            f"Received: batch_size={batch_size}"
        )
    if seed is not None and not 0 <= int(initial_epoch) < max(int(epochs), 1) + 1:
        raise ValueError(
            "Invalid value for argument `initial_epoch`. Expected 0 <= initial_epoch <= "
            f"max(epochs, 1). Received: initial_epoch={initial_epoch}, epochs={epochs}"
        )
    return _array_batches_class()(x, y, int(batch_size), seed, int(initial_epoch),
                                  int(epochs), transform, prefetch)


def _array_batches_class():
    global _ARRAY_BATCHES
    if _ARRAY_BATCHES is not None:
        return _ARRAY_BATCHES
    import concurrent.futures
    import math

    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self, x, y, batch_size, seed, initial_epoch, epochs, transform, prefetch):
            super().__init__()  # one worker: Keras reads the batches in order
            self.x, self.y, self.batch_size = x, y, batch_size
            self.seed, self.transform = seed, transform
            self.steps = math.ceil(len(x) / batch_size)
            if seed is None:
                self.epochs = [None]
            else:  # as the recipes' tf.data pipeline: at least one epoch
                self.epochs = list(range(initial_epoch, max(epochs, initial_epoch + 1)))
            self._order_of = (None, None)  # (epoch, its permutation): the last one drawn
            self._pool = (concurrent.futures.ThreadPoolExecutor(1, "epoch_batches")
                          if prefetch else None)
            self._ahead: tuple[int, concurrent.futures.Future] | None = None

        def __len__(self) -> int:
            return self.steps * len(self.epochs)

        def _order(self, epoch):
            if epoch is None:
                return None
            cached_epoch, order = self._order_of  # one read: the data thread may replace it
            if cached_epoch != epoch:
                order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
                self._order_of = (epoch, order)
            return order

        def _batch(self, index: int):
            epoch = self.epochs[index // self.steps]
            j = index % self.steps
            order = self._order(epoch)
            part = slice(j * self.batch_size, (j + 1) * self.batch_size)
            if order is None:
                xb, yb = self.x[part], self.y[part]
            else:
                idx = order[part]
                xb, yb = self.x[idx], self.y[idx]
            if self.transform is not None:
                xb, yb = self.transform(xb, yb)
            return xb, yb

        def __getitem__(self, index: int):
            if not 0 <= index < len(self):
                raise IndexError(f"batch {index} of {len(self)}")
            if self._pool is None:
                return self._batch(index)
            ahead, self._ahead = self._ahead, None
            # The transform runs in batch order: the prepared batch is taken (or awaited)
            # before another one is computed.
            if ahead is not None and ahead[0] == index:
                batch = ahead[1].result()
            else:
                if ahead is not None:
                    ahead[1].result()
                batch = self._batch(index)
            if index + 1 < len(self):
                self._ahead = (index + 1, self._pool.submit(self._batch, index + 1))
            return batch

    _ARRAY_BATCHES = ArrayBatches
    return ArrayBatches


_ARRAY_BATCHES = None


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
