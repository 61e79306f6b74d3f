"""check_weights_file: a readable HDF5 weights file, or one clear error naming the file."""

import keras
import numpy as np
import pytest

from keras_recipes.applications import check_weights_file


def test_a_saved_weights_file_passes_and_loads(keras_backend, tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    assert check_weights_file(path) == path
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.load_weights(check_weights_file(str(path)))
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_home_is_expanded(keras_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(
        tmp_path / "h.weights.h5")
    assert check_weights_file("~/h.weights.h5") == tmp_path / "h.weights.h5"


def test_missing_file_and_folder(keras_backend, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*nothing.h5"):
        check_weights_file(tmp_path / "nothing.h5")
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_weights_file(tmp_path)


def test_a_file_that_is_not_hdf5(keras_backend, tmp_path):
    path = tmp_path / "w.h5"
    path.write_bytes(b"not an HDF5 file at all" * 10)
    with pytest.raises(ValueError, match=r"w\.h5' is not a readable HDF5 weights file"):
        check_weights_file(path)
