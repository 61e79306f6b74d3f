"""fast_small_convolutions: im2col Conv2D on JAX equals the convolution (NumPy reference)."""

import keras
import numpy as np
import pytest

from keras_recipes.applications import build_transfer_model
from keras_recipes.backend import convolution, fast_small_convolutions

JAX = keras.backend.backend() == "jax"


def numpy_conv(x, kernel, bias, padding):
    """Reference: stride-1 2-D cross-correlation in float64, SAME split as TF/XLA."""
    x, kernel = x.astype("float64"), kernel.astype("float64")
    kh, kw = kernel.shape[:2]
    if padding == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        x = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], height, width, kernel.shape[3]))
    for n in range(x.shape[0]):
        for i in range(height):
            for j in range(width):
                patch = x[n, i:i + kh, j:j + kw, :]
                out[n, i, j] = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2]))
    return out + bias


def _conv_model(size, kernel_size, padding, cin=5, cout=4, **kwargs):
    keras.utils.set_random_seed(1)
    conv = keras.layers.Conv2D(cout, kernel_size, padding=padding, bias_initializer="he_normal",
                               **kwargs)
    return keras.Sequential([keras.Input((size[0], size[1], cin)), conv]), conv


CASES = [((1, 1), 3, "same"), ((2, 2), 3, "same"), ((2, 3), 3, "same"), ((4, 4), 3, "same"),
         ((3, 3), (3, 2), "same"), ((2, 2), 2, "same"), ((4, 5), 3, "valid"), ((2, 2), 1, "valid")]


@pytest.mark.parametrize("size,kernel_size,padding", CASES)
def test_routed_conv_equals_numpy_reference_and_keras(size, kernel_size, padding):
    model, conv = _conv_model(size, kernel_size, padding)
    x = np.random.default_rng(0).standard_normal((3, *size, 5)).astype("float32")
    stock = model.predict(x, verbose=0)
    routed = fast_small_convolutions(model)
    assert routed == (1 if JAX else 0)
    model.predict_function = None  # compiled by the first predict: trace again
    got = model.predict(x, verbose=0)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in conv.weights)
    np.testing.assert_allclose(got, numpy_conv(x, kernel, bias, padding), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, stock, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not JAX, reason="the routing exists on JAX only")
def test_routed_conv_gradients_equal_xla_convolutions():
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 2, 2, 6)).astype("float32"))
    kernel = jnp.asarray(rng.standard_normal((3, 3, 6, 7)).astype("float32"))

    def loss(conv_fn):
        return lambda x, k: jnp.sum(jnp.sin(conv_fn(x, k)))

    def xla(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    want = jax.grad(loss(xla), argnums=(0, 1))(x, kernel)
    got = jax.jit(jax.grad(loss(lambda x, k: convolution._im2col_conv(x, k, "same")),
                           argnums=(0, 1)))(x, kernel)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not JAX, reason="the routing exists on JAX only")
def test_only_plain_small_stride_one_convolutions_are_routed(monkeypatch):
    calls = []
    original = convolution._im2col_conv
    monkeypatch.setattr(convolution, "_im2col_conv",
                        lambda *a: calls.append(a[0].shape) or original(*a))
    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="big")(inputs)  # 25 positions
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="strided")(x)
    x = keras.layers.Conv2D(4, 2, dilation_rate=2, padding="same", name="dilated")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="small")(x)  # 3x3 = 9 positions
    model = keras.Model(inputs, x)
    assert fast_small_convolutions(model) == 2  # "big" and "small" (the others never)
    model.predict(np.ones((1, 5, 5, 3)), verbose=0)
    assert [tuple(s[1:3]) for s in calls] == [(3, 3)]  # only "small" is under 16 positions
    calls.clear()
    assert fast_small_convolutions(model, max_positions=25) == 2  # re-routing is idempotent
    model.predict_function = None  # a compiled function keeps what it traced
    model.predict(np.ones((1, 5, 5, 3)), verbose=0)
    assert sorted(tuple(s[1:3]) for s in calls) == [(3, 3), (5, 5)]


def test_saved_and_reloaded_model_predicts_the_same(tmp_path, monkeypatch):
    model, _ = _conv_model((2, 2), 3, "same")
    calls = []
    original = convolution._im2col_conv
    monkeypatch.setattr(convolution, "_im2col_conv", lambda *a: calls.append(1) or original(*a))
    fast_small_convolutions(model)
    x = np.random.default_rng(2).standard_normal((2, 2, 2, 5)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.layers[0]) is keras.layers.Conv2D
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert bool(calls) == JAX  # the routed computation ran in the original's predict


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16"])
def test_invalid_max_positions_raises_naming_the_argument(bad):
    model, _ = _conv_model((2, 2), 3, "same")
    with pytest.raises(ValueError, match=r"max_positions.*Received: max_positions="):
        fast_small_convolutions(model, max_positions=bad)


def test_build_transfer_model_routes_its_convolutions_on_jax():
    features = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                                 keras.layers.MaxPooling2D(8), keras.layers.Conv2D(4, 3,
                                                                                   padding="same")],
                                name="features")
    model = build_transfer_model(features, 3, input_shape=(32, 32, 3), weights=None,
                                 preprocessing="none")
    convs = [layer for layer in convolution._layers(model)
             if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2
    assert all((convolution._ATTR in layer.__dict__) == JAX for layer in convs)
