"""split_bounds: how a global batch is cut into per-replica parts (pure NumPy).

How the global batches are formed (``keras_recipes.data.epoch_batches``, the feed of the
DDP engine) is tested in tests/data/test_epoch_batches.py.
"""

import pytest

from keras_recipes.distribute import split_bounds


@pytest.mark.parametrize(
    "n, replicas, expected",
    [
        (16, 2, [(0, 8), (8, 16)]),
        (15, 2, [(0, 7), (7, 15)]),
        (10, 4, [(0, 2), (2, 5), (5, 7), (7, 10)]),
        (3, 3, [(0, 1), (1, 2), (2, 3)]),
        (5, 1, [(0, 5)]),
    ],
)
def test_split_bounds_cut_contiguous_near_equal_parts(n, replicas, expected):
    bounds = [split_bounds(n, replicas, r) for r in range(replicas)]
    assert bounds == expected
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n


def test_split_bounds_rejects_fewer_rows_than_replicas():
    with pytest.raises(ValueError, match="cannot be split over 4 replicas"):
        split_bounds(3, 4, 0)


def test_split_bounds_rejects_replica_out_of_range():
    with pytest.raises(ValueError, match="argument `replica`"):
        split_bounds(8, 2, 2)


def test_split_bounds_rejects_no_replicas():
    with pytest.raises(ValueError, match="argument `num_replicas`"):
        split_bounds(8, 0, 0)
