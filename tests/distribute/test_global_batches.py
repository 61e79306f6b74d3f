"""split_bounds and GlobalBatches: how global batches are formed and cut (pure NumPy)."""

import numpy as np
import pytest

from keras_recipes.distribute import GlobalBatches, split_bounds


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


def test_global_batches_in_order_without_shuffle():
    x, y = np.arange(10).reshape(10, 1), np.arange(10) * 10
    feed = GlobalBatches(x, y, batch_size=4, shuffle=False)
    assert len(feed) == 3
    assert [feed[i][0].ravel().tolist() for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert feed[2][1].tolist() == [80, 90]


def _epoch(feed):
    return np.concatenate([feed[i][0] for i in range(len(feed))])


def test_global_batches_same_seed_same_batches_every_epoch_a_permutation():
    x = np.arange(23)
    a = GlobalBatches(x, x, batch_size=5, shuffle=True, seed=7)
    b = GlobalBatches(x, x, batch_size=5, shuffle=True, seed=7)
    for _ in range(3):
        ea, eb = _epoch(a), _epoch(b)
        np.testing.assert_array_equal(ea, eb)  # two processes, same seed
        np.testing.assert_array_equal(np.sort(ea), x)  # every row once per epoch
        np.testing.assert_array_equal(a[0][0], a[0][1])  # rows stay paired with targets
        first = ea
        a.on_epoch_end()
        b.on_epoch_end()
        assert not np.array_equal(_epoch(a), first)  # reshuffled
    assert not np.array_equal(_epoch(GlobalBatches(x, x, batch_size=5, seed=8)), _epoch(a))


def test_global_batches_structures_and_sample_weight():
    x = {"a": np.arange(6), "b": np.arange(6) * 2}
    feed = GlobalBatches(x, np.arange(6), np.ones(6) * 0.5, batch_size=4, shuffle=False)
    xb, yb, wb = feed[1]
    assert xb["a"].tolist() == [4, 5] and xb["b"].tolist() == [8, 10]
    assert yb.tolist() == [4, 5] and wb.tolist() == [0.5, 0.5]
    assert len(GlobalBatches(np.arange(6), batch_size=4)[0]) == 1  # inputs only


def test_global_batches_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="argument `batch_size`"):
        GlobalBatches(np.arange(4), np.arange(4), batch_size=0)


def test_global_batches_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="same number of rows"):
        GlobalBatches(np.arange(4), np.arange(5), batch_size=2)
