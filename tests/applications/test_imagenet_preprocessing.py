"""ImageNetPreprocessing against keras.applications' own preprocess_input, every module."""

import keras
import numpy as np
import pytest

from keras_recipes.applications import ImageNetPreprocessing, preprocessing_mode
from keras_recipes.applications.transfer_model import _MODULE_PREPROCESSING
from tests.contract import run_layer_test

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 5, 4, 3)).astype("float32")


def _numpy_reference(x, mode):
    """The formulas, written independently in NumPy."""
    x = x.astype("float64")
    if mode == "caffe":
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68])
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return x


@pytest.mark.parametrize("module", sorted(_MODULE_PREPROCESSING))
def test_each_module_matches_keras_preprocess_input(module):
    mode = _MODULE_PREPROCESSING[module]
    keras_out = getattr(keras.applications, module).preprocess_input(IMAGES.copy())
    ours = keras.ops.convert_to_numpy(ImageNetPreprocessing(mode)(IMAGES))
    np.testing.assert_allclose(ours, np.asarray(keras_out), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours, _numpy_reference(IMAGES, mode), rtol=1e-5, atol=1e-4)


def test_every_keras_application_has_a_known_mode():
    for name in [n for n in dir(keras.applications) if n[:1].isupper()]:
        assert preprocessing_mode(name) in ("caffe", "tf", "torch", "none"), name


def test_channels_first_equals_channels_last_transposed():
    for mode in ("caffe", "torch"):
        last = keras.ops.convert_to_numpy(ImageNetPreprocessing(mode)(IMAGES))
        first = keras.ops.convert_to_numpy(
            ImageNetPreprocessing(mode, data_format="channels_first")(
                IMAGES.transpose(0, 3, 1, 2)
            )
        )
        np.testing.assert_allclose(first, last.transpose(0, 3, 1, 2), rtol=1e-6)


def test_layer_contract(tmp_path):
    run_layer_test(
        ImageNetPreprocessing,
        {"mode": "caffe"},
        IMAGES,
        expected_output=_numpy_reference(IMAGES, "caffe"),
        rtol=1e-5,
        atol=1e-4,
        tmp_path=tmp_path,
        # No weights, no state, a config of two strings: the reload under another backend
        # (a fresh interpreter, 20-50 s on the shared 2-core CPU) would add nothing here.
        cross_backend=False,
        # Raw pixels minus means reach ~150: within float16 range.
        mixed_precision=("mixed_float16",),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "pytorch"}, "Invalid value for argument `mode`"),
        ({"mode": "tf", "data_format": "nhwc"}, "Invalid value for argument `data_format`"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageNetPreprocessing(**kwargs)
