"""WeightPenalty: the penalty against NumPy, config round trip, argument checks."""

import numpy as np
import pytest

from keras_recipes.regularizers import WeightPenalty
from tests.contract import run_regularizer_test

W = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")


@pytest.mark.parametrize(
    "l1, l2",
    [(0.01, 0.0), (0.0, 0.03), (0.02, 0.5)],
    ids=["l1", "l2", "l1_l2"],
)
def test_penalty_matches_numpy(l1, l2):
    expected = l1 * np.abs(W.astype("float64")).sum() + l2 * np.square(W.astype("float64")).sum()
    run_regularizer_test(WeightPenalty(l1=l1, l2=l2), W, expected, rtol=1e-5)


def test_zero_penalty_is_zero():
    run_regularizer_test(WeightPenalty(), W, 0.0)


@pytest.mark.parametrize("name", ["l1", "l2"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_invalid_factor_raises(name, bad):
    with pytest.raises(ValueError, match=f"Invalid value for argument `{name}`. Expected a float"):
        WeightPenalty(**{name: bad})
