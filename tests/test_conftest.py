"""The per-test fixture of ``tests/conftest.py`` runs: each test starts seeded, in float32."""

import keras
import numpy as np


def test_a_test_may_change_the_global_policy_and_draw_numbers():
    keras.config.set_dtype_policy("mixed_float16")
    np.random.rand(3)


def test_the_next_test_starts_in_float32_and_seeded():
    assert keras.config.dtype_policy().name == "float32"
    # keras.utils.set_random_seed(0) seeds NumPy's global generator as np.random.seed(0)
    assert np.random.rand() == np.random.RandomState(0).rand()
