"""Seeded, resumable batches of labelled and unlabelled examples for semi-supervised ``fit``."""

from __future__ import annotations

import functools

import keras
import numpy as np

__all__ = ["SemiSupervisedBatches", "semi_supervised_batches"]


def _int(value, name: str, minimum: int) -> int:
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or int(value) < minimum):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an int >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def _stream_rows(n: int, seed: int, epoch: int, part: int, start: int, stop: int):
    """Rows ``[start, stop)`` of epoch ``epoch``'s endless stream of permutations of ``n``.

    The stream is ``default_rng([seed, epoch, part, 0]).permutation(n)`` followed by
    ``default_rng([seed, epoch, part, 1]).permutation(n)`` and so on: every example once
    before any example twice, and a pure function of ``(seed, epoch)``.
    """
    first, last = start // n, (stop - 1) // n
    rows = np.concatenate([_permutation(n, seed, epoch, part, k)
                           for k in range(first, last + 1)])
    return rows[start - first * n: stop - first * n]


@functools.lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int, part: int, k: int) -> np.ndarray:
    """One permutation of a stream, drawn once for all the batches that read it."""
    order = np.random.default_rng([seed, epoch, part, k]).permutation(n)
    order.flags.writeable = False  # shared by the cache
    return order


class SemiSupervisedBatches(keras.utils.PyDataset):
    """``(x, y, sample_weight)`` batches: labelled rows first (weight 1), then unlabelled (0).

    Built by :func:`semi_supervised_batches`, which documents the order.
    """

    def __init__(self, x_labelled, y_labelled, x_unlabelled, labelled_batch_size,
                 unlabelled_batch_size, seed, initial_epoch, epochs, steps_per_epoch):
        super().__init__()  # one worker: Keras reads the batches in order
        self.x_labelled, self.y_labelled = x_labelled, y_labelled
        self.x_unlabelled = x_unlabelled
        self.labelled_batch_size = labelled_batch_size
        self.unlabelled_batch_size = unlabelled_batch_size
        self.seed, self.steps_per_epoch = seed, steps_per_epoch
        self.epochs = list(range(initial_epoch, max(epochs, initial_epoch + 1)))
        self._y_unlabelled = np.zeros((unlabelled_batch_size,) + y_labelled.shape[1:],
                                      y_labelled.dtype)
        self._weights = np.concatenate([np.ones(labelled_batch_size, "float32"),
                                        np.zeros(unlabelled_batch_size, "float32")])

    def __len__(self) -> int:
        return self.steps_per_epoch * len(self.epochs)

    def rows(self, index: int):
        """The labelled and unlabelled row indices of batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        epoch = self.epochs[index // self.steps_per_epoch]
        j = index % self.steps_per_epoch
        lb, ub = self.labelled_batch_size, self.unlabelled_batch_size
        labelled = _stream_rows(len(self.x_labelled), self.seed, epoch, 0, j * lb, (j + 1) * lb)
        unlabelled = (_stream_rows(len(self.x_unlabelled), self.seed, epoch, 1, j * ub,
                                   (j + 1) * ub) if ub else np.zeros(0, "int64"))
        return labelled, unlabelled

    def __getitem__(self, index: int):
        labelled, unlabelled = self.rows(index)
        x = self.x_labelled[labelled]
        if len(unlabelled):
            x = np.concatenate([x, self.x_unlabelled[unlabelled]])
            y = np.concatenate([self.y_labelled[labelled], self._y_unlabelled])
        else:
            y = self.y_labelled[labelled]
        return x, y, self._weights


def semi_supervised_batches(
    x_labelled,
    y_labelled,
    x_unlabelled=None,
    labelled_batch_size: int = 32,
    unlabelled_batch_size: int = 0,
    *,
    seed: int = 0,
    initial_epoch: int = 0,
    epochs: int = 1,
    steps_per_epoch: int | None = None,
) -> SemiSupervisedBatches:
    """Seeded, resumable batches mixing labelled and unlabelled examples, for ``fit``.

    Each batch holds ``labelled_batch_size`` labelled rows followed by
    ``unlabelled_batch_size`` unlabelled ones, as ``(x, y, sample_weight)`` with weight 1
    for the labelled rows and 0 for the unlabelled ones (their ``y`` is zeros and is not
    read): a model whose loss takes labels ignores the unlabelled rows, while a label-free
    term such as :class:`keras_recipes.models.VirtualAdversarialModel`'s VAT loss uses every
    row. With ``unlabelled_batch_size=0`` it gives the same labelled batches with weight 1
    alone: the supervised baseline sees exactly the labelled rows of the semi-supervised run.

    Every batch has the same size (one compiled training step). Epoch ``e`` has
    `steps_per_epoch` batches (default: one pass over the unlabelled examples, rounded down,
    or over the labelled ones without unlabelled examples); each of the two sets is read from
    its own stream of permutations, ``np.random.default_rng([seed, e, part, k]).permutation``
    for ``k = 0, 1, ...`` (``part`` 0: labelled, 1: unlabelled), so the few labelled examples
    are seen several times per epoch, every one once before any one twice. Epoch ``e``'s
    batches are a pure function of ``(seed, e)``: a run resumed at ``initial_epoch`` sees the
    batches of an uninterrupted run. Pass ``shuffle=False`` to ``fit``.

    Example:

    >>> import numpy as np
    >>> x_l, y_l = np.arange(3, dtype="float32")[:, None], np.array([0, 1, 2])
    >>> x_u = 10 + np.arange(4, dtype="float32")[:, None]
    >>> ds = semi_supervised_batches(x_l, y_l, x_u, 2, 2, seed=0, epochs=2)
    >>> len(ds)  # 2 epochs of 4 // 2 steps
    4
    >>> x, y, w = ds[0]
    >>> x[:, 0].tolist(), y.tolist(), w.tolist()
    ([2.0, 0.0, 13.0, 11.0], [2, 0, 0, 0], [1.0, 1.0, 0.0, 0.0])
    >>> resumed = semi_supervised_batches(x_l, y_l, x_u, 2, 2, seed=0, initial_epoch=1,
    ...                                   epochs=2)
    >>> bool(np.array_equal(resumed[0][0], ds[2][0]))
    True

    Args:
        x_labelled: labelled inputs, first dimension = examples.
        y_labelled: their targets (integer labels or one-hot rows).
        x_unlabelled: unlabelled inputs of the same shape as `x_labelled`'s rows, or
            ``None`` (with ``unlabelled_batch_size=0``).
        labelled_batch_size: labelled rows per batch (int >= 1).
        unlabelled_batch_size: unlabelled rows per batch (int >= 0).
        seed: the order's seed (int).
        initial_epoch: the first epoch the dataset holds (a resumed run's).
        epochs: one past the last epoch it holds (``fit``'s `epochs`).
        steps_per_epoch: batches per epoch (int >= 1), or ``None`` for the default above.

    Returns:
        A ``keras.utils.PyDataset`` (:class:`SemiSupervisedBatches`) of ``(x, y,
        sample_weight)`` tuples; ``len``: the batches of all its epochs together.

    Raises:
        ValueError: naming the argument, for a bad size, count or shape.
    """
    x_labelled, y_labelled = np.asarray(x_labelled), np.asarray(y_labelled)
    labelled_batch_size = _int(labelled_batch_size, "labelled_batch_size", 1)
    unlabelled_batch_size = _int(unlabelled_batch_size, "unlabelled_batch_size", 0)
    seed = _int(seed, "seed", 0)
    initial_epoch = _int(initial_epoch, "initial_epoch", 0)
    epochs = _int(epochs, "epochs", 0)
    if len(x_labelled) < 1:
        raise ValueError("Invalid value for argument `x_labelled`. Expected >= 1 example. "
                         f"Received: {len(x_labelled)}")
    if len(y_labelled) != len(x_labelled):
        raise ValueError(
            "Invalid value for argument `y_labelled`. Expected as many examples as "
            f"`x_labelled` ({len(x_labelled)}). Received: len(y_labelled)={len(y_labelled)}"
        )
    if unlabelled_batch_size:
        if x_unlabelled is None or len(x_unlabelled) < 1:
            raise ValueError(
                "Invalid value for argument `x_unlabelled`. Expected >= 1 example when "
                f"unlabelled_batch_size={unlabelled_batch_size}. Received: "
                f"{None if x_unlabelled is None else len(x_unlabelled)} examples"
            )
        x_unlabelled = np.asarray(x_unlabelled)
        if x_unlabelled.shape[1:] != x_labelled.shape[1:]:
            raise ValueError(
                "Invalid value for argument `x_unlabelled`. Expected rows of shape "
                f"{x_labelled.shape[1:]} (as `x_labelled`'s). Received: "
                f"{x_unlabelled.shape[1:]}"
            )
        x_unlabelled = x_unlabelled.astype(x_labelled.dtype, copy=False)
        default_steps = max(len(x_unlabelled) // unlabelled_batch_size, 1)
    else:
        default_steps = max(len(x_labelled) // labelled_batch_size, 1)
    if steps_per_epoch is None:
        steps_per_epoch = default_steps
    steps_per_epoch = _int(steps_per_epoch, "steps_per_epoch", 1)
    if initial_epoch > max(epochs, 1):
        raise ValueError(
            "Invalid value for argument `initial_epoch`. Expected 0 <= initial_epoch <= "
            f"max(epochs, 1). Received: initial_epoch={initial_epoch}, epochs={epochs}"
        )
    return SemiSupervisedBatches(x_labelled, y_labelled, x_unlabelled, labelled_batch_size,
                                 unlabelled_batch_size, seed, initial_epoch, epochs,
                                 steps_per_epoch)
