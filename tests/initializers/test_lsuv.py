"""lsuv: each layer's pre-activation variance on the batch is 1 ± tol, checked with NumPy.

The NumPy forward pass below recomputes every layer from the final weights;
it is independent of the extractor models lsuv uses.
"""

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from keras_recipes.initializers import lsuv

L = keras.layers
# Kernels start at "zeros" (lsuv overwrites them): on JAX every new shape drawn by a random
# Keras initializer compiles a threefry sampler, seconds each on a busy CPU.
Z = {"kernel_initializer": "zeros"}
X = np.random.default_rng(0).normal(size=(128, 16)).astype("float32")
IMAGES = np.random.default_rng(1).uniform(0, 2, size=(32, 8, 8, 3)).astype("float32")


def w(layer, name="kernel"):
    return np.asarray(keras.ops.convert_to_numpy(getattr(layer, name)), "float64")


def conv_valid(x, kernel, bias):
    """NumPy 'valid' stride-1 convolution, NHWC input, (kh, kw, in, out) kernel."""
    kh, kw = kernel.shape[:2]
    patches = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    return np.einsum("nhwcij,ijco->nhwo", patches, kernel) + bias


def assert_orthonormal_times(kernel, scale):
    flat = kernel.reshape(-1, kernel.shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, scale**2 * np.eye(len(gram)), atol=1e-5 * scale**2)


def mlp():
    return keras.Sequential([
        keras.Input((16,)),
        L.Dense(32, activation="tanh", name="a", **Z),
        L.Dense(24, activation="relu", name="b", **Z),
        L.Dense(10, name="c", **Z),
    ], name="mlp")


def test_mlp_unit_variance_per_layer_against_numpy():
    model = mlp()
    tol = 0.02
    report = lsuv(model, X, tolerance=tol, seed=0)
    assert [r["layer"] for r in report] == ["a", "b", "c"]
    a, b, c = (model.get_layer(n) for n in "abc")
    z_a = X @ w(a) + w(a, "bias")
    z_b = np.tanh(z_a) @ w(b) + w(b, "bias")
    z_c = np.maximum(z_b, 0) @ w(c) + w(c, "bias")
    for row, z, layer in zip(report, (z_a, z_b, z_c), (a, b, c), strict=True):
        assert abs(z.var() - 1) <= tol
        assert row["variance"] == pytest.approx(z.var(), rel=1e-4)
        assert row["converged"] is True and 1 <= row["iterations"] <= 10
        assert_orthonormal_times(w(layer), row["scale"])  # orthonormal start, rescaled
    # Zero biases: the pre-activation variance scales with W², one rescale is exact.
    assert [r["iterations"] for r in report] == [1, 1, 1]


def test_nested_conv_model_and_frozen_layer():
    features = keras.Sequential([
        L.Conv2D(8, 3, activation="relu", name="conv1", **Z),
        L.Conv2D(6, 3, activation="relu", name="conv2", **Z),
    ], name="features")
    inputs = keras.Input((8, 8, 3))
    h = L.Flatten()(features(inputs))
    h = L.Dense(5, activation="tanh", name="fc", **Z)(h)
    frozen = L.Dense(3, name="frozen", **Z)
    frozen.trainable = False
    model = keras.Model(inputs, frozen(h))
    frozen.kernel.assign(np.arange(15, dtype="float32").reshape(5, 3))
    before = w(frozen)
    tol = 0.05
    report = lsuv(model, IMAGES, tolerance=tol, seed=1)
    assert [r["layer"] for r in report] == ["features/conv1", "features/conv2", "fc"]
    c1, c2, fc = (features.get_layer("conv1"), features.get_layer("conv2"), model.get_layer("fc"))
    z1 = conv_valid(IMAGES.astype("float64"), w(c1), w(c1, "bias"))
    z2 = conv_valid(np.maximum(z1, 0), w(c2), w(c2, "bias"))
    z3 = np.maximum(z2, 0).reshape(len(IMAGES), -1) @ w(fc) + w(fc, "bias")
    for row, z in zip(report, (z1, z2, z3), strict=True):
        assert abs(z.var() - 1) <= tol
        assert row["variance"] == pytest.approx(z.var(), rel=1e-4)
    np.testing.assert_array_equal(w(frozen), before)


def test_report_is_right_when_the_iteration_budget_runs_out():
    """Per-unit biases add variance that does not scale with W: more rescalings are needed."""
    model = keras.Sequential([keras.Input((16,)), L.Dense(12, name="a", **Z)], name="one")
    bias = np.linspace(-1.0, 1.0, 12)
    model.get_layer("a").bias.assign(bias)
    tol = 1e-3
    report = lsuv(model, X, tolerance=tol, max_iterations=1, seed=2)
    (row,) = report
    z = X @ w(model.get_layer("a")) + bias
    assert row["iterations"] == 1
    assert row["variance"] == pytest.approx(z.var(), rel=1e-4)
    assert row["converged"] is bool(abs(z.var() - 1) <= tol) is False
    # Given enough iterations, it converges.
    (row,) = lsuv(model, X, tolerance=tol, max_iterations=50, seed=2)
    z = X @ w(model.get_layer("a")) + bias
    assert row["converged"] and abs(z.var() - 1) <= tol and row["iterations"] > 1


def test_fused_activation_is_restored():
    model = mlp()
    lsuv(model, X, seed=0)
    assert model.get_layer("a").activation is keras.activations.tanh
    out = keras.ops.convert_to_numpy(model(X[:4]))
    a, b, c = (model.get_layer(n) for n in "abc")
    ref = np.maximum(np.tanh(X[:4] @ w(a) + w(a, "bias")) @ w(b) + w(b, "bias"), 0)
    np.testing.assert_allclose(out, ref @ w(c) + w(c, "bias"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_invalid_tolerance_raises(bad):
    with pytest.raises(ValueError, match="argument `tolerance`. Expected a float > 0"):
        lsuv(mlp(), X, tolerance=bad)


@pytest.mark.parametrize("bad", [0, 2.5])
def test_invalid_max_iterations_raises(bad):
    with pytest.raises(ValueError, match="argument `max_iterations`. Expected an int > 0"):
        lsuv(mlp(), X, max_iterations=bad)


def test_invalid_seed_raises():
    with pytest.raises(ValueError, match="argument `seed`. Expected an int or None"):
        lsuv(mlp(), X, seed="0")


def test_subclassed_model_raises():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = L.Dense(2, **Z)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(X[:2])
    with pytest.raises(ValueError, match="Expected a built Functional or Sequential"):
        lsuv(net, X)
