"""DistributeContext.save_model: one atomic writer, and the saved model's outputs to check."""

import keras
import numpy as np

from keras_recipes.distribute import setup
from keras_recipes.distribute.distribute_context import DistributeContext


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.layers[0].set_weights([np.arange(6, dtype="float32").reshape(3, 2) / 10,
                                 np.array([0.5, -1.0], "float32")])
    return model


class _Worker(DistributeContext):
    """A non-chief process of a two-process engine."""

    @property
    def process_index(self):
        return 1

    @property
    def num_processes(self):
        return 2


def test_chief_saves_atomically_and_returns_the_saved_models_outputs(keras_backend, tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    want = x @ (np.arange(6).reshape(3, 2) / 10) + np.array([0.5, -1.0])  # NumPy Dense
    path = tmp_path / "best.keras"
    path.write_bytes(b"an older file")
    out = setup("none").save_model(_model(), path, check_x=x)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0), want,
                               rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]  # no temporary left
    assert setup("none").save_model(_model(), tmp_path / "other.keras") is None


def test_other_processes_write_nothing(keras_backend, tmp_path):
    out = _Worker().save_model(_model(), tmp_path / "best.keras", check_x=np.ones((2, 3)))
    assert out is None and list(tmp_path.iterdir()) == []
