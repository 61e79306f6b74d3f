"""How a global batch is cut into per-replica batches.

The torch DDP engine feeds every process the same global batches
(``keras_recipes.data.epoch_batches`` with a shared seed) and cuts each one
into its local part with :func:`split_bounds`.
"""

from __future__ import annotations

__all__ = ["split_bounds"]


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
