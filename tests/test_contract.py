"""The contract helper itself: it passes on a correct Keras layer and catches breakage."""

import keras
import numpy as np
import pytest

from tests.contract import assert_config_round_trip, run_layer_test


def test_contract_passes_on_dense(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    init = {"units": 2, "kernel_initializer": "ones", "bias_initializer": "zeros"}
    out = run_layer_test(keras.layers.Dense, init, x, tmp_path=tmp_path,
                         expected_output=x.sum(axis=1, keepdims=True).repeat(2, axis=1),
                         expected_output_shape=(4, 2), rtol=1e-5)
    assert keras.ops.convert_to_numpy(out).shape == (4, 2)


def test_contract_catches_a_lossy_config():
    class Lossy(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor
        # get_config forgets `factor`

    with pytest.raises((AssertionError, TypeError)):
        assert_config_round_trip(Lossy(factor=3.0))


def test_contract_catches_wrong_output():
    x = np.ones((2, 3), "float32")
    with pytest.raises(AssertionError):
        run_layer_test(keras.layers.Dense, {"units": 1, "kernel_initializer": "ones"}, x,
                       expected_output=np.zeros((2, 1)), mixed_precision=(), run_fit=False)
