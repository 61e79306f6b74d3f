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
