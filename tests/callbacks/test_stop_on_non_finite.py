"""StopOnNonFinite: stops at a planted non-finite batch, reports it, never syncs jax state."""

import math
import threading

import keras
import numpy as np
import pytest
from keras.src import backend as keras_backend_module

from keras_recipes.callbacks import StopOnNonFinite

BACKEND = keras.backend.backend()


def _np(v):
    return np.array(keras.ops.convert_to_numpy(getattr(v, "value", v)))


class _Poison(keras.layers.Layer):
    """Drops the last input column (a marker) after adding ``p * marker`` to the others.

    ``p`` is 0 until a callback sets it: then only the marked samples blow up.
    """

    def build(self, input_shape):
        self.p = self.add_weight(shape=(), initializer="zeros", trainable=False, name="p")

    def call(self, x):
        return x[:, :-1] + self.p * x[:, -1:]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 1)


class _PoisonAt(keras.callbacks.Callback):
    """From the start of `epoch` on, the marked samples' inputs are 3e38: their loss is inf."""

    def __init__(self, epoch, layer):
        super().__init__()
        self.epoch, self.layer = epoch, layer

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.layer.p.assign(3e38)


def _planted(poison_epoch, poison_batch, batch_size=2, batches=4):
    """A model and data whose loss is finite except from (poison_epoch, poison_batch) on."""
    rng = np.random.default_rng(0)
    n = batch_size * batches
    x = np.concatenate([rng.normal(size=(n, 3)), np.zeros((n, 1))], axis=1).astype("float32")
    x[poison_batch * batch_size:(poison_batch + 1) * batch_size, -1] = 1.0  # the marker
    y = rng.normal(size=(n, 1)).astype("float32")
    poison = _Poison()
    model = keras.Sequential([keras.Input((4,)), poison, keras.layers.Dense(1, name="d")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model, x, y, _PoisonAt(poison_epoch, poison)


def test_stops_at_the_planted_nonfinite_batch(capsys):
    model, x, y, poison = _planted(poison_epoch=1, poison_batch=2)
    stop = StopOnNonFinite()
    # The hook keeps Keras's asynchronous batch-end dispatch where the backend has one.
    listed = keras.callbacks.CallbackList([poison, stop], model=model)
    assert listed._async_train is keras_backend_module.IS_THREAD_SAFE
    main = threading.get_ident()
    syncs = []
    if BACKEND == "jax":  # record state syncs from other threads than the training loop's
        original = model.jax_state_sync

        def recording_sync():
            if threading.get_ident() != main:
                syncs.append(threading.get_ident())
            return original()

        model.jax_state_sync = recording_sync
    history = model.fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0,
                        callbacks=[poison, stop])
    assert stop.nonfinite == {"epoch": 1, "batch": 2}
    losses = history.history["loss"]
    assert len(losses) == 2  # epochs 2 and 3 never ran
    assert math.isfinite(losses[0]) and not math.isfinite(losses[1])
    steps = int(_np(model.optimizer.iterations))
    if keras_backend_module.IS_THREAD_SAFE:  # asynchronous: at most a few steps later
        assert 4 + 3 <= steps <= 4 + 4
    else:  # synchronous: right after the bad step
        assert steps == 4 + 3
    assert syncs == []
    out = capsys.readouterr().out
    assert out.count("StopOnNonFinite") == 1
    assert "the loss became non-finite at epoch 2, batch 3: training stopped." in out  # 1-based


def test_finite_training_runs_all_epochs_and_resets_the_report():
    model, x, y, poison = _planted(poison_epoch=0, poison_batch=1)
    stop = StopOnNonFinite(verbose=0)
    model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[poison, stop])
    assert stop.nonfinite == {"epoch": 0, "batch": 1}
    poison.layer.p.assign(0.0)
    clean = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    clean.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    history = clean.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[stop])
    assert stop.nonfinite is None  # a new fit starts with a clean report
    assert len(history.history["loss"]) == 3
    assert int(_np(clean.optimizer.iterations)) == 12


class _NoSyncModel:
    """Stands in for a jax model: the `Callback.model` property would call jax_state_sync."""

    def __init__(self):
        self.stop_training = False
        self.syncs = []

    def jax_state_sync(self):
        self.syncs.append(threading.get_ident())


def _in_thread(fn, *args):
    worker = threading.Thread(target=fn, args=args)
    worker.start()
    worker.join()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_hook_in_a_worker_thread_sets_the_flag_without_syncing(bad):
    stop = StopOnNonFinite(verbose=0)
    model = _NoSyncModel()
    stop.set_model(model)
    stop.on_train_begin()
    stop.on_epoch_begin(3)
    _in_thread(stop.on_train_batch_end, 4, {"loss": np.float32(1.5)})
    _in_thread(stop.on_train_batch_end, 5, {"accuracy": bad})  # not the monitored log
    _in_thread(stop.on_train_batch_end, 6, None)
    assert model.stop_training is False and stop.nonfinite is None
    _in_thread(stop.on_train_batch_end, 8, {"loss": keras.ops.convert_to_tensor(bad)})
    assert model.stop_training is True
    assert stop.nonfinite == {"epoch": 3, "batch": 8}
    # Hooks of several batches may finish out of order: the first bad batch is kept.
    _in_thread(stop.on_train_batch_end, 7, {"loss": np.array([bad], "float32")})
    _in_thread(stop.on_train_batch_end, 9, {"loss": bad})
    assert stop.nonfinite == {"epoch": 3, "batch": 7}
    assert model.syncs == []  # `self.model` would have synced from the worker on jax


def test_custom_monitor():
    stop = StopOnNonFinite(monitor="my_loss", verbose=0)
    model = _NoSyncModel()
    stop.set_model(model)
    stop.on_epoch_begin(0)
    stop.on_train_batch_end(0, {"loss": float("nan"), "my_loss": 2.0})
    assert model.stop_training is False and stop.nonfinite is None
    stop.on_train_batch_end(1, {"loss": 1.0, "my_loss": float("inf")})
    assert model.stop_training is True and stop.nonfinite == {"epoch": 0, "batch": 1}


def test_config_round_trip():
    stop = StopOnNonFinite(monitor="val_loss", verbose=0)
    assert stop.async_safe is True
    config = stop.get_config()
    assert config == {"monitor": "val_loss", "verbose": 0}
    assert StopOnNonFinite(**config).get_config() == config
    assert keras.saving.get_registered_object("keras_recipes>StopOnNonFinite") is StopOnNonFinite


def test_keras_deserializes_the_registered_callback():
    serialized = keras.saving.serialize_keras_object(StopOnNonFinite(monitor="val_loss"))
    rebuilt = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(rebuilt, StopOnNonFinite) and rebuilt.monitor == "val_loss"
