"""DataParallelContext (jax): in-process checks; 2-device training is in the worker."""

import keras
import pytest

from keras_recipes.distribute.data_parallel_context import DataParallelContext

JAX = keras.backend.backend() == "jax"


@pytest.mark.skipif(JAX, reason="checks the refusal under the other backends")
def test_refuses_other_backends():
    with pytest.raises(ValueError, match="needs the jax backend"):
        DataParallelContext()


@pytest.mark.skipif(not JAX, reason="keras.distribution.DataParallel runs on the jax backend")
def test_one_device_mesh_in_its_scope():
    import jax

    context = DataParallelContext(devices=jax.devices()[:1])
    assert (context.num_replicas, context.num_processes, context.is_chief) == (1, 1, True)
    assert context.predict_gathers  # one process: Keras's predict returns every output
    with context.scope():
        assert keras.distribution.distribution() is context.distribution
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert keras.distribution.distribution() is None
    assert len(list(context.replica_values(model.layers[0].kernel))) == 1
