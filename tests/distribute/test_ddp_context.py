"""DDPContext (torch) in this process, as a world of one (gloo over 127.0.0.1).

Two-process training is in test_torch_ddp.py; here the paths that do not need
a second process: argument checks, refusals, feeds, and the step guard.
"""

import os

import keras
import numpy as np
import pytest

from keras_recipes.distribute.ddp_context import DDPContext, _Guard, _Steps
from tests.distribute.launch import free_loopback_port

TORCH = keras.backend.backend() == "torch"
needs_torch = pytest.mark.skipif(not TORCH, reason="torch DDP runs on the torch backend")


@pytest.mark.skipif(TORCH, reason="checks the refusal under the other backends")
def test_refuses_other_backends():
    with pytest.raises(ValueError, match="needs the torch backend"):
        DDPContext()


@needs_torch
def test_outside_torchrun_says_how_to_launch(monkeypatch):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="(?s)Missing: RANK.*torchrun --standalone"):
        DDPContext()


@needs_torch
def test_rejects_unknown_process_group_backend():
    with pytest.raises(ValueError, match="argument `process_group_backend`"):
        DDPContext(process_group_backend="mpi")


@pytest.fixture(scope="module")
def world_of_one():
    if not TORCH:
        pytest.skip("torch DDP runs on the torch backend")
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(free_loopback_port()))
    context = DDPContext(process_group_backend="gloo", timeout_s=60)
    yield context
    context.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _model(built=True):
    layers = [keras.Input((3,))] if built else []
    model = keras.Sequential([*layers, keras.layers.Dense(2, name="d")])
    if built:
        model.get_layer("d").kernel.assign(np.arange(6, dtype="float32").reshape(3, 2) / 10)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    return model


def _data(n=12):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")


def test_world_of_one_trains_like_model_fit(world_of_one):
    x, y = _data()
    a, b = _model(), _model()
    history = world_of_one.fit(a, x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                               validation_data=(x, y))
    plain = b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(x, y))
    np.testing.assert_allclose(a.get_layer("d").kernel.numpy(), b.get_layer("d").kernel.numpy(),
                               atol=1e-7)
    for key, values in plain.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-6)
    assert a.train_function is None and a.test_function is None  # plain Keras again


def test_tf_data_pipeline_trains_like_model_fit(world_of_one):
    from keras_recipes.data.pipeline import to_dataset

    x, y = _data()
    a, b = _model(), _model()
    world_of_one.fit(a, to_dataset(x, y, batch_size=4, shuffle=True, seed=3), epochs=2,
                     verbose=0)
    b.fit(to_dataset(x, y, batch_size=4, shuffle=True, seed=3), epochs=2, verbose=0,
          shuffle=False)
    np.testing.assert_allclose(a.get_layer("d").kernel.numpy(), b.get_layer("d").kernel.numpy(),
                               atol=1e-7)


def test_shuffled_arrays_follow_epoch_batches_with_the_shared_seed(world_of_one):
    """Shuffled arrays: epoch e in the order of epoch_batches(seed) (the seed rank 0 draws
    from NumPy's global state and broadcasts); a run resumed at initial_epoch matches."""
    from keras_recipes.data import epoch_batches

    x, y = _data(10)
    np.random.seed(5)
    seed = np.random.randint(0, 2**31 - 1)
    a, b, c = _model(), _model(), _model()
    np.random.seed(5)
    history = world_of_one.fit(a, x, y, batch_size=4, epochs=3, verbose=0)
    plain = b.fit(epoch_batches(x, y, 4, seed=seed, epochs=3), epochs=3, steps_per_epoch=3,
                  shuffle=False, verbose=0)
    np.testing.assert_allclose(a.get_layer("d").kernel.numpy(), b.get_layer("d").kernel.numpy(),
                               atol=1e-7)
    for key, values in plain.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-6)
    for first, last in ((0, 1), (1, 3)):  # SGD without momentum: the weights are the state
        np.random.seed(5)
        world_of_one.fit(c, x, y, batch_size=4, initial_epoch=first, epochs=last, verbose=0)
    np.testing.assert_allclose(c.get_layer("d").kernel.numpy(), a.get_layer("d").kernel.numpy(),
                               atol=1e-7)


def test_structured_inputs_and_sample_weights_train_like_model_fit(world_of_one):
    def two_inputs():
        a_in, b_in = keras.Input((2,), name="a"), keras.Input((1,), name="b")
        dense = keras.layers.Dense(2, name="d")
        model = keras.Model({"a": a_in, "b": b_in},
                            dense(keras.layers.Concatenate()([a_in, b_in])))
        dense.kernel.assign(np.arange(6, dtype="float32").reshape(3, 2) / 10)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return model

    x, y = _data(10)
    inputs, w = {"a": x[:, :2], "b": x[:, 2:]}, np.linspace(0.0, 1.0, 10).astype("float32")
    a, b = two_inputs(), two_inputs()
    history = world_of_one.fit(a, inputs, y, sample_weight=w, batch_size=4, epochs=2,
                               shuffle=False, verbose=0)
    plain = b.fit(inputs, y, sample_weight=w, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(a.get_layer("d").kernel.numpy(), b.get_layer("d").kernel.numpy(),
                               atol=1e-7)
    np.testing.assert_allclose(history.history["loss"], plain.history["loss"], rtol=1e-6)


def test_validation_split_uses_the_last_rows(world_of_one):
    x, y = _data()
    a, b = _model(), _model()
    h = world_of_one.fit(a, x, y, batch_size=3, validation_split=0.25, shuffle=False, verbose=0)
    ref = b.fit(x[:9], y[:9], batch_size=3, shuffle=False, verbose=0,
                validation_data=(x[9:], y[9:]))
    np.testing.assert_allclose(h.history["val_loss"], ref.history["val_loss"], rtol=1e-6)


def test_evaluate_restores_plain_keras(world_of_one):
    x, y = _data()
    model = _model()
    logs = world_of_one.evaluate(model, x, y, batch_size=4, verbose=0)
    assert model.train_function is None and model.test_function is None
    np.testing.assert_allclose(logs["loss"], model.evaluate(x, y, verbose=0)[0], rtol=1e-6)


def test_steps_survive_a_rebuilt_train_function(world_of_one):
    class Rebuild(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.model.make_train_function(force=True)  # as UnfreezeSchedule does

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(type(getattr(self.model.train_function, "__self__", None)))

    x, y = _data()
    world_of_one.fit(_model(), x, y, batch_size=6, epochs=2, verbose=0, callbacks=[Rebuild()])
    assert Rebuild.seen == [_Steps] * 4


def test_guard_raises_when_a_step_ran_without_ddp(world_of_one):
    guard = _Guard(_Steps(world_of_one, _model(), wrap=False))
    guard.on_train_batch_begin(0)
    with pytest.raises(RuntimeError, match="without DistributedDataParallel"):
        guard.on_train_batch_end(0)


def test_rejects_unbuilt_model(world_of_one):
    x, y = _data()
    with pytest.raises(ValueError, match="Expected a built model"):
        world_of_one.fit(_model(built=False), x, y, verbose=0)


def test_rejects_data_sharded_per_process(world_of_one):
    import torch

    x, y = _data()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, num_replicas=1, rank=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler)
    with pytest.raises(ValueError, match="DistributedSampler"):
        world_of_one.fit(_model(), loader, verbose=0)


def test_rejects_class_weight(world_of_one):
    x, y = _data()
    with pytest.raises(ValueError, match="class_weight"):
        world_of_one.fit(_model(), x, y, class_weight={0: 1.0}, verbose=0)


def test_rejects_validation_split_of_a_dataset(world_of_one):
    x, y = _data()
    with pytest.raises(ValueError, match="argument `validation_split`"):
        world_of_one.fit(_model(), iter([(x, y)]), validation_split=0.5, verbose=0)
