"""mixing_layer (a mixing layer by name) and basic_augmentation (flip, contrast, brightness).

References: the layers built by hand with the same arguments, and NumPy checks of what a
flip, a contrast change and a brightness shift do to each image.
"""

import keras
import numpy as np
import pytest

from keras_recipes.layers import (
    MIXING_KINDS,
    CutMix,
    MixUp,
    MixUpOrCutMix,
    basic_augmentation,
    mixing_layer,
)
from tests.layers.mixing_reference import to_np

RNG = np.random.default_rng(0)
X = RNG.random((16, 6, 5, 3)).astype("float32") * 255
Y = np.arange(16) % 4


@pytest.mark.parametrize("kind,cls,alphas", [
    ("mixup", MixUp, {"alpha": 0.3}),
    ("cutmix", CutMix, {"alpha": 0.7}),
    ("mixup_or_cutmix", MixUpOrCutMix, {"mixup_alpha": 0.3, "cutmix_alpha": 0.7}),
    ("mixup-cutmix", MixUpOrCutMix, {"mixup_alpha": 0.3, "cutmix_alpha": 0.7}),
])
def test_kind_gives_the_layer_built_by_hand(keras_backend, kind, cls, alphas):
    layer = mixing_layer(kind, mixup_alpha=0.3, cutmix_alpha=0.7, switch_prob=0.25,
                         num_classes=4, label_smoothing=0.1, seed=5)
    assert type(layer) is cls
    for name, value in alphas.items():
        assert getattr(layer, name) == value
    extra = {"switch_prob": 0.25} if cls is MixUpOrCutMix else {}
    by_hand = cls(*alphas.values(), num_classes=4, label_smoothing=0.1, seed=5, **extra)
    x1, y1 = layer(X, Y, training=True)
    x2, y2 = by_hand(X, Y, training=True)
    np.testing.assert_array_equal(to_np(x1), to_np(x2))
    np.testing.assert_array_equal(to_np(y1), to_np(y2))
    assert to_np(y1).shape == (16, 4)
    # label smoothing 0.1 over 4 classes: every label row still sums to 1
    np.testing.assert_allclose(to_np(y1).sum(axis=1), 1.0, rtol=1e-6)


def test_defaults_and_none(keras_backend):
    assert mixing_layer("none") is None and mixing_layer(None) is None
    assert mixing_layer("mixup").alpha == 0.2 and mixing_layer("cutmix").alpha == 1.0
    both = mixing_layer("mixup_or_cutmix")
    assert (both.mixup_alpha, both.cutmix_alpha, both.switch_prob) == (0.2, 1.0, 0.5)
    assert set(MIXING_KINDS) == {"none", "mixup", "cutmix", "mixup_or_cutmix", "mixup-cutmix"}


def test_unknown_kind_is_named(keras_backend):
    with pytest.raises(ValueError, match=r"argument `kind`.*Received: kind='mix'"):
        mixing_layer("mix")
    with pytest.raises(ValueError, match="alpha"):
        mixing_layer("mixup", mixup_alpha=-1.0)


def test_flip_only_mirrors_some_images_and_keeps_others(keras_backend):
    out = to_np(basic_augmentation(contrast=0, brightness=0, seed=1)(X))
    flipped = [np.array_equal(o, x[:, ::-1]) for o, x in zip(out, X, strict=True)]
    kept = [np.array_equal(o, x) for o, x in zip(out, X, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_contrast_keeps_each_image_mean_and_brightness_shifts_it(keras_backend):
    x = (RNG.random((8, 6, 5, 3)) * 40 + 100).astype("float32")  # far from 0 and 255: no clip
    out = to_np(basic_augmentation(flip=None, brightness=0, contrast=0.2, seed=2)(x))
    mean = x.mean(axis=(1, 2), keepdims=True)  # RandomContrast: per image and channel
    ratio = (out - mean) / (x - mean)
    factor = ratio.reshape(8, -1)
    np.testing.assert_allclose(factor, factor[:, :1].repeat(factor.shape[1], 1), rtol=1e-3)
    assert np.all((factor[:, 0] >= 0.8 - 1e-5) & (factor[:, 0] <= 1.2 + 1e-5))
    out = to_np(basic_augmentation(flip=None, contrast=0, brightness=0.2, seed=2)(x))
    shift = (out - x).reshape(8, -1)
    np.testing.assert_allclose(shift, shift[:, :1].repeat(shift.shape[1], 1), atol=1e-3)
    assert np.all(np.abs(shift[:, 0]) <= 0.2 * 255 + 1e-3) and np.any(shift[:, 0] != 0)


def test_pipeline_is_the_three_keras_layers_in_order(keras_backend):
    flip = keras.layers.RandomFlip("horizontal", seed=7)
    contrast = keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=8)
    bright = keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=9)
    want = to_np(bright(contrast(flip(X, training=True), training=True), training=True))
    got = to_np(basic_augmentation(seed=7)(X))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    assert got.min() >= 0 and got.max() <= 255


def test_in_a_tf_data_map_under_every_backend(keras_backend):
    tf = pytest.importorskip("tensorflow")
    aug = basic_augmentation(contrast=0, brightness=0, seed=3)
    ds = tf.data.Dataset.from_tensor_slices(X).batch(8).map(aug)
    out = np.concatenate([b.numpy() for b in ds])
    assert all(np.array_equal(o, x) or np.array_equal(o, x[:, ::-1])
               for o, x in zip(out, X, strict=True))


@pytest.mark.parametrize("kwargs,name", [({"flip": "diagonal"}, "flip"),
                                         ({"contrast": 1.5}, "contrast"),
                                         ({"brightness": -0.1}, "brightness")])
def test_bad_arguments_are_named(keras_backend, kwargs, name):
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        basic_augmentation(**kwargs)
