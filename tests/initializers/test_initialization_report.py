"""initialization_report against a NumPy forward and backward pass of a small MLP."""

import keras
import numpy as np
import pytest
from PIL import Image

from keras_recipes.initializers import InitializationReport, initialization_report

L = keras.layers
# Kernels start at "zeros" and get NumPy values: on JAX every new shape drawn by a random
# Keras initializer compiles a threefry sampler, seconds each on a busy CPU.
Z = {"kernel_initializer": "zeros"}
RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 16)).astype("float32")
Y = RNG.normal(size=(32, 10)).astype("float32")


def mlp():
    model = keras.Sequential([
        keras.Input((16,)),
        L.Dense(32, activation="tanh", name="a", **Z),
        L.Dense(24, name="b", **Z),
        L.Activation("tanh", name="b_tanh"),
        L.Dense(10, name="c", **Z),
    ], name="mlp")
    rng = np.random.default_rng(1)
    # Nonzero biases, so every term of the backward pass counts.
    for layer in (model.get_layer(n) for n in "abc"):
        layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype("float32") * 0.3)
        layer.bias.assign(np.linspace(-0.5, 0.5, layer.bias.shape[0]))
    return model


def numpy_reference(model):
    """Forward activations, MSE loss, and per-layer gradient norms by hand."""
    (wa, ba), (wb, bb), (wc, bc) = (
        [np.asarray(keras.ops.convert_to_numpy(v), "float64") for v in model.get_layer(n).weights]
        for n in "abc"
    )
    x = X.astype("float64")
    ha = np.tanh(x @ wa + ba)
    zb = ha @ wb + bb
    hb = np.tanh(zb)
    out = hb @ wc + bc
    err = out - Y
    loss = np.mean(err**2)
    d_out = 2 * err / err.size
    g_c = (hb.T @ d_out, d_out.sum(0))
    d_b = (d_out @ wc.T) * (1 - hb**2)
    g_b = (ha.T @ d_b, d_b.sum(0))
    d_a = (d_b @ wb.T) * (1 - ha**2)
    g_a = (x.T @ d_a, d_a.sum(0))
    norms = [np.sqrt(sum(np.sum(g**2) for g in gs)) for gs in (g_a, g_b, g_c)]
    norms.insert(2, None)  # the Activation layer has no weights
    weight_stds = [wa.std(), wb.std(), None, wc.std()]
    return [ha.std(), zb.std(), hb.std(), out.std()], norms, loss, weight_stds


def test_matches_numpy_forward_and_backward(tmp_path):
    model = mlp()
    model.compile(loss="mse")
    stds, norms, loss, weight_stds = numpy_reference(model)
    report = initialization_report(model, X, Y, plot_path=tmp_path / "init.png")
    assert [r["layer"] for r in report.rows] == ["a", "b", "b_tanh", "c"]
    assert [r["output_shape"] for r in report.rows] == [(32, 32), (32, 24), (32, 24), (32, 10)]
    np.testing.assert_allclose([r["activation_std"] for r in report.rows], stds, rtol=1e-5)
    assert report.rows[2]["grad_norm"] is None and report.rows[2]["weight_std"] is None
    for key, want in [("grad_norm", norms), ("weight_std", weight_stds)]:
        got = [r[key] for r in report.rows]
        np.testing.assert_allclose([g for g in got if g is not None],
                                   [w for w in want if w is not None], rtol=1e-4)
    assert report.loss == pytest.approx(loss, rel=1e-5)

    with Image.open(tmp_path / "init.png") as png:
        assert png.format == "PNG" and png.size[0] > 100 and png.size[1] > 100
    lines = report.table().splitlines()
    assert lines[0].split() == ["layer", "class", "output", "weight", "std", "activation", "std",
                                "grad", "norm"]
    assert [line.split()[0] for line in lines[1:]] == ["a", "b", "b_tanh", "c"]
    assert lines[3].split()[-1] == "-"
    assert lines[1].split()[-1] == f"{norms[0]:.4g}"


def test_without_labels_no_gradients():
    model = mlp()
    stds, *_ = numpy_reference(model)
    report = initialization_report(model, X)
    assert report.loss is None and all(r["grad_norm"] is None for r in report.rows)
    np.testing.assert_allclose([r["activation_std"] for r in report.rows], stds, rtol=1e-5)
    assert report.table().splitlines()[1].split()[-1] == "-"


def test_nested_models_and_layers_without_weights(tmp_path):
    inner = keras.Sequential([L.Dense(8, name="fc", **Z), L.Activation("sigmoid", name="act")],
                             name="block")
    inputs = keras.Input((16,))
    outputs = L.Dense(2, name="head", **Z)(inner(inputs))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    for v in model.trainable_weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    report = initialization_report(model, X)
    assert [r["layer"] for r in report.rows] == ["block/fc", "block/act", "head"]
    w = np.asarray(keras.ops.convert_to_numpy(inner.get_layer("fc").kernel), "float64")
    b = np.asarray(keras.ops.convert_to_numpy(inner.get_layer("fc").bias), "float64")
    z = X.astype("float64") @ w + b
    assert report.rows[0]["activation_std"] == pytest.approx(z.std(), rel=1e-5)
    assert report.rows[1]["activation_std"] == pytest.approx((1 / (1 + np.exp(-z))).std(),
                                                             rel=1e-5)
    path = InitializationReport(report.rows).save_plot(tmp_path / "sub" / "plot.png")
    assert path.exists()


def test_labels_on_uncompiled_model_raise():
    with pytest.raises(ValueError, match="Expected a compiled model"):
        initialization_report(mlp(), X, Y)


def test_subclassed_model_raises():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="Expected a built Functional or Sequential"):
        initialization_report(Net(), X)
