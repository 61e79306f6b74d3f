"""The mixing layers inside tf.data, jax.jit and tf.function(jit_compile=True)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.layers import CutMix, MixUp, MixUpOrCutMix
from tests.layers.mixing_reference import labelled_images, to_np

BACKEND = keras.backend.backend()
X, Y = labelled_images(7, 5, 6)  # image i is filled with i + 1; labels one-hot identity
VALUES = np.arange(1.0, 8.0)


def _consistent(x_out, y_out):
    """Mean pixel of each output = its labels' weighted mean of the constant images."""
    np.testing.assert_allclose(x_out.mean(axis=(1, 2, 3)), y_out @ VALUES, rtol=1e-5)


def test_tf_data_map_under_every_backend():
    layer = MixUpOrCutMix(num_classes=7, seed=1)  # both code paths: blend and paste
    sparse = np.argmax(Y, axis=1)
    ds = tf.data.Dataset.from_tensor_slices((X, sparse)).batch(7).map(layer)
    epochs = []
    for _ in range(2):
        for xb, yb in ds:
            assert isinstance(xb, tf.Tensor) and yb.dtype == tf.float32 and yb.shape == (7, 7)
            _consistent(xb.numpy(), yb.numpy())
            epochs.append(yb.numpy())
    assert not np.allclose(epochs[0], epochs[1])  # fresh draws every batch
    # Dicts and a last, smaller batch (dynamic batch size in the graph).
    ds = tf.data.Dataset.from_tensor_slices({"images": X, "labels": sparse}).batch(4).map(layer)
    sizes = [(len(d["images"]), tuple(d["labels"].shape)) for d in ds]
    assert sizes == [(4, (4, 7)), (3, (3, 7))]


@pytest.mark.parametrize("layer_cls", [MixUp, CutMix])
def test_tf_data_map_mixup_and_cutmix(layer_cls):
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(7).map(layer_cls(seed=1))
    for xb, yb in ds:
        _consistent(xb.numpy(), yb.numpy())


def _compiled_calls(layer, n):
    """n calls of `layer` inside the backend's compiler; returns the outputs."""
    if BACKEND == "jax":
        import jax

        @jax.jit
        def step(state, x, y):
            (x_out, y_out), state = layer.stateless_call([], state, x, y, training=True)
            return x_out, y_out, state

        state = [v.value for v in layer.non_trainable_variables]
        outs = []
        for _ in range(n):
            x_out, y_out, state = step(state, X, Y)
            outs.append((to_np(x_out), to_np(y_out)))
        return outs
    if BACKEND == "tensorflow":
        step = tf.function(lambda x, y: layer(x, y, training=True), jit_compile=True)
        return [tuple(t.numpy() for t in step(X, Y)) for _ in range(n)]
    pytest.skip("torch: Keras's torch trainer runs eagerly, there is no compiler to test here "
                "(eager calls are covered by every other test)")


@pytest.mark.parametrize("layer_cls", [MixUp, MixUpOrCutMix])
def test_fresh_randomness_inside_jax_jit_and_xla(layer_cls):
    """Ours draws anew at every call of a compiled function; on JAX, Keras 3.15's
    ``keras.layers.MixUp`` in ``jax.jit`` repeats one draw (its fault, reproduced)."""
    outs = _compiled_calls(layer_cls(seed=2), 3)
    for x_out, y_out in outs:
        _consistent(x_out, y_out)
    assert not np.allclose(outs[0][1], outs[1][1]) and not np.allclose(outs[1][1], outs[2][1])
    if BACKEND == "jax" and layer_cls is MixUp:
        # The fault: its seed state is baked into the trace as a constant, so the jitted
        # function mixes, but with the same λ and partners at every call.
        import jax

        theirs = keras.layers.MixUp(alpha=1.0, seed=2)
        step = jax.jit(lambda d: theirs(d, training=True))
        first, second = (to_np(step({"images": X, "labels": Y})["labels"]) for _ in range(2))
        assert not np.allclose(first, Y)  # it mixes ...
        np.testing.assert_array_equal(first, second)  # ... the same way every call
    if BACKEND == "jax" and layer_cls is MixUpOrCutMix:  # (both kernels; XLA on TF draws
        # another Philox stream than TF eager: no such check there). Eager calls (draw,
        # kernel and seed update fused in one cached jax.jit) give the traced path's
        # outputs, call after call.
        layer = layer_cls(seed=2)
        for x_out, y_out in outs:
            x_e, y_e = (to_np(t) for t in layer(X, Y, training=True))
            np.testing.assert_allclose(x_e, x_out, rtol=1e-6)
            np.testing.assert_allclose(y_e, y_out, rtol=1e-6)


def test_plain_call_under_jax_jit_raises_instead_of_freezing_the_draw():
    if BACKEND != "jax":
        pytest.skip(f"jax.jit only: {BACKEND} variables are updated in place when traced")
    import jax

    layer = MixUp(seed=0)
    with pytest.raises(ValueError, match="stateless_call"):
        jax.jit(lambda x, y: layer(x, y, training=True))(X, Y)


def test_keras_mixup_fails_under_tf_xla_where_ours_runs():
    """Reproduces Keras 3.15's fault that test_fresh_randomness_* shows we do not have.

    (Its other compiled fault, the same draw on every call of a `jax.jit` function, is
    reproduced in test_fresh_randomness_inside_jax_jit_and_xla[jax-MixUp].)
    """
    if BACKEND != "tensorflow":
        pytest.skip(f"tf.function(jit_compile=True) only: no such compiler on {BACKEND}")
    step = tf.function(lambda d: keras.layers.MixUp()(d), jit_compile=True)
    with pytest.raises(Exception, match="(?i)xla|gamma|compil"):
        step({"images": X, "labels": Y})

