"""keras_recipes.experiments.CompiledModels: a reused compiled model trains as a fresh one.

References: a NumPy SGD-with-momentum loop for a linear model, and freshly built and
compiled models trained on the same batches.
"""

import keras
import numpy as np
import pytest

from keras_recipes.experiments import CompiledModels

LR, MOMENTUM = 0.05, 0.9


def _linear(seed=0):
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(2, kernel_initializer=keras.initializers.RandomNormal(seed=seed)),
    ])
    model.compile(keras.optimizers.SGD(LR, momentum=MOMENTUM), "mse")
    return model


def _numpy_sgd(kernel, bias, x, y, batch, epochs):
    """Keras's SGD with momentum (v = m·v - lr·g; w += v) on the mean squared error."""
    vk, vb = np.zeros_like(kernel), np.zeros_like(bias)
    losses = []
    for _ in range(epochs):
        batch_losses = []
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            err = xb @ kernel + bias - yb
            batch_losses.append(np.mean(err ** 2))
            gk = 2 * xb.T @ err / err.size
            gb = 2 * err.sum(0) / err.size
            vk, vb = MOMENTUM * vk - LR * gk, MOMENTUM * vb - LR * gb
            kernel, bias = kernel + vk, bias + vb
        losses.append(np.mean(batch_losses))
    return kernel, bias, losses


def test_every_run_starts_fresh_and_matches_numpy(keras_backend):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    builds = []
    models = CompiledModels(lambda key: builds.append(key) or _linear())
    start_a, start_b = _linear(1).get_weights(), _linear(2).get_weights()
    runs = []
    for start in (start_a, start_b, start_a):  # a, then b, then a again on the same model
        model = models.get("linear", start)
        history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
        runs.append((history.history["loss"], model.get_weights()))
    assert builds == ["linear"] and len(models) == 1 and "linear" in models
    for start, (losses, weights) in zip((start_a, start_b, start_a), runs, strict=True):
        kernel, bias, want = _numpy_sgd(*start, x, y, batch=4, epochs=3)
        np.testing.assert_allclose(weights[0], kernel, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(weights[1], bias, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(losses, want, rtol=1e-4)
    # The third run repeats the first exactly: no momentum, iteration or weight carried over.
    np.testing.assert_array_equal(runs[2][0], runs[0][0])


def test_random_layers_restart_their_seed_state(keras_backend):
    def build(_):
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dropout(0.5, seed=3),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        return model

    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")
    y = x.sum(1, keepdims=True)
    start = build(None).get_weights()
    fresh = build(None)
    fresh.set_weights(start)
    want = fresh.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    models = CompiledModels(build)
    for _ in range(2):  # the second run draws the first run's dropout masks again
        model = models.get(0, start)
        got = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_errors_name_the_argument(keras_backend):
    with pytest.raises(ValueError, match="`build`"):
        CompiledModels("not callable")
    uncompiled = CompiledModels(lambda _: keras.Sequential([keras.Input((2,)),
                                                            keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match="compiled"):
        uncompiled.get(0, [])
