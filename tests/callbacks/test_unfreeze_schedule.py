"""UnfreezeSchedule: takes effect inside one fit() on every backend, like a recompile.

Peer faults reproduced as regression tests (Keras 3.15 measured, issue 5):
- ``trainable = True`` from a callback is a silent no-op on TensorFlow, an
  ``Unknown variable`` error on torch, an error on JAX: the frozen weights must
  change after the stage on every backend (test_frozen_before_stage_...).
- ``compile()`` inside a callback fails: the schedule equals "fit, recompile,
  fit on" without calling it (test_equals_fit_recompile_fit).
- ``base(x, training=False)`` does not keep batch norm in inference mode
  (keras-team/keras#20285): the moving statistics must stay bitwise unchanged.
- Adam's global step count gives a weight unfrozen late a first step of ~2.5x
  the learning rate: ours is 1x (test_adam_first_step_...).
- Lightning's BackboneFinetuning re-freezes unfrozen modules on resume
  (Lightning-AI/pytorch-lightning#21901): a resumed run trains the backbone
  exactly as the uninterrupted run (test_resume_...).
"""

import json

import keras
import numpy as np
import pytest

from keras_recipes.applications import find_layer, unfreeze
from keras_recipes.callbacks import UnfreezeSchedule
from tests.applications.tiny import copies, data, tiny_transfer_model, weights_of

BACKEND = keras.backend.backend()
X, Y = data(16)
# One step of 4 rows: the batch shape of the equivalence tests, so that JAX's eager op
# cache (filled by the other jit mode's run) serves the other tests.
X4, Y4 = X[:4], Y[:4]


def _np(v):
    return np.array(keras.ops.convert_to_numpy(v), copy=True)


# The equivalence tests below run each backend's default (jitted on JAX, traced on
# TensorFlow, eager on torch) and the other jit mode, and the Keras-alone faults run
# each backend's default. The other tests run in each backend's cheapest mode for a few tiny
# steps: JAX without jit (its eager op cache serves every tiny model of this file, while
# each jitted fit and each rebuilt train function compiles anew: 1-2 s of CPU each) and
# TensorFlow eagerly (each traced fit and each rebuild costs a trace).
CHEAP = {"jax": {"jit_compile": False}, "tensorflow": {"run_eagerly": True}}.get(BACKEND, {})


def _compile(model, optimizer, jit_compile=None):
    mode = CHEAP if jit_compile is None else {"jit_compile": jit_compile}
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", **mode)


class _Record(keras.callbacks.Callback):
    """Backbone weights (copies) and the schedule's state at every epoch end."""

    def __init__(self, schedule=None):
        super().__init__()
        self.schedule = schedule
        self.epochs = {}

    def on_epoch_end(self, epoch, logs=None):
        model = self.model  # syncs the jax state
        backbone = find_layer(model, "backbone")
        self.epochs[epoch] = {
            "backbone": weights_of(backbone),
            "head": weights_of(find_layer(model, "predictions")),
            "state": None if self.schedule is None else self.schedule.get_state(),
        }


def _bn_stats(model):
    out = []
    for name in ("block4_bn", "block5_bn"):
        bn = find_layer(model, name)
        out += [_np(bn.moving_mean), _np(bn.moving_variance)]
    return out


def _conv(model, name):
    return _np(find_layer(model, name).kernel)


# ----------------------------------------------------------------- equivalence
SGD = {"momentum": 0.9}


def _schedule_run(jit_compile, start):
    model = tiny_transfer_model()
    model.set_weights(copies(start))
    _compile(model, keras.optimizers.SGD(1e-2, **SGD), jit_compile)
    schedule = UnfreezeSchedule(schedule={2: "all"}, learning_rate=1e-3, verbose=0)
    record = _Record()
    model.fit(X, Y, batch_size=4, epochs=4, shuffle=False, verbose=0,
              callbacks=[schedule, record])
    return model, schedule, record


@pytest.fixture(scope="module")
def reference():
    """Fit 2 epochs, unfreeze, recompile with lr 1e-3 (same SGD settings), fit 2 more."""
    model = tiny_transfer_model()
    start = copies(model.get_weights())
    _compile(model, keras.optimizers.SGD(1e-2, **SGD), "auto")
    model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    unfreeze(model.get_layer("backbone"))
    _compile(model, keras.optimizers.SGD(1e-3, **SGD), "auto")
    model.fit(X, Y, batch_size=4, epochs=4, initial_epoch=2, shuffle=False, verbose=0)
    return start, copies(model.get_weights()), model.jit_compile


def test_equals_fit_recompile_fit_frozen_before_the_stage_batch_norm_unchanged(reference):
    start, want, jit_compile = reference
    model, schedule, record = _schedule_run("auto", start)
    assert model.jit_compile == jit_compile
    got = model.get_weights()
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    moved = [not np.array_equal(a, b) for a, b in zip(got, start, strict=True)]
    assert sum(moved) == 6  # 2 convs x (kernel, bias) + head; batch norm untouched
    assert schedule.events[0]["epoch"] == 2 and schedule.events[0]["optimizer_rebuilt"]
    assert float(_np(model.optimizer.learning_rate)) == pytest.approx(1e-3)
    assert model.optimizer.momentum == 0.9

    # Frozen weights bitwise unchanged before the stage epoch, changed after.
    backbone = model.get_layer("backbone")
    names = ["/".join(w.path.split("/")[-2:]) for w in backbone.weights]
    first = copies(start[: len(names)])  # the backbone's weights come first
    for epoch in (0, 1):
        for a, b in zip(record.epochs[epoch]["backbone"], first, strict=True):
            np.testing.assert_array_equal(a, b)
    for epoch in (2, 3):
        changed = {n for n, a, b in zip(names, record.epochs[epoch]["backbone"], first,
                                        strict=True) if not np.array_equal(a, b)}
        assert changed == {
            "block4_conv/kernel", "block4_conv/bias", "block5_conv/kernel", "block5_conv/bias"
        }
    # Batch-norm moving statistics: bitwise the non-trivial values they started with.
    stats = [n for n in names if n.split("/")[-1].startswith("moving_")]
    assert len(stats) == 4
    for n, a, b in zip(names, backbone.get_weights(), first, strict=True):
        if n in stats:
            np.testing.assert_array_equal(a, b)
            assert np.any(b != 0) and np.any(b != 1)


class _NaiveUnfreeze(keras.callbacks.Callback):
    """What users try first: flip `trainable` (and maybe recompile) from a callback."""

    def __init__(self, recompile):
        super().__init__()
        self.recompile = recompile

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            unfreeze(self.model.get_layer("backbone"))
            if self.recompile:
                _compile(self.model, keras.optimizers.SGD(1e-3), "auto")


# Keras 3.15, measured: (error type or None, message fragment) per backend.
_NAIVE_FAULTS = {
    False: {"tensorflow": (None, None), "torch": (ValueError, "Unknown variable"),
            "jax": (ValueError, "must match")},
    True: {"tensorflow": (TypeError, "not callable"), "torch": (TypeError, "not callable"),
           "jax": (ValueError, "must match")},
}


@pytest.mark.parametrize("recompile", [False, True], ids=["trainable", "compile"])
def test_keras_alone_cannot_unfreeze_inside_fit(recompile):
    """Regression evidence for the peer faults UnfreezeSchedule works around.

    Setting ``trainable`` from a callback is a silent no-op on TensorFlow (the
    frozen kernel stays bitwise unchanged) and an error on torch and JAX;
    ``compile()`` from a callback fails on every backend.
    """
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(1e-2), "auto")  # each backend's default
    conv = _conv(model, "block4_conv")
    error, fragment = _NAIVE_FAULTS[recompile][BACKEND]
    if error is None:
        model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[_NaiveUnfreeze(recompile)])
        np.testing.assert_array_equal(_conv(model, "block4_conv"), conv)  # silently frozen
        assert len(model.trainable_weights) == 6  # although the flags say trainable
    else:
        with pytest.raises(error, match=fragment):
            model.fit(X, Y, batch_size=4, epochs=2, verbose=0,
                      callbacks=[_NaiveUnfreeze(recompile)])


def test_other_jit_mode_equals_the_reference(reference):
    start, want, default_jit = reference
    if BACKEND == "torch":
        pytest.skip(
            "jit_compile=True is torch.compile: 7 min for the two short fits of this test on "
            "this CPU (measured: same weights, max difference 0.0); beyond the test budget"
        )
    model, schedule, _ = _schedule_run(not default_jit, start)
    assert model.jit_compile == (not default_jit)
    for a, b in zip(model.get_weights(), want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert schedule.events[0]["optimizer_rebuilt"]


def test_batch_norm_statistics_move_when_asked():
    """The bitwise test above can fail: with keep_batchnorm_frozen=False they move."""
    model = tiny_transfer_model()
    stats = _bn_stats(model)
    _compile(model, keras.optimizers.SGD(0.01))
    schedule = UnfreezeSchedule(schedule={0: "all"}, keep_batchnorm_frozen=False, verbose=0)
    model.fit(X4, Y4, batch_size=4, epochs=1, verbose=0, callbacks=[schedule])
    assert all(not np.array_equal(a, b) for a, b in zip(_bn_stats(model), stats, strict=True))


# ---------------------------------------------------------------------- Adam
def _adam_first_step_ratio(iterations_before):
    """|update| / lr of Adam's first step on a weight new to a used optimizer (hand formula)."""
    t = iterations_before + 1
    b1, b2 = 0.9, 0.999
    return (1 - b1) / (1 - b1**t) * np.sqrt(1 - b2**t) / np.sqrt(1 - b2)


def test_adam_first_step_of_an_unfrozen_weight_is_one_learning_rate():
    lr = 1e-3
    # The peer fault, with Keras's own Adam: a weight whose slots are fresh in an
    # optimizer that already counted 1000 steps moves by ~2.5 lr.
    weight = keras.Variable(np.zeros((3, 3)), dtype="float32")
    adam = keras.optimizers.Adam(lr)
    adam.build([weight])
    adam.iterations.assign(1000)
    adam.apply([keras.ops.convert_to_tensor(np.full((3, 3), 0.5, "float32"))], [weight])
    ratio = np.abs(_np(weight)) / lr
    np.testing.assert_allclose(ratio, _adam_first_step_ratio(1000), rtol=1e-3)
    assert 2.4 < _adam_first_step_ratio(1000) < 2.6

    # Ours: the optimizer counted 1000 steps (head training), then the backbone unfreezes.
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.Adam(lr, epsilon=1e-10))  # eps << |g| (~1e-5 here)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(1000)
    before = weights_of(model.get_layer("backbone"))
    schedule = UnfreezeSchedule(schedule={0: "all"}, verbose=0)
    record = _Record()
    model.fit(X4, Y4, batch_size=4, epochs=1, verbose=0, callbacks=[schedule, record])  # 1 step
    assert int(_np(model.optimizer.iterations)) == 1
    conv_paths = [i for i, w in enumerate(model.get_layer("backbone").weights)
                  if w.path.endswith("kernel")]
    assert len(conv_paths) == 2
    for i in conv_paths:
        step = np.abs(record.epochs[0]["backbone"][i] - before[i]) / lr
        # Adam's first step: lr * g / (|g| + eps), i.e. 1 lr wherever |g| >> eps.
        assert np.median(step) == pytest.approx(1.0, rel=1e-3)
        assert step.max() <= 1.0 + 1e-4


def test_keep_optimizer_state_copies_the_head_momentum():
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(0.01, momentum=0.9))
    model.optimizer.build(model.trainable_variables)  # as after some head training:
    rng = np.random.default_rng(0)
    for v in model.optimizer.variables:
        if v.name not in ("iteration", "learning_rate"):
            v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    model.optimizer.iterations.assign(50)
    old = {v.name: _np(v) for v in model.optimizer.variables}
    head_slots = [n for n in old if n.startswith("predictions_")]
    assert len(head_slots) == 2 and any(np.any(old[n]) for n in head_slots)
    schedule = UnfreezeSchedule(schedule={1: "all"}, keep_optimizer_state=True, verbose=0)
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(1)
    new = {v.name: _np(v) for v in model.optimizer.variables}
    for n in head_slots:
        np.testing.assert_array_equal(new[n], old[n])
    conv_slots = [n for n in new if "_conv_" in n]
    assert len(conv_slots) == 4 and not any(np.any(new[n]) for n in conv_slots)
    assert int(_np(model.optimizer.iterations)) == 0


@pytest.fixture
def mixed_float16():
    # Reset here: tests/conftest.py's autouse fixture is shadowed by its own
    # parametrization of `keras_backend`, so its policy reset does not run.
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


def test_mixed_precision_loss_scale_optimizer_gets_the_new_rate_and_keeps_its_state(
    mixed_float16,
):
    """Regression: copying slots used to copy the inner optimizer's old learning rate back."""
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(0.05, momentum=0.9))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    model.optimizer.build(model.trainable_variables)
    head = [v for v in model.optimizer.variables if v.name.startswith("predictions_")]
    for v in head:
        v.assign(np.full(tuple(v.shape), 0.25, "float32"))
    model.optimizer.dynamic_scale.assign(1024.0)
    schedule = UnfreezeSchedule(schedule={1: "all"}, learning_rate=0.01,
                                keep_optimizer_state=True, verbose=0)
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(1)
    new = model.optimizer
    assert isinstance(new, keras.optimizers.LossScaleOptimizer)
    assert isinstance(new.inner_optimizer, keras.optimizers.SGD)
    assert new.inner_optimizer.momentum == 0.9
    assert float(_np(new.learning_rate)) == pytest.approx(0.01)
    assert float(_np(new.dynamic_scale)) == 1024.0
    for v in new.variables:
        if v.name.startswith("predictions_"):
            np.testing.assert_array_equal(_np(v), 0.25)


# ---------------------------------------------------------------- multi-stage
def test_multi_stage_schedule_with_per_stage_learning_rates():
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(0.05))
    schedule = UnfreezeSchedule(
        schedule={2: "block5_*", 4: "all"}, learning_rate={2: 0.02, 4: 0.01}, verbose=0
    )
    record = _Record()
    start = weights_of(model.get_layer("backbone"))
    names = ["/".join(w.path.split("/")[-2:]) for w in model.get_layer("backbone").weights]
    model.fit(X4, Y4, batch_size=4, epochs=5, verbose=0, callbacks=[schedule, record])

    def changed(epoch):
        return {n for n, a, b in zip(names, record.epochs[epoch]["backbone"], start, strict=True)
                if not np.array_equal(a, b)}

    assert changed(1) == set()
    assert changed(2) == changed(3) == {"block5_conv/kernel", "block5_conv/bias"}
    assert changed(4) == {"block5_conv/kernel", "block5_conv/bias",
                          "block4_conv/kernel", "block4_conv/bias"}
    assert [(e["epoch"], e["trainable_weights"]) for e in schedule.events] == [(2, 4), (4, 6)]
    assert [e["learning_rate"] for e in schedule.events] == pytest.approx([0.02, 0.01])


# ---------------------------------------------------------------------- resume
def test_resume_after_and_before_a_stage_equals_the_uninterrupted_run():
    """Plain SGD (no optimizer state), so a resumed run must match exactly."""
    sched = {2: "all"}
    reference = tiny_transfer_model()
    start = copies(reference.get_weights())
    _compile(reference, keras.optimizers.SGD(0.05))
    first = UnfreezeSchedule(schedule=sched, learning_rate=0.01, verbose=0)
    record = _Record(first)
    reference.fit(X[:8], Y[:8], batch_size=4, epochs=4, shuffle=False, verbose=0,
                  callbacks=[first, record])
    assert record.epochs[1]["state"] == {"applied": []}
    assert record.epochs[2]["state"] == {"applied": [2]}
    final = reference.get_weights()

    def resume(after_epoch, stop_at):
        model = tiny_transfer_model()  # a fresh process would build it frozen again
        model.set_weights(copies(start))
        model.get_layer("backbone").set_weights(record.epochs[after_epoch]["backbone"])
        model.get_layer("predictions").set_weights(record.epochs[after_epoch]["head"])
        _compile(model, keras.optimizers.SGD(0.05))
        schedule = UnfreezeSchedule(schedule=sched, learning_rate=0.01, verbose=0)
        state = json.loads(json.dumps(record.epochs[after_epoch]["state"]))  # a checkpoint
        schedule.set_state(state)
        rec = _Record()
        model.fit(X[:8], Y[:8], batch_size=4, epochs=stop_at, initial_epoch=after_epoch + 1,
                  shuffle=False, verbose=0, callbacks=[schedule, rec])
        return model, rec

    # Resumed after the stage: the backbone trains from the first resumed step.
    model, _ = resume(2, 4)
    for a, b in zip(model.get_weights(), final, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Resumed before it: frozen until epoch 2, then the same as the uninterrupted run.
    model, rec = resume(0, 3)
    for a, b in zip(rec.epochs[1]["backbone"], record.epochs[0]["backbone"], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(rec.epochs[2]["backbone"], record.epochs[2]["backbone"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_stage_that_changes_nothing_keeps_the_optimizer():
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(0.05, momentum=0.9))
    schedule = UnfreezeSchedule(schedule={0: "all"}, verbose=0)
    model.fit(X4, Y4, batch_size=4, epochs=1, verbose=0, callbacks=[schedule])
    optimizer = model.optimizer
    model.fit(X4, Y4, batch_size=4, epochs=2, initial_epoch=1, verbose=0, callbacks=[schedule])
    assert model.optimizer is optimizer
    assert [e["optimizer_rebuilt"] for e in schedule.events] == [False]


# ------------------------------------------------------------ beside the others
def test_inside_augmented_model_beside_early_stopping_and_gradient_histogram(tmp_path):
    from keras_recipes.callbacks import EarlyStopping, GradientHistogram
    from keras_recipes.callbacks.event_writer import read_scalars
    from keras_recipes.layers import MixUp
    from keras_recipes.models import AugmentedModel

    net = tiny_transfer_model()
    stats = _bn_stats(net)
    model = AugmentedModel(net, MixUp(alpha=0.4, num_classes=3, seed=0))
    # Jitted on JAX: MixUp and the gradient capture cost more eagerly (measured).
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="categorical_crossentropy",
                  **({} if BACKEND == "jax" else CHEAP))
    conv4 = _conv(net, "block4_conv")
    schedule = UnfreezeSchedule(schedule={1: "all"}, verbose=0)
    stopper = EarlyStopping(monitor="loss", patience=10)
    # Gradients captured from the real training steps (no probe batch): after the stage
    # the model has a new optimizer, which GradientHistogram must wrap in turn.
    histograms = GradientHistogram(str(tmp_path), histograms=False, verbose=0)
    record = _Record()
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0,
              callbacks=[schedule, stopper, histograms, record])
    np.testing.assert_array_equal(
        record.epochs[0]["backbone"][0], conv4
    )  # block4_conv kernel frozen in epoch 0
    assert not np.array_equal(_conv(net, "block4_conv"), conv4)
    for a, b in zip(_bn_stats(net), stats, strict=True):
        np.testing.assert_array_equal(a, b)
    tags = read_scalars(tmp_path / "train")
    conv_tags = [t for t in tags if t.startswith("gradient_norm/") and "block4_conv" in t]
    assert conv_tags, sorted(tags)
    assert sorted(step for step, _ in tags[conv_tags[0]]) == [1, 2]


def test_tf_distribute_strategy_scope():
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute strategies exist only on the tensorflow backend")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = tiny_transfer_model()
        # Eagerly: the traced steps under a strategy (2 replicas) are the distribute tests'.
        _compile(model, keras.optimizers.SGD(0.05, momentum=0.9))
    conv4 = _conv(model, "block4_conv")
    schedule = UnfreezeSchedule(schedule={1: "all"}, learning_rate=0.01, verbose=0)
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule])
    assert not np.array_equal(_conv(model, "block4_conv"), conv4)
    for v in model.optimizer.variables:
        assert strategy.extended.variable_created_in_scope(v.value), v.path


# --------------------------------------------------------------------- misc
def test_missing_backbone_is_a_clear_error_at_train_begin():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="No layer named 'backbone'"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)), epochs=1, verbose=0,
                  callbacks=[UnfreezeSchedule(verbose=0)])


def test_due_stages_is_pure():
    schedule = UnfreezeSchedule(schedule={4: "all", 2: "block5_*"}, verbose=0)
    assert schedule.due_stages(1) == []
    assert schedule.due_stages(2) == [2]
    assert schedule.due_stages(5) == [2, 4]
    assert schedule.due_stages(5, applied=[2]) == [4]
    assert schedule.applied == []


def test_verbose_line(capsys):
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.SGD(0.05))
    schedule = UnfreezeSchedule(schedule={0: "block5_*"}, learning_rate=0.01)
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(0)
    out = capsys.readouterr().out
    assert "Epoch 1: UnfreezeSchedule: 'block5_*' of 'backbone' trainable (4 weights" in out
    assert "new SGD optimizer, learning_rate=0.01." in out


def test_a_learning_rate_schedule_restarts_with_the_new_optimizer():
    model = tiny_transfer_model()
    _compile(model, keras.optimizers.Adam(1e-3, global_clipnorm=2.0))
    decay = keras.optimizers.schedules.ExponentialDecay(1e-4, decay_steps=10, decay_rate=0.5)
    schedule = UnfreezeSchedule(schedule={3: "all"}, learning_rate=decay, verbose=0)
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(3)
    new = model.optimizer
    assert isinstance(new, keras.optimizers.Adam) and new.global_clipnorm == 2.0
    assert isinstance(new._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert float(_np(new.learning_rate)) == pytest.approx(1e-4)  # step 0 of the schedule
    assert schedule.events[0]["learning_rate"] == "ExponentialDecay"


def test_config_round_trip_and_state_json():
    lr = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)
    schedule = UnfreezeSchedule(
        "features", {3: ["a", "b"], 6: 2}, learning_rate={3: lr, 6: 1e-4},
        keep_optimizer_state=True, verbose=0,
    )
    config = schedule.get_config()
    json.dumps(config)
    clone = UnfreezeSchedule.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    clone.set_state({"applied": [3]})
    assert json.loads(json.dumps(clone.get_state())) == {"applied": [3]}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": ""}, "argument `backbone`. Expected the name of a layer"),
        ({"schedule": {}}, r"argument `schedule`. Expected a non-empty dict"),
        ({"schedule": {-1: "all"}}, "Expected epochs that are ints >= 0"),
        ({"schedule": {1: 0}}, "Expected values 'all', an int > 0"),
        ({"learning_rate": -1.0}, "argument `learning_rate`. Expected a float > 0"),
        ({"learning_rate": {7: 1e-3}}, "Expected a dict keyed by epochs of the schedule"),
        ({"learning_rate": {10: "fast"}}, "Expected a dict of floats > 0"),
        ({"verbose": 3}, "argument `verbose`. Expected 0, 1 or 2"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UnfreezeSchedule(**kwargs)


def test_set_state_rejects_unknown_stages():
    schedule = UnfreezeSchedule(schedule={2: "all"}, verbose=0)
    with pytest.raises(ValueError, match="argument `state`. Expected applied stages"):
        schedule.set_state({"applied": [3]})
