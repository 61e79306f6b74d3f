"""MixUp, CutMix and MixUpOrCutMix as Keras image-preprocessing layers (issue 34).

The transformation API (``get_random_transformation`` + ``transform_*``) against the
fused ``call`` and a NumPy reference; composition in ``keras.layers.Pipeline``, in a
``tf.data`` map under every backend and inside ``AugmentedModel``; inference pass-through.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_recipes.layers import CutMix, MixUp, MixUpOrCutMix
from keras_recipes.models import AugmentedModel
from tests.layers.mixing_reference import labelled_images, to_np

X, Y = labelled_images(7, 5, 6)  # image i is filled with i + 1; labels one-hot identity
SPARSE = np.argmax(Y, axis=1)
VALUES = np.arange(1.0, 8.0)
LAYERS = [
    (MixUp, {"alpha": 1.0}),
    (CutMix, {"alpha": 1.0}),
    (MixUpOrCutMix, {"prob": 0.8}),
    (MixUpOrCutMix, {"mode": "batch"}),
]


def _keras_base():
    return next(c for c in type(keras.layers.MixUp()).__mro__
                if c.__name__ == "BaseImagePreprocessingLayer")


def _consistent(x_out, y_out):
    """Mean pixel of each output = its labels' weighted mean of the constant images."""
    np.testing.assert_allclose(x_out.mean(axis=(1, 2, 3)), y_out @ VALUES, rtol=1e-5)


def _numpy_apply(t, x, y):
    """The transformation applied in NumPy (float64): blend, paste, labels by pixel share."""
    t = {k: to_np(v) for k, v in t.items()}
    n, h, w = x.shape[:3]
    perm = t["permutation_order"]
    x, y = x.astype(np.float64), y.astype(np.float64)
    coef = np.broadcast_to(t.get("blend_weight", np.zeros(1)), (n,)).astype(np.float64)
    out = x + coef[:, None, None, None] * (x[perm] - x)
    pasted = np.zeros(n)
    if "box_rows" in t:
        rows = np.broadcast_to(t["box_rows"], (n, h))
        cols = np.broadcast_to(t["box_cols"], (n, w))
        box = rows[:, :, None] & cols[:, None, :]
        out = np.where(box[..., None], x[perm], out)
        pasted = box.mean(axis=(1, 2))  # the exact share of pixels pasted
    weight = coef + pasted
    return out, y + weight[:, None] * (y[perm] - y), weight


@pytest.mark.parametrize("cls", [MixUp, CutMix, MixUpOrCutMix])
def test_is_a_keras_image_preprocessing_layer(cls):
    layer = cls()
    assert isinstance(layer, _keras_base())
    assert layer.get_random_transformation(X, training=False) is None
    assert "data_format" in layer.get_config()


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_transformation_api_gives_the_call_and_the_numpy_reference(cls, kwargs):
    x_call, y_call = (to_np(t) for t in cls(num_classes=7, seed=3, **kwargs)(X, SPARSE))
    layer = cls(num_classes=7, seed=3, **kwargs)
    t = layer.get_random_transformation({"images": X, "labels": SPARSE})
    x_t = to_np(layer.transform_images(X, t))
    y_t = to_np(layer.transform_labels(SPARSE, t))
    np.testing.assert_allclose(x_t, x_call, rtol=1e-6, atol=1e-6)  # the same draw
    np.testing.assert_allclose(y_t, y_call, rtol=1e-6, atol=1e-7)
    x_ref, y_ref, weight = _numpy_apply(t, X, Y)
    np.testing.assert_allclose(x_t, x_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_t, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.broadcast_to(to_np(t["mix_weight"]), (7,)), 1.0 - weight,
                               atol=1e-6)  # Keras's key: the sample's own label weight
    _consistent(x_t, y_t)
    if cls is CutMix:  # integer masks: the same box pasted, dtype kept
        masks = np.broadcast_to(np.arange(7, dtype="int32")[:, None, None], (7, 5, 6))
        m = to_np(layer.transform_segmentation_masks(masks, t))
        assert m.dtype == np.int32
        kept = (m == np.arange(7)[:, None, None]).mean(axis=(1, 2))
        own = to_np(t["permutation_order"]) == np.arange(7)  # its own partner: all kept
        np.testing.assert_allclose(kept, np.where(own, 1.0, 1.0 - weight), atol=1e-6)


def test_an_int_seed_gives_one_draw_and_leaves_the_layer_stream_alone():
    layer = MixUpOrCutMix(seed=0)
    state = to_np(layer.generator.state)
    a, b = (layer.get_random_transformation(X, seed=5) for _ in range(2))
    for key in a:
        np.testing.assert_array_equal(to_np(a[key]), to_np(b[key]))
    np.testing.assert_array_equal(to_np(layer.generator.state), state)


@pytest.mark.parametrize("cls", [MixUp, CutMix, MixUpOrCutMix])
def test_inference_returns_the_inputs_unchanged(cls):
    layer = cls(num_classes=7, seed=0)
    x8 = (X * 30).astype("uint8")
    for images in (x8, x8[0], X):  # also an unbatched image
        np.testing.assert_array_equal(to_np(layer(images, training=False)), images)
    x_out, y_out = layer(x8, SPARSE, training=False)
    assert to_np(x_out).dtype == np.uint8
    np.testing.assert_array_equal(to_np(y_out), SPARSE)
    t = layer.get_random_transformation(X)
    assert layer.transform_images(x8, t, training=False) is x8
    assert layer.transform_labels(SPARSE, t, training=False) is SPARSE


def _pipeline(seed=1):
    # A Keras layer and ours; flipping a constant image leaves it as it was.
    return keras.layers.Pipeline([keras.layers.RandomFlip(seed=seed),
                                  MixUpOrCutMix(num_classes=7, seed=seed)])


def test_in_a_keras_pipeline():
    pipeline = keras.layers.Pipeline.from_config(_pipeline().get_config())  # serializable
    assert [type(layer) for layer in pipeline.layers] == [keras.layers.RandomFlip,
                                                          MixUpOrCutMix]
    out = pipeline({"images": X, "labels": Y})
    assert sorted(out) == ["images", "labels"]
    _consistent(to_np(out["images"]), to_np(out["labels"]))
    assert not np.allclose(to_np(out["labels"]), Y)
    same = _pipeline()({"images": X, "labels": Y}, training=False)
    np.testing.assert_array_equal(to_np(same["images"]), X)
    np.testing.assert_array_equal(to_np(same["labels"]), Y)


def test_pipeline_and_transform_methods_in_tf_data_under_every_backend():
    ds = tf.data.Dataset.from_tensor_slices({"images": X, "labels": Y}).batch(7)
    mixed = ds.map(_pipeline())
    layer = CutMix(num_classes=7, seed=2)

    def by_parts(d):
        t = layer.get_random_transformation(d)
        return layer.transform_images(d["images"], t), layer.transform_labels(d["labels"], t)

    parts = tf.data.Dataset.from_tensor_slices((X, SPARSE)).batch(7).map(
        lambda x, y: by_parts({"images": x, "labels": y}))
    for dataset, get in ((mixed, lambda d: (d["images"], d["labels"])), (parts, tuple)):
        draws = []
        for _ in range(2):
            for batch in dataset:
                xb, yb = get(batch)
                assert isinstance(xb, tf.Tensor) and yb.shape == (7, 7)
                _consistent(xb.numpy(), yb.numpy())
                draws.append(yb.numpy())
        assert not np.allclose(draws[0], draws[1])  # fresh draws every epoch


def test_float_class_ids_after_a_keras_layer_in_tf_data_are_class_ids():
    # Keras's DataLayer casts every input of its layers to float inside a tf.data map
    # (RandomFlip here, under every backend): integer ids reach ours as float32 (N,).
    ds = tf.data.Dataset.from_tensor_slices({"images": X, "labels": SPARSE}).batch(7)
    for batch in ds.map(_pipeline()):
        labels = batch["labels"].numpy()
        assert labels.shape == (7, 7)  # one-hot rows mixed, not mixed class ids
        _consistent(batch["images"].numpy(), labels)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_float_class_ids_give_what_integer_ids_give(cls, kwargs):
    x_int, y_int = (to_np(t) for t in cls(num_classes=7, seed=3, **kwargs)(X, SPARSE))
    for ids in (SPARSE.astype("float32"), SPARSE.astype("float32")[:, None]):
        x_f, y_f = (to_np(t) for t in cls(num_classes=7, seed=3, **kwargs)(X, ids))
        np.testing.assert_array_equal(x_f, x_int)
        np.testing.assert_array_equal(y_f, y_int)
    _consistent(x_int, y_int)


@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_float_labels_of_one_column_without_classes_are_mixed_as_targets(cls, kwargs):
    # No num_classes: a float (N,) label is a target (here each image's own value), mixed
    # with the same weights as the pixels.
    x_out, y_out = (to_np(t) for t in cls(seed=4, **kwargs)(X, VALUES.astype("float32")))
    assert y_out.shape == (7,)
    np.testing.assert_allclose(y_out, x_out.mean(axis=(1, 2, 3)), rtol=1e-5)


def test_inside_augmented_model_and_skipped_at_inference():
    net = keras.Sequential([keras.Input((5, 6, 3)), keras.layers.Flatten(),
                            keras.layers.Dense(7, activation="softmax")])
    model = AugmentedModel(net, MixUpOrCutMix(num_classes=7, seed=0))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    history = model.fit(X, SPARSE, batch_size=7, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_allclose(model.predict(X, verbose=0), net.predict(X, verbose=0),
                               rtol=1e-6)
    assert np.isfinite(model.evaluate(X, SPARSE, verbose=0))
