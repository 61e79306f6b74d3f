"""for_backend: the current backend's entry of a dispatch table, or a clear error."""

import keras
import pytest

from keras_recipes.backend.dispatch import for_backend


def test_returns_the_current_backends_entry():
    table = {"torch": "t", "tensorflow": "tf", "jax": "j"}
    assert for_backend(table) == table[keras.backend.backend()]


def test_missing_backend_names_it_and_the_supported_ones():
    backend = keras.backend.backend()
    with pytest.raises(ValueError, match=rf"Unsupported Keras backend '{backend}'\. "
                                         r"Expected one of \['numpy'\]"):
        for_backend({"numpy": 0})
