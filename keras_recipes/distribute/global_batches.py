"""How a global batch is cut into per-replica batches, and a seeded array feed.

Pure NumPy: the torch DDP engine uses these to give every process the same
global batches and to cut each one into its local part.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["GlobalBatches", "split_bounds"]


def split_bounds(n: int, num_replicas: int, replica: int) -> tuple[int, int]:
    """The ``[start, stop)`` rows of a global batch that one replica trains on.

    The ``n`` rows are cut into ``num_replicas`` contiguous parts whose sizes
    differ by at most one (``n * r // R`` to ``n * (r + 1) // R``), in replica
    order, so the parts put back together are the global batch.

    Example:

    >>> [split_bounds(10, 4, r) for r in range(4)]
    [(0, 2), (2, 5), (5, 7), (7, 10)]

    Args:
        n: rows in the global batch.
        num_replicas: number of replicas ``R`` (>= 1).
        replica: this replica's index, ``0 <= replica < R``.

    Returns:
        ``(start, stop)`` row indices.

    Raises:
        ValueError: if ``num_replicas < 1``, ``replica`` is out of range, or
            ``n < num_replicas`` (a replica would get no rows).
    """
    if int(num_replicas) < 1:
        raise ValueError(
            "Invalid value for argument `num_replicas`. Expected an int >= 1. "
            f"Received: num_replicas={num_replicas}"
        )
    if not 0 <= int(replica) < int(num_replicas):
        raise ValueError(
            "Invalid value for argument `replica`. Expected an int in "
            f"[0, {num_replicas}). Received: replica={replica}"
        )
    if int(n) < int(num_replicas):
        raise ValueError(
            f"A global batch of {n} rows cannot be split over {num_replicas} replicas: "
            "every replica needs at least one row. Use a batch size (and a last "
            "partial batch) of at least the number of replicas, or drop the remainder."
        )
    n, num_replicas, replica = int(n), int(num_replicas), int(replica)
    return n * replica // num_replicas, n * (replica + 1) // num_replicas


def _rows(data, index):
    return keras.tree.map_structure(lambda a: None if a is None else a[index], data)


class GlobalBatches(keras.utils.PyDataset):
    """Global batches of NumPy arrays, identical in every process, reshuffled by seed.

    ``model.fit(x, y, shuffle=True)`` shuffles arrays with the process's global
    random state, so two processes would train on different global batches. This
    feed draws epoch ``e``'s order from ``np.random.default_rng([seed, e])``:
    every process that builds it with the same ``seed`` yields the same batches.

    Example:

    >>> import numpy as np
    >>> feed = GlobalBatches(np.arange(5), np.arange(5) * 10, batch_size=2, shuffle=False)
    >>> len(feed), [b[0].tolist() for b in (feed[0], feed[1], feed[2])]
    (3, [[0, 1], [2, 3], [4]])

    Args:
        x: an array or a structure (list, tuple, dict) of arrays, same first
            dimension.
        y: targets (same structure rules), or ``None``.
        sample_weight: per-sample weights, or ``None``.
        batch_size: rows per global batch (int >= 1).
        shuffle: reshuffle the rows at every epoch.
        seed: seed of the shuffles (int).

    Returns:
        ``feed[i]`` is ``(x, y)`` or ``(x, y, sample_weight)`` for global batch
        ``i``; the last batch may be partial.

    Raises:
        ValueError: if ``batch_size < 1`` or the arrays differ in length.
    """

    def __init__(self, x, y=None, sample_weight=None, *, batch_size: int = 32,
                 shuffle: bool = True, seed: int = 0):
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(
                "Invalid value for argument `batch_size`. Expected an int >= 1. "
                f"Received: batch_size={batch_size}"
            )
        leaves = [a for a in keras.tree.flatten((x, y, sample_weight)) if a is not None]
        lengths = {len(a) for a in leaves}
        if len(lengths) != 1:
            raise ValueError(
                "Invalid value for argument `x`. Expected arrays with the same number of "
                f"rows in x, y and sample_weight. Received lengths: {sorted(lengths)}"
            )
        self._data = (x, y, sample_weight)
        self._n = lengths.pop()
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self._n)
        return np.random.default_rng([self.seed, epoch]).permutation(self._n)

    def __len__(self) -> int:
        return -(-self._n // self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y, sw = _rows(self._data, rows)
        if sw is not None:
            return x, y, sw
        return (x, y) if y is not None else (x,)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation(self.epoch)
