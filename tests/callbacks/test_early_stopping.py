"""EarlyStopping: the pure decision driven by tables, the hooks by scripted logs, and one fit."""

import inspect
import json
import math

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import EarlyStopping
from keras_recipes.callbacks.early_stopping import STOP_REASONS, StopState

NAN, INF = float("nan"), float("inf")
KERAS_VERSION = tuple(int(p) for p in keras.__version__.split(".")[:3] if p.isdigit())


def run_sequence(stopper, values):
    """Feeds `values` (floats, or (val, train) pairs) through the pure decision.

    Returns (stop_epoch or None, reason, final state).
    """
    state = StopState()
    for epoch, value in enumerate(values):
        val, train = value if isinstance(value, tuple) else (value, None)
        decision = stopper.evaluate(state, epoch, val, train)
        state = decision.state
        if decision.stop:
            return epoch, decision.reason, state
    return None, None, state


# (id, kwargs, monitored sequence, stop epoch, reason, best, best_epoch)
TABLE = [
    ("patience", dict(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7], 3, "patience", 0.8, 1),
    ("patience_0_first_bad", dict(patience=0), [1.0, 0.9, 0.95, 0.5], 2, "patience", 0.9, 1),
    ("patience_1_same_as_0", dict(patience=1), [1.0, 0.9, 0.95, 0.5], 2, "patience", 0.9, 1),
    ("no_stop", dict(patience=1), [1.0, 0.9, 0.8, 0.7], None, None, 0.7, 3),
    ("equal_is_no_improvement", dict(patience=1), [1.0, 1.0], 1, "patience", 1.0, 0),
    # NaN / inf: never the best; stop at once by default.
    ("nan_first", dict(patience=2), [NAN, 1.0, 0.9], 0, "non_finite", None, None),
    ("inf_later", dict(patience=5), [1.0, 0.5, INF, 0.1], 2, "non_finite", 0.5, 1),
    ("nan_first_unchecked", dict(patience=2, check_finite=False),
     [NAN, 1.0, 0.9, 0.8], None, None, 0.8, 3),
    ("nan_middle_unchecked", dict(patience=2, check_finite=False),
     [1.0, NAN, NAN, 0.5], 2, "patience", 1.0, 0),
    ("nan_in_warmup", dict(start_from_epoch=2), [NAN, 1.0], 0, "non_finite", None, None),
    # min_delta, absolute and relative (scale-invariant).
    ("abs_delta", dict(patience=2, min_delta=0.1), [1.0, 0.95, 0.92], 2, "patience", 1.0, 0),
    ("abs_delta_big_scale", dict(patience=2, min_delta=0.1),
     [100.0, 95.0, 92.0], None, None, 92.0, 2),
    ("rel_delta", dict(patience=1, min_delta=0.045, min_delta_mode="rel"),
     [1.0, 0.95, 0.91], 2, "patience", 0.95, 1),
    ("rel_delta_big_scale", dict(patience=1, min_delta=0.045, min_delta_mode="rel"),
     [100.0, 95.0, 91.0], 2, "patience", 95.0, 1),
    # mode max (accuracy).
    ("max", dict(monitor="val_accuracy", patience=2, mode="max"),
     [0.5, 0.6, 0.55, 0.58], 3, "patience", 0.6, 1),
    ("max_auto", dict(monitor="val_accuracy", patience=2),
     [0.5, 0.6, 0.55, 0.58], 3, "patience", 0.6, 1),
    # baseline: improving every epoch but never beating it still stops (Keras never does).
    ("baseline_never", dict(patience=3, baseline=0.5),
     [0.9, 0.8, 0.7, 0.6, 0.55], 2, "baseline_not_reached", 0.7, 2),
    ("baseline_reached", dict(patience=2, baseline=0.5),
     [0.9, 0.4, 0.45, 0.46], 3, "patience", 0.4, 1),
    # thresholds.
    ("good_enough", dict(patience=5, stopping_threshold=0.1),
     [1.0, 0.5, 0.09, 0.05], 2, "threshold_reached", 0.09, 2),
    ("diverged", dict(patience=5, divergence_threshold=10.0),
     [1.0, 2.0, 11.0], 2, "diverged", 1.0, 0),
    ("diverged_max", dict(monitor="val_accuracy", mode="max", divergence_threshold=0.2),
     [0.5, 0.6, 0.1], 2, "diverged", 0.6, 1),
    # overfitting: val worse while train better, overfit_patience epochs in a row.
    ("overfit", dict(patience=10, overfit_patience=2),
     [(1.0, 1.0), (0.8, 0.8), (0.85, 0.7), (0.9, 0.6)], 3, "overfitting", 0.8, 1),
    ("overfit_interrupted", dict(patience=10, overfit_patience=2),
     [(1.0, 1.0), (0.8, 0.8), (0.85, 0.7), (0.84, 0.6), (0.9, 0.5)], None, None, 0.8, 1),
    ("both_worse_is_not_overfit", dict(patience=10, overfit_patience=1),
     [(1.0, 1.0), (1.1, 1.1), (1.2, 1.2)], None, None, 1.0, 0),
    # warm-up.
    ("start_from_epoch", dict(patience=1, start_from_epoch=2),
     [1.0, 0.5, 2.0, 2.5, 3.0], 3, "patience", 2.0, 2),
]


@pytest.mark.parametrize(
    "kwargs, values, stop_epoch, reason, best, best_epoch",
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision_table(kwargs, values, stop_epoch, reason, best, best_epoch):
    kwargs = {"mode": "min", **kwargs} if "monitor" not in kwargs else kwargs
    stopper = EarlyStopping(**kwargs)
    got_epoch, got_reason, state = run_sequence(stopper, values)
    assert (got_epoch, got_reason) == (stop_epoch, reason)
    assert got_reason is None or got_reason in STOP_REASONS
    assert state.best == best and state.best_epoch == best_epoch
    assert state.best is None or math.isfinite(state.best)


def test_evaluate_is_pure():
    stopper = EarlyStopping(mode="min", patience=1)
    state = StopState(best=1.0, best_epoch=0, wait=0)
    first = stopper.evaluate(state, 1, 2.0)
    again = stopper.evaluate(state, 1, 2.0)
    assert first == again and state == StopState(best=1.0, best_epoch=0, wait=0)
    assert stopper.state == StopState()


# ----------------------------------------------------------------- hooks
def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def _drive(callback, model, logs_per_epoch, start_epoch=0):
    """Calls the hooks like fit does; each epoch writes a marker into the weights."""
    callback.set_model(model)
    callback.on_train_begin()
    ran = []
    for epoch, logs in enumerate(logs_per_epoch, start=start_epoch):
        callback.on_epoch_begin(epoch)
        for v in model.weights:
            v.assign(np.full(v.shape, float(epoch), "float32"))
        callback.on_epoch_end(epoch, logs)
        ran.append(epoch)
        if model.stop_training:
            break
    callback.on_train_end()
    return ran


def _marker(model):
    values = {float(np.unique(keras.ops.convert_to_numpy(v.value))[0]) for v in model.weights}
    assert len(values) == 1
    return values.pop()


@pytest.mark.parametrize(
    "values, ran, restored",
    [
        ([1.0, 0.5, 0.7, 0.8, 0.9, 0.1], [0, 1, 2, 3, 4], 1.0),  # stopped by patience
        ([1.0, 0.5, 0.7], [0, 1, 2], 1.0),  # natural end before patience ran out
        ([1.0, 0.9, 0.4], [0, 1, 2], 2.0),  # the last epoch is the best
    ],
    ids=["stopped", "natural_end", "last_is_best"],
)
def test_restore_best_weights_whatever_ended_training(values, ran, restored):
    model = _model()
    stopper = EarlyStopping(patience=3, restore_best_weights=True)
    got = _drive(stopper, model, [{"val_loss": v} for v in values])
    assert got == ran
    assert _marker(model) == restored


def test_restore_after_another_callback_stopped_training():
    model = _model()
    stopper = EarlyStopping(patience=5, restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, value in enumerate([1.0, 0.2, 0.5]):
        for v in model.weights:
            v.assign(np.full(v.shape, float(epoch), "float32"))
        stopper.on_epoch_end(epoch, {"val_loss": value})
    model.stop_training = True  # e.g. a time budget callback
    stopper.on_train_end()
    assert _marker(model) == 1.0 and stopper.stop_reason is None


def test_restore_in_real_fit_keeps_device_copies_valid():
    """Best weights are on-device copies; they survive later steps (jax donates buffers)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0]])).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    scripted = [3.0, 1.0, 2.0, 4.0, 5.0]  # the monitored score: best at epoch 1
    per_epoch = []

    def record(epoch, logs):
        logs["val_score"] = scripted[epoch]  # seen by the callbacks after this one
        per_epoch.append([np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights])

    stopper = EarlyStopping(monitor="val_score", mode="min", patience=10,
                            restore_best_weights=True)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=record), stopper])
    assert stopper.best_epoch == 1 and stopper.stop_reason is None
    # Kept as backend tensors (on the variables' device), not NumPy host copies.
    assert all(keras.ops.is_tensor(w) and not isinstance(w, np.ndarray)
               for w in stopper.best_weights)
    assert not np.array_equal(per_epoch[1][0], per_epoch[4][0])
    for v, want in zip(model.weights, per_epoch[1], strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), want)


def test_drop_in_superset_same_arguments_and_defaults():
    """Every argument of keras.callbacks.EarlyStopping, same position and default."""
    theirs = list(inspect.signature(keras.callbacks.EarlyStopping.__init__).parameters.values())
    ours = list(inspect.signature(EarlyStopping.__init__).parameters.values())
    assert [(p.name, p.default) for p in ours[: len(theirs)]] == [
        (p.name, p.default) for p in theirs
    ]
    extra = {p.name: p.default for p in ours[len(theirs):]}
    assert extra == dict(check_finite=True, min_delta_mode="abs", stopping_threshold=None,
                         divergence_threshold=None, overfit_patience=None,
                         reset_on_train_begin=True)
    assert all(p.kind is p.KEYWORD_ONLY for p in ours[len(theirs):])
    # Positional use as with Keras: monitor, min_delta, patience, verbose, mode, baseline.
    stopper = EarlyStopping("val_loss", 0.1, 2, 0, "min", None, True, 1)
    assert (stopper.min_delta, stopper.patience, stopper.restore_best_weights,
            stopper.start_from_epoch) == (0.1, 2, True, 1)


def test_overfit_rule_through_the_hooks():
    """on_epoch_end pairs val_loss with loss from the logs (the table drives evaluate())."""
    model = _model()
    stopper = EarlyStopping(patience=10, overfit_patience=2, restore_best_weights=True)
    logs = [dict(loss=1.0, val_loss=1.0), dict(loss=0.8, val_loss=0.8),
            dict(loss=0.7, val_loss=0.85), dict(loss=0.6, val_loss=0.9),
            dict(loss=0.5, val_loss=0.95)]
    assert _drive(stopper, model, logs) == [0, 1, 2, 3]
    assert (stopper.stop_reason, stopper.stopped_epoch, stopper.best, stopper.best_epoch) == (
        "overfitting", 3, 0.8, 1)
    assert _marker(model) == 1.0  # the best epoch's weights
    # Without the training counterpart in the logs the rule cannot fire.
    blind = EarlyStopping(patience=10, overfit_patience=2)
    assert _drive(blind, _model(), [{"val_loss": d["val_loss"]} for d in logs]) == list(range(5))
    assert blind.stop_reason is None


# ---------------------------------------------- faults of keras.callbacks.EarlyStopping
def _drive_keras_and_ours(kwargs, values):
    out = []
    for cls in (keras.callbacks.EarlyStopping, EarlyStopping):
        model = _model()
        cb = cls(**kwargs)
        ran = _drive(cb, model, [{"val_loss": v} for v in values])
        out.append((cb, ran, model))
    return out


def test_nan_first_value_never_becomes_best():
    values = [NAN, 1.0, 0.9, 0.8]
    (keras_cb, keras_ran, keras_model), (ours, ran, model) = _drive_keras_and_ours(
        dict(patience=2, restore_best_weights=True), values
    )
    if KERAS_VERSION <= (3, 15, 1):  # the peer fault this test reproduces
        assert math.isnan(keras_cb.best) and keras_ran == [0, 1, 2]
        assert _marker(keras_model) == 0.0  # restored the NaN epoch's weights
    assert ran == [0] and ours.stop_reason == "non_finite" and ours.best is None
    # Without the finite check, NaN counts as no improvement and never becomes best.
    unchecked = EarlyStopping(patience=2, restore_best_weights=True, check_finite=False)
    model = _model()
    assert _drive(unchecked, model, [{"val_loss": v} for v in values]) == [0, 1, 2, 3]
    assert unchecked.best == 0.8 and unchecked.best_epoch == 3 and _marker(model) == 3.0


def test_baseline_stops_even_when_improving_every_epoch():
    values = [0.9, 0.8, 0.7, 0.6, 0.55, 0.52]
    (keras_cb, keras_ran, _), (ours, ran, _) = _drive_keras_and_ours(
        dict(patience=3, baseline=0.5), values
    )
    if KERAS_VERSION <= (3, 15, 1):
        assert keras_ran == list(range(6)) and keras_cb.stopped_epoch == 0  # never stops
    assert ran == [0, 1, 2] and ours.stop_reason == "baseline_not_reached"


def test_state_survives_resume_via_get_set_state():
    first, second = [1.0, 1.1, 1.2], [1.3]
    keras_cb = keras.callbacks.EarlyStopping(patience=3)
    model = _model()
    _drive(keras_cb, model, [{"val_loss": v} for v in first])
    _drive(keras_cb, model, [{"val_loss": v} for v in second], start_epoch=3)
    if KERAS_VERSION <= (3, 15, 1):
        assert keras_cb.stopped_epoch == 0 and keras_cb.best == 1.3  # counting started over

    ours = EarlyStopping(patience=3)
    _drive(ours, model, [{"val_loss": v} for v in first])
    saved = json.loads(json.dumps(ours.get_state(), allow_nan=False))
    resumed = EarlyStopping(patience=3)
    resumed.set_state(saved)
    assert _drive(resumed, model, [{"val_loss": v} for v in second], start_epoch=3) == [3]
    assert resumed.stop_reason == "patience" and resumed.stopped_epoch == 3
    assert resumed.best == 1.0 and resumed.best_epoch == 0


def test_one_instance_spans_two_fits_without_reset():
    model = _model()
    ours = EarlyStopping(patience=3, reset_on_train_begin=False)
    _drive(ours, model, [{"val_loss": v} for v in [1.0, 1.1, 1.2]])
    assert _drive(ours, model, [{"val_loss": 1.3}], start_epoch=3) == [3]
    assert ours.stop_reason == "patience"
    default = EarlyStopping(patience=3)
    _drive(default, model, [{"val_loss": v} for v in [1.0, 1.1, 1.2]])
    _drive(default, model, [{"val_loss": 1.3}], start_epoch=3)
    assert default.stop_reason is None and default.best == 1.3  # reset, as Keras


def test_set_state_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        EarlyStopping().set_state({"best": 1.0, "patience_left": 2})


# ------------------------------------------------------------ mode="auto"
def test_auto_mode_unknown_metric_fails_at_train_begin():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    epochs_run = []
    counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: epochs_run.append(e))
    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[EarlyStopping(monitor="val_my_score"), counter])
    assert epochs_run == []
    # Keras's own callback accepts it at train begin and fails after the first epoch.
    theirs = keras.callbacks.EarlyStopping(monitor="val_my_score")
    theirs.set_model(model)
    theirs.on_train_begin()
    if KERAS_VERSION <= (3, 15, 1):
        with pytest.raises(ValueError, match="automatically determine"):
            theirs.on_epoch_end(0, {"val_my_score": 1.0})


@pytest.mark.parametrize(
    "monitor, sign",
    [("val_loss", -1.0), ("loss", -1.0), ("val_mae", -1.0), ("val_binary_crossentropy", -1.0),
     ("val_acc", 1.0), ("accuracy", 1.0), ("val_top_k_categorical_accuracy", 1.0),
     ("val_auc", 1.0)],
)
def test_auto_mode_direction_from_name(monitor, sign):
    stopper = EarlyStopping(monitor=monitor)
    stopper.set_model(_model())
    stopper.on_train_begin()
    assert stopper._sign == sign


def test_auto_mode_direction_from_the_compiled_metric_object():
    """A custom name: the direction comes from the metric (built in fit; TF: first step)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="score")])
    x, y = np.zeros((4, 2), "float32"), np.array([[0], [1], [0], [1]], "float32")
    stopper = EarlyStopping(monitor="val_score")
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[stopper])
    assert stopper._sign == 1.0 and stopper.best is not None


def test_missing_metric_warns_once_and_does_not_stop():
    model = _model()
    stopper = EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(RuntimeWarning, match="not available"):
        ran = _drive(stopper, model, [{"loss": 1.0}, {"loss": 2.0}])
    assert ran == [0, 1] and stopper.stop_reason is None


def test_verbose_message_says_why(capsys):
    model = _model()
    stopper = EarlyStopping(patience=1, verbose=1, restore_best_weights=True)
    _drive(stopper, model, [{"val_loss": v} for v in [1.0, 2.0]])
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping (patience)" in out and "did not improve" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out


# ------------------------------------------------------ config and errors
def test_config_round_trip():
    stopper = EarlyStopping(
        monitor="val_accuracy", mode="max", patience=3, baseline=0.5, min_delta=0.01,
        min_delta_mode="rel", stopping_threshold=0.99, divergence_threshold=0.1,
        overfit_patience=2, restore_best_weights=True, reset_on_train_begin=False,
    )
    config = json.loads(json.dumps(stopper.get_config()))
    assert EarlyStopping.from_config(config).get_config() == config
    assert config["overfit_patience"] == 2 and config["min_delta_mode"] == "rel"
    # Registered for Keras deserialization (keras.saving.serialize_keras_object itself is
    # not called: under torch/jax it imports TensorFlow, ~10 s).
    assert keras.saving.get_registered_object("keras_recipes>EarlyStopping") is EarlyStopping


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(monitor=""), "`monitor`. Expected a non-empty string"),
        (dict(min_delta=-0.1), "`min_delta`. Expected a float >= 0"),
        (dict(patience=-1), "`patience`. Expected an int >= 0"),
        (dict(verbose=-1), "`verbose`. Expected an int >= 0"),
        (dict(mode="best"), "`mode`. Expected one of 'auto', 'min', 'max'"),
        (dict(baseline=NAN), "`baseline`. Expected None or a finite float"),
        (dict(stopping_threshold="low"), "`stopping_threshold`. Expected None or a finite"),
        (dict(divergence_threshold=INF), "`divergence_threshold`. Expected None or a finite"),
        (dict(start_from_epoch=-2), "`start_from_epoch`. Expected an int >= 0"),
        (dict(min_delta_mode="percent"), "`min_delta_mode`. Expected 'abs' or 'rel'"),
        (dict(overfit_patience=0), "`overfit_patience`. Expected None or an int >= 1"),
        (dict(monitor="loss", overfit_patience=2), "`monitor`. Expected a validation metric"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


# ------------------------------------------- issue 33: Keras's own tests pass
def _f1_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[keras.metrics.F1Score(threshold=0.5, name="f1_score")])
    return model


def test_f1_score_size_one_array_is_monitored_both_sides():
    """F1Score logs an array of shape (1,): monitored like Keras (also the training side)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 2)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = _f1_model()
    stopper = EarlyStopping(monitor="val_f1_score", patience=5, overfit_patience=2)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y),
                        callbacks=[stopper])
    assert np.shape(history.history["val_f1_score"][0]) in ((1,), ())
    assert stopper.monitor_op is keras.ops.greater
    assert isinstance(stopper.best, float) and math.isfinite(stopper.best)
    assert isinstance(stopper.state.previous_train, float)


def test_size_one_arrays_in_the_pure_decision_and_larger_ones_rejected():
    stopper = EarlyStopping(monitor="val_f1_score", mode="max", overfit_patience=1)
    state = stopper.evaluate(StopState(), 0, np.array([0.5]), np.array([0.4])).state
    assert (state.best, state.previous_train) == (0.5, pytest.approx(0.4))
    assert stopper.evaluate(state, 1, np.array([[0.7]], "float32")).state.best == (
        pytest.approx(0.7))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        stopper.evaluate(state, 1, np.array([0.5, 0.6]))


def test_public_attributes_as_keras():
    """`monitor_op`, `best`, `wait`, `best_epoch` exist, start and reset as in Keras 3.15,
    and user code can set them, with the same meaning."""
    theirs = keras.callbacks.EarlyStopping(monitor="loss", patience=3)
    ours = EarlyStopping(monitor="loss", patience=3)
    for cb in (theirs, ours):
        cb.set_model(_model())
        cb.on_train_begin()
    for name in ("best", "wait", "best_epoch", "stopped_epoch", "best_weights"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.best_epoch == 0 and ours.state.best_epoch is None
    assert EarlyStopping(mode="max").monitor_op is keras.ops.greater
    assert EarlyStopping(mode="min").monitor_op is keras.ops.less
    assert EarlyStopping(monitor="val_loss").monitor_op is None  # mode="auto": resolved later
    assert ours.monitor_op is keras.ops.less

    # Set by user code: the decision and get_state() follow.
    ours.best, ours.wait, ours.best_epoch = 0.5, 2, 4
    assert (ours.best, ours.wait, ours.best_epoch) == (0.5, 2, 4)
    assert ours.get_state()["best"] == 0.5 and ours.get_state()["wait"] == 2
    ours.on_epoch_end(5, {"loss": 0.6})  # no improvement on the set best: wait 3 = patience
    assert ours.model.stop_training and ours.stop_reason == "patience"
    assert ours.best_epoch == 4

    ours.monitor_op = keras.ops.greater
    assert ours._sign == 1.0 and ours.monitor_op is keras.ops.greater
    with pytest.raises(ValueError, match="monitor_op"):
        ours.monitor_op = max

    # on_train_begin resets what Keras resets.
    ours.best_weights = object()
    ours.on_train_begin()
    assert (ours.best, ours.wait, ours.best_epoch, ours.stopped_epoch, ours.best_weights) == (
        None, 0, 0, 0, None)


def test_unknown_monitor_on_a_never_fitted_model_raises_like_keras():
    """Keras 3.15 raises at the first epoch end, even though `unknown` is not in the logs
    (TensorFlow: the compiled metrics are unbuilt at train begin). Ours raises at the
    latest there; on the other backends already at train begin."""
    model = _model()  # compiled, never fitted
    epochs_run = []
    counter = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: epochs_run.append(e))
    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
                  callbacks=[counter, EarlyStopping(monitor="unknown")])
    assert epochs_run in ([], [0])
    # The hook alone: unknown direction and missing value still raise at the epoch end.
    stopper = EarlyStopping(monitor="unknown")
    stopper.set_model(model)
    stopper._resume_pending = False
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        stopper.on_epoch_end(0, {"loss": 1.0})


def test_restore_best_weights_on_a_duck_typed_model_uses_get_set_weights():
    """Keras's callback accepts any object with get_weights/set_weights (as its own test)."""

    class Dummy:
        stop_training = False
        weights = -1

        def get_weights(self):
            return self.weights

        def set_weights(self, weights):
            self.weights = weights

    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    stopper.set_model(Dummy())
    stopper.on_train_begin()
    for epoch, value in enumerate([0.2, 0.15, 0.1, 0.11, 0.12]):
        stopper.model.weights = epoch
        stopper.on_epoch_end(epoch, {"val_loss": value})
    stopper.on_train_end()
    assert stopper.stop_reason == "patience" and stopper.model.weights == 2
