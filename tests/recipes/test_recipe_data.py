"""The recipes' `--data PATH`: a folder of class sub-folders, read by each recipe's load_data.

Cheap (no training): a generated folder of 3 classes whose images are flat grey levels
(class c has level 60 + 60·c), so every number the recipes derive can be checked by hand.
"""

import numpy as np
import pytest
from PIL import Image

from tests.recipes.test_recipe_errors import _load

LEVELS = (60.0, 120.0, 180.0)
PER_CLASS = 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for c, level in enumerate(LEVELS):
        sub = root / f"class_{c}"
        sub.mkdir()
        for i in range(PER_CLASS):
            pixels = np.full((10, 12, 3), level, dtype="uint8")
            pixels[0, 0] = i  # distinct files
            Image.fromarray(pixels).save(sub / f"{i:02d}.png")
    return root


def _levels(x, y):
    """Each image's median pixel is its class's grey level."""
    medians = np.median(x.reshape(len(x), -1), axis=1)
    return medians, np.asarray(LEVELS)[np.asarray(y).astype(int)]


def test_vanishing_gradients_reads_a_folder(folder, keras_backend):
    recipe = _load("vanishing_gradients")
    config = recipe.Config(data=str(folder), image_size=4)
    (train, val, test), k = recipe.load_data(config)
    assert k == 3 and len(train[1]) + len(val[1]) + len(test[1]) == 3 * PER_CLASS
    assert train[0].shape[1] == 4 * 4 * 3  # flattened RGB
    # Standardized with the training set's statistics: mean 0 per feature on train.
    np.testing.assert_allclose(train[0].mean(0), 0.0, atol=1e-4)
    # Per feature, (level - mean) / (std + 1): the classes stay in the order of their levels.
    for x, y in (train, val, test):
        order = np.argsort([x[y == c, 5].mean() for c in range(3)])
        assert list(order) == [0, 1, 2]


def test_gradient_clipping_reads_a_folder_as_pixel_sequences(folder, keras_backend):
    recipe = _load("gradient_clipping")
    config = recipe.Config(data=str(folder), image_size=4, batch_size=8)
    (train, val, test), k = recipe.load_data(config)
    assert k == 3 and train[0].shape[1:] == (16, 1)  # T = 4², one grey value per step
    assert len(train[1]) % 8 == 0  # whole batches only
    for x, y in (train, val, test):
        medians, expected = _levels(x, y)
        np.testing.assert_allclose(medians, expected / 255.0, atol=1e-5)


def test_regularization_ablation_reads_a_folder_with_few_per_class(folder, keras_backend):
    recipe = _load("regularization_ablation")
    config = recipe.Config(data=str(folder), image_size=8, train_per_class=5)
    (train, val, test), k = recipe.load_data(config)
    assert k == 3 and train[0].shape[1:] == (8, 8, 3)
    np.testing.assert_array_equal(train[1].sum(0), [5, 5, 5])  # one-hot, 5 per class
    for x, y in (train, val, test):
        medians, expected = _levels(x, np.argmax(y, -1))
        np.testing.assert_allclose(medians, expected, atol=1e-3)  # 0-255, unscaled


def test_early_stopping_reads_a_folder_with_few_per_class(folder, keras_backend):
    recipe = _load("early_stopping")
    config = recipe.Config(data=str(folder), image_size=4, train_per_class=4)
    (train, val, test), k = recipe.load_data(config)
    assert k == 3 and np.bincount(train[1]).tolist() == [4, 4, 4]
    assert len(val[1]) == len(test[1]) == 3 * round(0.2 * PER_CLASS)
    np.testing.assert_allclose(train[0].mean(0), 0.0, atol=1e-4)
