"""WeightHistogram: the written buckets against np.histogram of each weight at that epoch."""

import re

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import WeightHistogram
from keras_recipes.callbacks import weight_histogram as weight_histogram_module
from keras_recipes.callbacks.event_writer import read_histograms
from tests.callbacks.unfreeze_at import UnfreezeAt

BACKEND = keras.backend.backend()


def _np(v):
    return np.array(keras.ops.convert_to_numpy(getattr(v, "value", v)))


def _reference_buckets(values, bins=30):
    """np.histogram of `values`; all-equal values all go in the last bucket (TensorBoard's)."""
    values = np.asarray(values).reshape(-1)
    if values.min() == values.max():
        counts = np.zeros(bins)
        counts[-1] = values.size
        edges = np.full(bins + 1, values[0], np.float64)
        return counts, edges
    return np.histogram(values, bins=bins)


class _WeightsAtEpochEnd(keras.callbacks.Callback):
    """{epoch: {weight path: NumPy copy}} of every weight at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.values = {}

    def on_epoch_end(self, epoch, logs=None):
        self.values[epoch] = {w.path: _np(w) for w in self.model.weights}


def _model(frozen_trainable=False):
    frozen = keras.layers.Dense(3, name="frozen", trainable=frozen_trainable)  # zero bias
    model = keras.Sequential(
        [keras.Input((4,)), frozen,
         keras.layers.Dense(2, name="out", bias_initializer="random_normal")],
        name="net",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    return model, frozen


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")


def _counting_buckets(monkeypatch):
    """Counts how many arrays WeightHistogram buckets (it runs in the writer's thread)."""
    calls = []
    original = weight_histogram_module.histogram_buckets

    def counting(values, *args, **kwargs):
        calls.append(np.asarray(values).shape)
        return original(values, *args, **kwargs)

    monkeypatch.setattr(weight_histogram_module, "histogram_buckets", counting)
    return calls


def _assert_matches_numpy(written, values):
    """Each written histogram equals np.histogram of the weight's value at that step."""
    for tag, series in written.items():
        path = tag[: -len("/histogram")]
        for step, buckets in series:
            want_counts, want_edges = _reference_buckets(values[step][path])
            assert buckets.shape == (30, 3)
            np.testing.assert_array_equal(buckets[:, 2], want_counts, err_msg=f"{tag} @ {step}")
            # Edges: equal up to float32 rounding at the scale of the values (NumPy computes
            # them in float32 from float32 extremes).
            atol = 4 * np.finfo(np.float32).eps * np.abs(want_edges).max()
            np.testing.assert_allclose(buckets[:, 0], want_edges[:-1], rtol=0, atol=atol)
            np.testing.assert_allclose(buckets[:, 1], want_edges[1:], rtol=0, atol=atol)


def test_every_n_writes_numpy_histograms_at_epochs_0_n_2n(tmp_path, monkeypatch):
    calls = _counting_buckets(monkeypatch)
    x, y = _data()
    model, _ = _model()
    record = _WeightsAtEpochEnd()
    callback = WeightHistogram(tmp_path, every=2)
    model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
              callbacks=[record, callback])
    assert callback.writer is None  # closed at train end: everything is on disk

    written = read_histograms(tmp_path / "train")
    paths = ["net/frozen/kernel", "net/frozen/bias", "net/out/kernel", "net/out/bias"]
    assert [w.path for w in model.weights] == paths
    assert sorted(written) == sorted(f"{p}/histogram" for p in paths)
    for tag, series in written.items():
        assert [step for step, _ in series] == [0, 2, 4], tag
    # The trained weights moved between the logged epochs: stale buckets would show.
    for path in ("net/out/kernel", "net/out/bias"):
        assert not np.array_equal(record.values[0][path], record.values[2][path])
        assert not np.array_equal(record.values[2][path], record.values[4][path])
    _assert_matches_numpy(written, record.values)
    # The frozen zero bias: all three values in the last bucket, as TensorBoard does.
    frozen_bias = dict(written["net/frozen/bias/histogram"])[4]
    assert frozen_bias[:, 2].tolist() == [0.0] * 29 + [3.0]
    # Frozen weights are bucketed once (epoch 0), then reused at epochs 2 and 4.
    assert callback.reused == 4
    assert sorted(calls) == sorted([(4, 3), (3,), (3, 2), (2,)] + [(3, 2), (2,)] * 2)


def test_unchanged_weights_reuse_buckets_until_they_change(tmp_path, monkeypatch):
    calls = _counting_buckets(monkeypatch)
    x, y = _data()
    model, frozen = _model()
    record = _WeightsAtEpochEnd()
    callback = WeightHistogram(tmp_path)  # every epoch
    model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              callbacks=[UnfreezeAt(2, frozen, 0.5), record, callback])
    written = read_histograms(tmp_path / "train")
    for tag, series in written.items():
        assert [step for step, _ in series] == [0, 1, 2, 3], tag
    kernel = record.values
    np.testing.assert_array_equal(kernel[0]["net/frozen/kernel"], kernel[1]["net/frozen/kernel"])
    assert not np.array_equal(kernel[1]["net/frozen/kernel"], kernel[2]["net/frozen/kernel"])
    _assert_matches_numpy(written, record.values)
    # Epoch 1: the two frozen weights reused; epochs 2 and 3 (trained): bucketed again.
    assert callback.reused == 2
    assert len(calls) == 4 + 2 + 4 + 4


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="keras.callbacks.TensorBoard needs TensorFlow")
def test_same_tags_and_steps_as_keras_tensorboard(tmp_path):
    x, y = _data()
    model, _ = _model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(tmp_path / "keras", histogram_freq=2, write_graph=False),
        WeightHistogram(tmp_path / "ours", every=2)])
    theirs = read_histograms(tmp_path / "keras" / "train")
    ours = read_histograms(tmp_path / "ours" / "train")
    assert sorted(ours) == sorted(theirs)
    for tag in ours:
        assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]] == [0, 2]
        for (_, a), (_, b) in zip(ours[tag], theirs[tag], strict=True):
            assert a[:, 2].sum() == b[:, 2].sum()  # same number of values


def test_config_round_trip(tmp_path):
    callback = WeightHistogram(tmp_path, every=3)
    config = callback.get_config()
    assert config == {"log_dir": str(tmp_path), "every": 3}
    assert WeightHistogram(**config).get_config() == config
    assert keras.saving.get_registered_object("keras_recipes>WeightHistogram") is WeightHistogram


def test_keras_deserializes_the_registered_callback(tmp_path):
    serialized = keras.saving.serialize_keras_object(WeightHistogram(tmp_path, every=3))
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(rebuilt, WeightHistogram) and rebuilt.every == 3


@pytest.mark.parametrize("every", [0, -2, True, 1.5, "2", None])
def test_invalid_every_names_the_argument_and_value(tmp_path, every):
    message = ("Invalid value for argument `every`. Expected an int >= 1. "
               f"Received: every={every!r}")
    with pytest.raises(ValueError, match=re.escape(message)):
        WeightHistogram(tmp_path, every=every)
