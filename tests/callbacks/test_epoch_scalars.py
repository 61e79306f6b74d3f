"""EpochScalars: the epoch logs on disk, exactly, and against a NumPy MSE of the weights."""

import os

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import EpochScalars
from keras_recipes.callbacks.event_writer import read_scalars

BACKEND = keras.backend.backend()


def _np(v):
    return np.array(keras.ops.convert_to_numpy(getattr(v, "value", v)))


class _Weights(keras.callbacks.Callback):
    """The Dense layer's (kernel, bias) before training (-1) and at the end of each epoch."""

    def on_train_begin(self, logs=None):
        self.values = {-1: [_np(w) for w in self.model.layers[0].weights]}

    def on_epoch_end(self, epoch, logs=None):
        self.values[epoch] = [_np(w) for w in self.model.layers[0].weights]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    xv = rng.normal(size=(5, 3)).astype("float32")
    yv = rng.normal(size=(5, 2)).astype("float32")
    return x, y, xv, yv


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    return model


def _mse_mae(weights, x, y):
    kernel, bias = (w.astype(np.float64) for w in weights)
    error = x.astype(np.float64) @ kernel + bias - y
    return np.mean(error**2), np.mean(np.abs(error))


def test_writes_the_exact_epoch_logs_train_and_validation(tmp_path):
    x, y, xv, yv = _data()
    model = _model()
    weights = _Weights()
    # One batch per epoch: epoch e's training loss is that of the weights after epoch e-1.
    history = model.fit(x, y, batch_size=8, epochs=3, validation_data=(xv, yv), verbose=0,
                        callbacks=[weights, EpochScalars(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    train = read_scalars(tmp_path / "train")
    validation = read_scalars(tmp_path / "validation")
    assert sorted(train) == ["epoch_learning_rate", "epoch_loss", "epoch_mae"]
    assert sorted(validation) == ["epoch_loss", "epoch_mae"]
    assert [v for _, v in train["epoch_learning_rate"]] == pytest.approx([0.1] * 3)
    # The logs themselves, to the float32 a TensorBoard simple_value holds.
    for key, series in history.history.items():
        folder, name = (validation, key[4:]) if key.startswith("val_") else (train, key)
        assert folder[f"epoch_{name}"] == [
            (epoch, float(np.float32(value))) for epoch, value in enumerate(series)
        ], key
    # And against NumPy: losses of the recorded weights.
    for epoch in range(3):
        loss, mae = _mse_mae(weights.values[epoch - 1], x, y)
        np.testing.assert_allclose(train["epoch_loss"][epoch][1], loss, rtol=1e-5)
        np.testing.assert_allclose(train["epoch_mae"][epoch][1], mae, rtol=1e-5)
        val_loss, val_mae = _mse_mae(weights.values[epoch], xv, yv)
        np.testing.assert_allclose(validation["epoch_loss"][epoch][1], val_loss, rtol=1e-5)
        np.testing.assert_allclose(validation["epoch_mae"][epoch][1], val_mae, rtol=1e-5)


def test_skips_logs_that_are_not_numbers(tmp_path):
    callback = EpochScalars(tmp_path)
    callback.on_epoch_end(4, {
        "loss": np.float64(0.25), "val_acc": np.array(0.5, "float32"),
        "lr": keras.ops.convert_to_tensor(0.125),
        "note": "text", "vector": [1.0, 2.0], "array": np.ones(3), "missing": None,
    })
    callback.on_epoch_end(5, None)
    callback.on_epoch_end(6, {})
    callback.on_train_end()
    assert callback.writers == {}
    assert read_scalars(tmp_path / "train") == {"epoch_loss": [(4, 0.25)],
                                                "epoch_lr": [(4, 0.125)]}
    assert read_scalars(tmp_path / "validation") == {"epoch_acc": [(4, 0.5)]}


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="keras.callbacks.TensorBoard needs TensorFlow")
def test_same_tags_and_values_as_keras_tensorboard(tmp_path):
    x, y, xv, yv = _data()
    model = _model()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(xv, yv), verbose=0, callbacks=[
        keras.callbacks.TensorBoard(tmp_path / "keras", write_graph=False),
        EpochScalars(tmp_path / "ours")])
    for split in ("train", "validation"):
        theirs = read_scalars(tmp_path / "keras" / split)
        theirs = {tag: v for tag, v in theirs.items() if tag.startswith("epoch_")}
        ours = read_scalars(tmp_path / "ours" / split)
        assert sorted(ours) == sorted(theirs), split
        for tag in ours:
            assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]] == [0, 1]
            np.testing.assert_allclose([v for _, v in ours[tag]], [v for _, v in theirs[tag]],
                                       rtol=1e-6)


def test_config_round_trip(tmp_path):
    callback = EpochScalars(tmp_path)
    config = callback.get_config()
    assert config == {"log_dir": str(tmp_path)}
    assert EpochScalars(**config).get_config() == config
    assert keras.saving.get_registered_object("keras_recipes>EpochScalars") is EpochScalars


def test_keras_deserializes_the_registered_callback(tmp_path):
    serialized = keras.saving.serialize_keras_object(EpochScalars(tmp_path))
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(rebuilt, EpochScalars) and rebuilt.log_dir == str(tmp_path)


def test_learning_rate_is_written_as_keras_does(tmp_path):
    x, y, xv, yv = _data()
    model = _model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[EpochScalars(tmp_path)])
    written = read_scalars(tmp_path / "train")["epoch_learning_rate"]
    # 2 steps per epoch: after epoch e the schedule is at step 2(e + 1): 0.5 * 0.5 ** (2e + 2).
    assert [s for s, _ in written] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in written], [0.5 * 0.5 ** (2 * e + 2)
                                                         for e in range(3)], rtol=1e-6)
