"""StrategyContext (tensorflow): argument validation in-process; training in the worker."""

import keras
import pytest

from keras_recipes.distribute.strategy_context import StrategyContext

TF = keras.backend.backend() == "tensorflow"
needs_tf = pytest.mark.skipif(not TF, reason="tf.distribute needs the tensorflow backend")


@pytest.mark.skipif(TF, reason="checks the refusal under the other backends")
def test_refuses_other_backends():
    with pytest.raises(ValueError, match="need the tensorflow backend"):
        StrategyContext("mirrored")


@needs_tf
def test_rejects_unknown_kind():
    with pytest.raises(ValueError, match="argument `kind`"):
        StrategyContext("ring")


@needs_tf
def test_rejects_unknown_communication():
    with pytest.raises(ValueError, match="argument `communication`"):
        StrategyContext("multi_worker", communication="mpi")


@needs_tf
def test_multi_worker_rejects_devices():
    with pytest.raises(ValueError, match="argument `devices`.*CUDA_VISIBLE_DEVICES"):
        StrategyContext("multi_worker", devices=["/cpu:0"])


@needs_tf
def test_mirrored_on_one_cpu_is_one_replica_in_its_scope():
    import tensorflow as tf

    context = StrategyContext("mirrored", devices=["/cpu:0"])
    assert (context.num_replicas, context.num_processes, context.is_chief) == (1, 1, True)
    with context.scope():
        assert tf.distribute.get_strategy() is context.strategy
