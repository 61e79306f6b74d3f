"""EvaluateAt: scores at exactly the chosen epochs, equal to NumPy and to model.evaluate."""

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import EvaluateAt

BACKEND = keras.backend.backend()


def _np(v):
    return np.array(keras.ops.convert_to_numpy(getattr(v, "value", v)))


class _Record(keras.callbacks.Callback):
    """The logs' keys and the model's weights at the end of each epoch (runs after EvaluateAt)."""

    def __init__(self):
        super().__init__()
        self.keys, self.weights, self.logs = {}, {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.keys[epoch] = sorted(logs)
        self.logs[epoch] = dict(logs)
        self.weights[epoch] = self.model.get_weights()


class _StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    xt = rng.normal(size=(6, 3)).astype("float32")
    yt = rng.normal(size=(6, 2)).astype("float32")
    return x, y, xt, yt


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    return model


def _mse_mae(weights, x, y):
    kernel, bias = (w.astype(np.float64) for w in weights)
    error = x.astype(np.float64) @ kernel + bias - y
    return np.mean(error**2), np.mean(np.abs(error))


def test_scores_exactly_the_listed_epochs_with_their_weights():
    x, y, xt, yt = _data()
    model = _model()
    initial = model.get_weights()
    evaluate = EvaluateAt((xt, yt), epochs=[0, 2])
    record = _Record()
    history = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                        callbacks=[evaluate, record])
    assert sorted(evaluate.results) == [0, 2]
    for epoch in range(4):
        scored = epoch in (0, 2)
        assert ("test_loss" in record.keys[epoch]) is scored, epoch
        assert ("test_mae" in record.keys[epoch]) is scored, epoch
    # The weights moved between the scored epochs: a score of the wrong epoch would show.
    assert not np.allclose(record.weights[0][0], record.weights[2][0])
    for epoch in (0, 2):
        got = evaluate.results[epoch]
        assert sorted(got) == ["loss", "mae"]
        loss, mae = _mse_mae(record.weights[epoch], xt, yt)  # independent reference
        np.testing.assert_allclose(got["loss"], loss, rtol=1e-5)
        np.testing.assert_allclose(got["mae"], mae, rtol=1e-5)
        assert record.logs[epoch]["test_loss"] == got["loss"]
        assert record.logs[epoch]["test_mae"] == got["mae"]
    assert history.history["test_loss"] == [evaluate.results[e]["loss"] for e in (0, 2)]
    assert history.history["test_mae"] == [evaluate.results[e]["mae"] for e in (0, 2)]
    final = model.get_weights()

    # model.evaluate on the same data with the same weights gives the same scores.
    for epoch in (0, 2):
        model.set_weights(record.weights[epoch])
        want = model.evaluate(xt, yt, verbose=0, return_dict=True)
        np.testing.assert_allclose(
            [evaluate.results[epoch][k] for k in ("loss", "mae")], [want["loss"], want["mae"]],
            rtol=1e-6)

    # Evaluating does not change training: the same run without it ends with the same weights.
    model.set_weights(initial)
    plain = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), final, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(plain.history["loss"], history.history["loss"], rtol=1e-6)


def test_on_stop_scores_the_epoch_where_training_stopped():
    x, y, xt, yt = _data()
    model = _model()
    evaluate = EvaluateAt((xt, yt), epochs=[5], prefix="holdout/")
    record = _Record()
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0,
                        callbacks=[_StopAt(1), evaluate, record])
    assert len(history.history["loss"]) == 2
    assert sorted(evaluate.results) == [1]
    loss, mae = _mse_mae(record.weights[1], xt, yt)
    np.testing.assert_allclose(evaluate.results[1]["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(evaluate.results[1]["mae"], mae, rtol=1e-5)
    assert history.history["holdout/loss"] == [evaluate.results[1]["loss"]]
    assert "holdout/loss" not in record.keys[0]

    off = EvaluateAt((xt, yt), epochs=[5], on_stop=False)
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0, callbacks=[_StopAt(1), off])
    assert off.results == {}
    assert not any(k.startswith("test_") for k in history.history)


def test_py_dataset_gives_the_scores_of_arrays():
    x, y, xt, yt = _data()
    model = _model()
    arrays = EvaluateAt((xt, yt), epochs=[1])
    batches = EvaluateAt(_Batches(xt, yt, batch_size=4), epochs=[1], prefix="batches_")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[arrays, batches])
    assert sorted(batches.results) == [1]
    for k in ("loss", "mae"):
        np.testing.assert_allclose(batches.results[1][k], arrays.results[1][k], rtol=1e-5)
        assert history.history[f"batches_{k}"] == [batches.results[1][k]]
    loss, _ = _mse_mae(model.get_weights(), xt, yt)
    np.testing.assert_allclose(arrays.results[1]["loss"], loss, rtol=1e-5)


def test_config():
    callback = EvaluateAt((np.ones((2, 3)), np.ones((2, 2))), epochs=(4, 1, 4), prefix="t/",
                          on_stop=False)
    config = callback.get_config()
    assert config == {"epochs": [1, 4], "prefix": "t/", "on_stop": False}  # no data
    assert EvaluateAt(None, **config).get_config() == config
    assert keras.saving.get_registered_object("keras_recipes>EvaluateAt") is EvaluateAt


def test_sample_weights_weigh_the_scores_like_numpy():
    x, y, xt, yt = _data()
    w = np.linspace(0.0, 2.0, len(xt)).astype("float32")
    model, record = _model(), _Record()
    at = EvaluateAt((xt, yt, w), epochs=[1])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[at, record])
    kernel, bias = (a.astype(np.float64) for a in record.weights[1])
    per_sample = np.mean((xt.astype(np.float64) @ kernel + bias - yt) ** 2, axis=1)
    # Keras's loss reduction "sum_over_batch_size": sum(w * loss) / number of samples.
    np.testing.assert_allclose(at.results[1]["loss"], np.sum(w * per_sample) / len(xt),
                               rtol=1e-5)
    assert at.results[1]["loss"] != pytest.approx(np.mean(per_sample), rel=1e-3)
    # A list works as the tuple does.
    listed = EvaluateAt([xt, yt], epochs=[0])
    _model().fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[listed])
    assert set(listed.results) == {0}


@pytest.mark.parametrize("kwargs,arg", [
    ({"epochs": 3}, "epochs"), ({"epochs": [1.7]}, "epochs"), ({"epochs": [-1]}, "epochs"),
    ({"epochs": [True]}, "epochs"), ({"data": (np.ones(2),)}, "data"),
])
def test_bad_arguments_name_the_argument(kwargs, arg):
    args = {"data": (np.ones((2, 3)), np.ones((2, 2))), "epochs": [0], **kwargs}
    with pytest.raises(ValueError, match=f"argument `{arg}`.*Received: "):
        EvaluateAt(**args)
