"""The shared shape of every loader's result: splits as tf.data pipelines or NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DatasetSplits",
    "FitInputs",
    "epoch_batches",
    "first_examples",
    "fit_inputs",
    "limit_splits",
    "map_batches",
    "to_dataset",
]


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
    x,
    y,
    batch_size: int,
    *,
    sample_weight=None,
    seed: int | None = 0,
    initial_epoch: int = 0,
    epochs: int = 1,
    transform=None,
    prefetch: bool = True,
    one_hot: int | None = None,
    augment=None,
    engine: str = "numpy",
):
    """Seeded, resumable batches of in-memory arrays for ``fit`` (NumPy or ``tf.data``).

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

    ``engine="tf.data"`` gives the same batches, in the same order, as a ``tf.data``
    pipeline (prepared in TensorFlow's threads; it feeds ``fit`` under every backend);
    ``"auto"`` picks it where TensorFlow is installed, else the NumPy ``PyDataset``.
    `one_hot` and `augment` work with both engines: labels made one-hot over `one_hot`
    classes, and ``augment(images) -> images`` (for example Keras preprocessing layers
    called with ``training=True``) applied to training batches.

    `x` and `y` may be structures (list, tuple, dict) of arrays with the same first
    dimension (``tf.data`` gives lists back as tuples); ``y=None`` gives ``(x_batch,)``
    batches, and `sample_weight` (an array, or ``None``) gives ``(x_batch, y_batch,
    sw_batch)``. The rows of every array are taken in the same order.

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
    >>> xb, yb, wb = epoch_batches({"a": x, "b": -x}, y, 2, sample_weight=y / 4, seed=0)[0]
    >>> sorted(xb), yb.tolist(), wb.tolist()
    (['a', 'b'], [2, 4], [0.5, 1.0])
    >>> [len(b) for b in epoch_batches(x, None, 2, seed=None)]
    [1, 1, 1]

    Args:
        x: inputs, first dimension = examples: an array or a structure of arrays.
        y: targets, same first dimension (an array, a structure of arrays), or ``None``.
        batch_size: examples per batch (an epoch's last batch may be smaller).
        sample_weight: per-example weights, same first dimension, or ``None``.
        seed: the order's seed; ``None``: the arrays' order, one pass.
        initial_epoch: the first epoch the dataset holds (a resumed run's).
        epochs: one past the last epoch it holds (``fit``'s `epochs`).
        transform: ``f(x_batch, y_batch) -> (x_batch, y_batch)``, or ``None`` (NumPy
            engine only; sample weights pass through it unchanged).
        prefetch: prepare the next batch in a background thread.
        one_hot: the number of classes to make labels one-hot over, or ``None``.
        augment: ``f(images) -> images`` for the training batches (`seed` given), or
            ``None``.
        engine: ``"numpy"``, ``"tf.data"`` or ``"auto"``.

    Returns:
        A ``keras.utils.PyDataset`` of ``(x_batch, y_batch)`` tuples (``(x_batch,)`` when
        `y` is ``None``, ``(x_batch, y_batch, sw_batch)`` with `sample_weight`; ``len``: the
        batches of all its epochs together), or a ``tf.data.Dataset`` of them.
    """
    if engine not in ("numpy", "tf.data", "auto"):
        raise ValueError(
            "Invalid value for argument `engine`. Expected 'numpy', 'tf.data' or 'auto'. "
            f"Received: engine={engine!r}"
        )
    if engine == "auto":
        import importlib.util

        engine = "tf.data" if importlib.util.find_spec("tensorflow") else "numpy"
    n = _check_rows(x, y, sample_weight)
    if one_hot and y is None:
        raise ValueError(
            "Invalid value for argument `one_hot`. Expected None when `y` is None. "
            f"Received: one_hot={one_hot!r}"
        )
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
    if engine == "tf.data":
        if transform is not None:
            raise ValueError(
                "Invalid value for argument `transform`. Expected None with engine='tf.data' "
                "(use `one_hot` and `augment`). Received: a callable"
            )
        return _tf_epoch_batches((x, y, sample_weight), n, int(batch_size), seed,
                                 int(initial_epoch), int(epochs), one_hot, augment)
    if one_hot or augment is not None:
        transform = _numpy_transform(transform, one_hot, augment if seed is not None else None)
    return _array_batches_class()((x, y, sample_weight), n, int(batch_size), seed,
                                  int(initial_epoch), int(epochs), transform, prefetch)


def _check_rows(x, y, sample_weight) -> int:
    """The number of examples of `x`; raises unless every array of the data has as many."""
    import keras

    def lengths(part):
        return [len(a) for a in keras.tree.flatten(part) if a is not None]

    xs = lengths(x)
    if not xs:
        raise ValueError(
            "Invalid value for argument `x`. Expected an array or a structure of arrays. "
            f"Received: x={x!r}"
        )
    if len(set(xs)) != 1:
        raise ValueError(
            "Invalid value for argument `x`. Expected arrays with the same number of "
            f"examples. Received lengths: {xs}"
        )
    n = xs[0]
    for name, part in (("y", y), ("sample_weight", sample_weight)):
        if part is None:
            continue
        rows = lengths(part)
        if not rows or any(r != n for r in rows):
            got = rows[0] if len(rows) == 1 else rows
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected as many examples as `x` "
                f"({n}). Received: len({name})={got}"
            )
    if n < 1:
        raise ValueError(f"Invalid value for argument `x`. Expected >= 1 example. Received: {n}")
    return n


def _numpy_transform(transform, one_hot, augment):
    from keras_recipes.backend import to_host

    eye = np.eye(one_hot, dtype="float32") if one_hot else None

    def apply(xb, yb):
        if transform is not None:
            xb, yb = transform(xb, yb)
        if augment is not None:
            xb = to_host(augment(xb)).astype(xb.dtype, copy=False)
        if eye is not None:
            import keras

            yb = keras.tree.map_structure(lambda t: eye[np.asarray(t).astype("int64")], yb)
        return xb, yb

    return apply


def _tf_epoch_batches(data, n, batch_size, seed, initial_epoch, epochs, one_hot, augment):
    import keras
    import tensorflow as tf

    data = tuple(keras.tree.lists_to_tuples(part) for part in data)
    if data[2] is None:
        data = data[:2] if data[1] is not None else data[:1]
    if seed is None:
        ds = tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
        return map_batches(ds, one_hot=one_hot).cache().prefetch(tf.data.AUTOTUNE)
    perms = np.stack([np.random.default_rng([seed, e]).permutation(n)
                      for e in range(max(epochs, initial_epoch + 1))]).astype("int64")
    consts = tf.nest.map_structure(lambda a: None if a is None else tf.constant(a), data)
    table = tf.constant(perms)
    ds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch + 1)).flat_map(
        lambda e: tf.data.Dataset.from_tensor_slices(tf.gather(table, e)).batch(batch_size))
    ds = ds.map(lambda idx: tf.nest.map_structure(
        lambda c: None if c is None else tf.gather(c, idx), consts))
    return map_batches(ds, one_hot=one_hot, augment=augment).prefetch(tf.data.AUTOTUNE)


def map_batches(ds, *, one_hot: int | None = None, augment=None):
    """A ``tf.data`` pipeline of ``(images, labels)`` batches, augmented and/or one-hot.

    Example:

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((3, 2)), [0, 2, 1])).batch(3)
    >>> next(iter(map_batches(ds, one_hot=3)))[1].numpy().tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]

    Args:
        ds: a ``tf.data.Dataset`` of ``(images, labels)`` batches (``(images,)`` or
            ``(images, labels, sample_weight)`` too; labels may be a structure).
        one_hot: the number of classes, or ``None`` to keep the labels.
        augment: ``f(images) -> images`` (run in TensorFlow's threads), or ``None``.

    Returns:
        The mapped ``tf.data.Dataset``.
    """
    import tensorflow as tf

    if augment is not None:
        # One batch at a time: random layers draw from their seed generator in batch order
        # (parallel calls would take the draws in whatever order the threads run).
        ds = ds.map(lambda a, *rest: (augment(a), *rest))
    if one_hot:
        ds = ds.map(lambda a, b, *rest: (a, tf.nest.map_structure(
            lambda t: tf.one_hot(tf.cast(t, tf.int32), one_hot), b), *rest))
    return ds


def _array_batches_class():
    global _ARRAY_BATCHES
    if _ARRAY_BATCHES is not None:
        return _ARRAY_BATCHES
    import concurrent.futures
    import math

    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self, data, n, batch_size, seed, initial_epoch, epochs, transform,
                     prefetch):
            super().__init__()  # one worker: Keras reads the batches in order
            self.data, self.n, self.batch_size = data, n, batch_size
            self.seed, self.transform = seed, transform
            self.steps = math.ceil(n / batch_size)
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
                order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
                self._order_of = (epoch, order)
            return order

        def _batch(self, index: int):
            epoch = self.epochs[index // self.steps]
            j = index % self.steps
            order = self._order(epoch)
            part = slice(j * self.batch_size, (j + 1) * self.batch_size)
            idx = part if order is None else order[part]
            xb, yb, wb = (None if p is None else keras.tree.map_structure(lambda a: a[idx], p)
                          for p in self.data)
            if self.transform is not None:
                xb, yb = self.transform(xb, yb)
            if wb is not None:
                return xb, yb, wb
            return (xb, yb) if yb is not None else (xb,)

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
        counts: the number of examples per split.
        skipped: files left out because they cannot be decoded (relative to `source`).
    """

    train: object
    validation: object
    test: object
    class_names: list[str]
    source: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class FitInputs(NamedTuple):
    """What :func:`fit_inputs` returns: ``fit``'s data and its ``steps_per_epoch``."""

    train: Any
    validation: Any
    test: Any
    steps_per_epoch: int | None


def fit_inputs(
    splits: DatasetSplits,
    batch_size: int,
    *,
    seed: int = 0,
    initial_epoch: int = 0,
    epochs: int = 1,
    one_hot: int | None = None,
    augment=None,
    engine: str = "auto",
) -> FitInputs:
    """The training, validation and test feeds of a loader's splits, ready for ``fit``.

    In-memory splits (NumPy tuples) become :func:`epoch_batches`: the training batches of
    epochs ``[initial_epoch, epochs)`` in the seeded order of each epoch (a resumed run
    sees the batches of an uninterrupted one), validation and test in their own order,
    and ``steps_per_epoch`` to pass to ``fit``. ``tf.data`` splits (image files) keep their
    batches and order, mapped by :func:`map_batches`, with ``steps_per_epoch=None``. In both
    cases `one_hot` applies to every split and `augment` to the training batches only.
    Pass ``shuffle=False`` to ``fit``.

    Example:

    >>> x, y = np.arange(10, dtype="float32")[:, None], np.arange(10) % 2
    >>> s = DatasetSplits((x, y), (x[:4], y[:4]), None, ["even", "odd"])
    >>> feeds = fit_inputs(s, 4, seed=0, epochs=2, engine="numpy")
    >>> feeds.steps_per_epoch, len(feeds.train), len(feeds.validation), feeds.test
    (3, 6, 1, None)

    Args:
        splits: a loader's :class:`DatasetSplits`.
        batch_size: examples per batch of the in-memory splits (``tf.data`` splits come
            batched).
        seed: the training order's seed.
        initial_epoch: the first epoch of this ``fit`` (a resumed run's).
        epochs: ``fit``'s `epochs`.
        one_hot: the number of classes to make labels one-hot over, or ``None``.
        augment: ``f(images) -> images`` for the training batches, or ``None``.
        engine: the in-memory engine, as in :func:`epoch_batches`.

    Returns:
        A :class:`FitInputs` ``(train, validation, test, steps_per_epoch)``; a split the
        loader did not give is ``None``.
    """
    import math

    if isinstance(splits.train, tuple):
        train = epoch_batches(*splits.train, batch_size, seed=seed, initial_epoch=initial_epoch,
                              epochs=epochs, one_hot=one_hot, augment=augment, engine=engine)
        val, test = (None if s is None else epoch_batches(*s, batch_size, seed=None,
                                                          one_hot=one_hot, engine=engine)
                     for s in (splits.validation, splits.test))
        return FitInputs(train, val, test, math.ceil(len(splits.train[0]) / batch_size))
    train = map_batches(splits.train, one_hot=one_hot, augment=augment)
    val, test = (None if s is None else map_batches(s, one_hot=one_hot)
                 for s in (splits.validation, splits.test))
    return FitInputs(train, val, test, None)


def first_examples(data, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` ``(x, y)`` examples of a split: a probe batch, or inputs to check a model.

    Example:

    >>> x, y = np.arange(10.0)[:, None], np.arange(10)
    >>> first_examples(epoch_batches(x, y, 3, seed=None), 4)[1].tolist()
    [0, 1, 2, 3]
    >>> first_examples((x, y), 2)[0].tolist()
    [[0.0], [1.0]]

    Args:
        data: an ``(x, y)`` tuple of arrays, or batches of them (a ``PyDataset``, a
            ``tf.data.Dataset``); batches are read until `n` examples are in hand.
        n: how many examples (fewer if the split is smaller).

    Returns:
        ``(x, y)`` NumPy arrays of at most `n` examples.
    """
    if isinstance(data, tuple):
        return np.asarray(data[0])[:n], np.asarray(data[1])[:n]
    xs, ys, count = [], [], 0
    for xb, yb in data:
        xs.append(np.asarray(xb))
        ys.append(np.asarray(yb))
        count += len(xs[-1])
        if count >= n:
            break
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def limit_splits(
    splits: DatasetSplits, limit: int, *, seed: int = 0, batch_size: int = 32, train: bool = True
) -> DatasetSplits:
    """At most `limit` images per split: a quick run of a recipe on part of its data.

    NumPy splits keep the class balance (``limit`` images taken round-robin over the
    classes, in a seeded order, then sorted); ``tf.data`` splits keep their first
    ``ceil(limit / batch_size)`` batches.

    Example:

    >>> x, y = np.arange(12.0)[:, None], np.arange(12) % 3
    >>> s = DatasetSplits((x, y), (x, y), (x, y), ["a", "b", "c"])
    >>> cut = limit_splits(s, 6, seed=0)
    >>> sorted(np.bincount(cut.train[1]).tolist()), cut.counts
    ([2, 2, 2], {'train': 6, 'validation': 6, 'test': 6})

    Args:
        splits: a loader's :class:`DatasetSplits`.
        limit: images per split (0: all).
        seed: seed of the NumPy selection.
        batch_size: the batch size of ``tf.data`` splits.
        train: also cut the training split.

    Returns:
        A new :class:`DatasetSplits` with updated ``counts``.
    """
    import dataclasses
    import math

    if not limit:
        return splits
    names = ("train", "validation", "test")
    parts = {name: getattr(splits, name) for name in names}
    if isinstance(splits.train, tuple):
        def cut(xy):
            xs, ys = xy
            if len(xs) <= limit:
                return xy
            rng = np.random.default_rng(seed)
            per_class = [rng.permutation(np.flatnonzero(ys == k)) for k in np.unique(ys)]
            order = [i for group in zip(*per_class, strict=False) for i in group]
            keep = np.sort(np.asarray(order[:limit]))
            return xs[keep], ys[keep]

        for name in names:
            if (name != "train" or train) and parts[name] is not None:
                parts[name] = cut(parts[name])
        counts = {name: len(v[0]) for name, v in parts.items() if v is not None}
        return dataclasses.replace(splits, **parts, counts=counts)
    batches = max(1, math.ceil(limit / batch_size))
    for name in names:
        if parts[name] is not None and (name != "train" or train):
            parts[name] = parts[name].take(batches)
    counts = {k: min(v, batches * batch_size) for k, v in splits.counts.items()}
    return dataclasses.replace(splits, **parts, counts=counts)

