import keras
import numpy as np
import pytest

from keras_recipes.backend import loss_and_gradients


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_matches_numpy_softmax_cross_entropy_with_l2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.integers(0, 3, size=8)
    lam = 0.01
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(lam)),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    w, b = (keras.ops.convert_to_numpy(v) for v in model.layers[0].weights)
    p = _softmax(x @ w + b)
    onehot = np.eye(3)[y]
    want_loss = -np.mean(np.log(p[np.arange(8), y])) + lam * np.sum(w**2)
    dz = (p - onehot) / 8
    want_gw = x.T @ dz + 2 * lam * w
    want_gb = dz.sum(axis=0)
    loss, (gw, gb) = loss_and_gradients(model, x, y)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(gw, want_gw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gb, want_gb, rtol=1e-4, atol=1e-6)


def test_no_side_effects_with_batchnorm_and_dropout():
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = np.zeros((16, 1), "float32")
    model = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.5, seed=1), keras.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.variables]
    before_opt = [keras.ops.convert_to_numpy(v).copy() for v in model.optimizer.variables]
    loss, grads = loss_and_gradients(model, x, y, training=True)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads)
    assert any(np.any(g != 0) for g in grads)
    for v, b in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b, err_msg=v.path)
    for v, b in zip(model.optimizer.variables, before_opt, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b, err_msg=v.path)


def test_subset_of_variables_and_errors():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(loss="mse")
    x, y = np.ones((2, 3), "float32"), np.zeros((2, 1), "float32")
    _, full = loss_and_gradients(model, x, y)
    last = model.layers[1].kernel
    _, (g,) = loss_and_gradients(model, x, y, variables=[last])
    np.testing.assert_allclose(g, full[2], rtol=1e-6)
    other = keras.Variable(np.zeros(2))
    with pytest.raises(ValueError, match="`variables`"):
        loss_and_gradients(model, x, y, variables=[other])
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="`model`"):
        loss_and_gradients(fresh, x, y)


def _mlp(depth=3):
    model = keras.Sequential(
        [keras.Input((4,))] + [keras.layers.Dense(5, activation="tanh") for _ in range(depth)]
        + [keras.layers.Dense(1)]
    )
    model.compile(loss="mse")
    return model


def _numpy_mse_grads(model, x, y):
    """Loss and gradients of a tanh MLP with an MSE loss, by hand in NumPy (float64)."""
    ws = [keras.ops.convert_to_numpy(v).astype("float64") for v in model.trainable_variables]
    acts, h = [x.astype("float64")], x.astype("float64")
    layers = [(ws[i], ws[i + 1]) for i in range(0, len(ws), 2)]
    for k, (w, b) in enumerate(layers):
        z = h @ w + b
        h = z if k == len(layers) - 1 else np.tanh(z)
        acts.append(h)
    loss = np.mean((h - y) ** 2)
    delta = 2 * (h - y) / h.size
    grads = []
    for k in range(len(layers) - 1, -1, -1):
        w, _ = layers[k]
        grads = [acts[k].T @ delta, delta.sum(0)] + grads
        if k:
            delta = (delta @ w.T) * (1 - acts[k] ** 2)
    return loss, grads


def test_compiled_matches_numpy_and_sees_new_weights_and_frozen_layers():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = rng.normal(size=(6, 1)).astype("float32")
    model = _mlp()
    for step in range(3):  # the compiled computation must read the current weights
        want_loss, want = _numpy_mse_grads(model, x, y)
        loss, grads = loss_and_gradients(model, x, y)
        eager_loss, eager = loss_and_gradients(model, x, y, jit_compile=False)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
        np.testing.assert_allclose(eager_loss, want_loss, rtol=1e-5)
        for g, e, w in zip(grads, eager, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(e, w, rtol=1e-4, atol=1e-6)
        for v in model.trainable_variables:
            v.assign(keras.ops.convert_to_numpy(v) * 0.9 + 0.05 * (step + 1))
    cache = model.__dict__.get("_keras_recipes_gradient_fns", {})
    assert len(cache) == (0 if keras.backend.backend() == "torch" else 1)
    # Freezing a layer changes the trainable set: a new computation, right gradients.
    model.layers[0].trainable = False
    _, want = _numpy_mse_grads_frozen(model, x, y)
    _, grads = loss_and_gradients(model, x, y)
    assert len(grads) == len(model.trainable_variables) == len(want)
    for g, w in zip(grads, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    # Another batch size and a sample weight: still right.
    x2, y2 = x[:4], y[:4]
    sw = np.array([1.0, 0.0, 2.0, 1.0], "float32")
    loss, _ = loss_and_gradients(model, x2, y2, sample_weight=sw)
    eager_loss, _ = loss_and_gradients(model, x2, y2, sample_weight=sw, jit_compile=False)
    np.testing.assert_allclose(loss, eager_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="`jit_compile`.*'yes'"):
        loss_and_gradients(model, x, y, jit_compile="yes")


def _numpy_mse_grads_frozen(model, x, y):
    trainable = {id(v) for v in model.trainable_variables}
    every = model.layers[0].weights + [v for layer in model.layers[1:] for v in layer.weights]
    saved = [v.trainable for v in every]
    for v in every:
        v.trainable = True
    try:
        loss, grads = _numpy_mse_grads(model, x, y)
    finally:
        for v, t in zip(every, saved, strict=True):
            v.trainable = t
    return loss, [g for g, v in zip(grads, every, strict=True) if id(v) in trainable]
