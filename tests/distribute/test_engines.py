"""setup(): the dispatch table from (backend, kind) to an engine; scope_for(model)."""

import keras
import numpy as np
import pytest

from keras_recipes.distribute import KINDS, DistributeContext, scope_for, setup
from keras_recipes.distribute.distribute_context import check_even_split

BACKEND = keras.backend.backend()
FOREIGN = {"tensorflow": ("ddp", "torch"), "jax": ("mirrored", "tensorflow"),
           "torch": ("data_parallel", "jax")}
OWN = {"tensorflow": "mirrored", "jax": "data_parallel", "torch": "ddp"}


def test_every_backend_has_its_engine_and_none():
    assert KINDS == {
        "tensorflow": ("auto", "none", "mirrored", "multi_worker"),
        "jax": ("auto", "none", "data_parallel"),
        "torch": ("auto", "none", "ddp"),
    }


def test_setup_none_is_one_device():
    context = setup("none")
    assert type(context) is DistributeContext
    assert (context.kind, context.num_replicas, context.num_processes) == ("none", 1, 1)
    assert context.is_chief and context.process_index == 0
    assert context.global_batch_size(8) == 8


def test_setup_auto_is_one_device_on_this_machine():
    if BACKEND == "jax":
        import jax

        if jax.device_count() > 1:  # conftest.py gave this process 2 host devices
            context = setup("auto")
            assert (context.kind, context.num_replicas) == ("data_parallel", 2)
            return
    if BACKEND == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_logical_devices("GPU")) > 1:
            pytest.skip("several GPUs visible: auto picks mirrored")
    if BACKEND == "torch":
        import os

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            pytest.skip("running under torchrun: auto picks ddp")
    assert setup("auto").kind == "none"


def test_setup_unknown_kind():
    with pytest.raises(ValueError, match="argument `kind`.*Received: kind='nccl'"):
        setup("nccl")


def test_setup_kind_of_another_backend_names_its_backend():
    kind, owner = FOREIGN[BACKEND]
    with pytest.raises(ValueError, match=f"is the {owner} backend's engine"):
        setup(kind)


def test_setup_option_the_engine_does_not_take():
    with pytest.raises(ValueError, match=r"Invalid option\(s\) \['bogus'\]"):
        setup(OWN[BACKEND], bogus=1)


def test_setup_none_takes_no_option():
    with pytest.raises(ValueError, match=r"Invalid option\(s\) \['devices'\]"):
        setup("none", devices=["cpu:0"])


def test_global_batch_size_rejects_zero():
    with pytest.raises(ValueError, match="per_replica_batch_size"):
        setup("none").global_batch_size(0)


def test_check_even_split_rejects_uneven_global_batch():
    with pytest.raises(ValueError, match="batch_size=15 for 64 rows"):
        check_even_split(np.zeros((64, 2)), 15, 2)


def test_check_even_split_rejects_uneven_last_batch():
    with pytest.raises(ValueError, match=r"last batch: 5 rows\).*x\[:64\]"):
        check_even_split(np.zeros((69, 2)), 16, 2)


def test_check_even_split_accepts_even_splits_and_ignores_datasets():
    check_even_split(np.zeros((70, 2)), 16, 2)  # last batch 6 = 3 + 3
    check_even_split([np.zeros((64, 2)), np.zeros((64, 1))], 16, 4)
    check_even_split(iter([]), 15, 2)  # not array data: not inspected
    check_even_split(np.zeros((69, 2)), 15, 1)


def test_fit_requires_compiled_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        setup("none").fit(model, np.zeros((4, 2)), np.zeros((4, 1)))


def test_none_context_fit_and_evaluate_equal_model_fit():
    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.layers[0].kernel.assign(np.arange(6, dtype="float32").reshape(3, 2) / 10)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
        return model

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    a, b = build(), build()
    context = setup("none")
    context.fit(a, x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(a.layers[0].kernel.numpy(), b.layers[0].kernel.numpy(), atol=1e-7)
    logs = context.evaluate(a, x, y, batch_size=4, verbose=0)
    np.testing.assert_allclose(logs["loss"], b.evaluate(x, y, verbose=0), rtol=1e-6)


def test_scope_for_creates_a_usable_optimizer():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with scope_for(model):
        optimizer = keras.optimizers.SGD(0.5, momentum=0.5)
        optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss="mse")
    before = model.layers[0].kernel.numpy().copy()
    model.fit(np.ones((2, 2)), np.zeros((2, 1)), verbose=0)
    assert not np.allclose(model.layers[0].kernel.numpy(), before)
