"""freeze / unfreeze / find_layer: which weights train, batch norm at any depth."""

import keras
import numpy as np
import pytest

from keras_recipes.applications import (
    find_layer,
    freeze,
    is_batch_norm,
    selectable_layers,
    unfreeze,
)
from tests.applications.tiny import tiny_backbone


def _trainable_paths(model):
    # "layer/weight" (nested models prefix the path with their own name).
    return sorted("/".join(w.path.split("/")[-2:]) for w in model.trainable_weights)


def _model():
    backbone = tiny_backbone()
    inputs = keras.Input((8, 8, 3))
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs), backbone


CONV4 = ["block4_conv/bias", "block4_conv/kernel"]
CONV5 = ["block5_conv/bias", "block5_conv/kernel"]
BN4 = ["block4_bn/beta", "block4_bn/gamma"]
BN5 = ["block5_bn/beta", "block5_bn/gamma"]
HEAD = ["head/bias", "head/kernel"]


def test_freeze_makes_every_weight_non_trainable_batch_norm_included():
    model, backbone = _model()
    freeze(backbone)
    assert _trainable_paths(model) == HEAD
    assert not backbone.trainable
    for layer in selectable_layers(backbone):
        assert not layer.trainable, layer.name


def test_freeze_can_leave_batch_norm_trainable_at_any_depth():
    model, backbone = _model()
    freeze(backbone, keep_batchnorm_frozen=False)
    assert _trainable_paths(model) == sorted(BN4 + BN5 + HEAD)


def test_unfreeze_all_keeps_batch_norm_frozen_also_in_nested_models():
    model, backbone = _model()
    freeze(backbone)
    chosen = unfreeze(backbone)
    assert _trainable_paths(model) == sorted(CONV4 + CONV5 + HEAD)
    assert [layer.name for layer in chosen if layer.weights] == ["block4_conv", "block5_conv"]
    bn = [layer for layer in selectable_layers(backbone) if is_batch_norm(layer)]
    assert [layer.name for layer in bn] == ["block4_bn", "block5_bn"]
    assert all(not layer.trainable for layer in bn)
    # Nested container flags follow their leaves; the backbone is trainable as a whole.
    assert backbone.trainable and find_layer(backbone, "block5").trainable


def test_unfreeze_all_with_batch_norm():
    model, backbone = _model()
    freeze(backbone)
    unfreeze(backbone, keep_batchnorm_frozen=False)
    assert _trainable_paths(model) == sorted(CONV4 + CONV5 + BN4 + BN5 + HEAD)


def test_unfreeze_glob_pattern_reaches_into_nested_models():
    model, backbone = _model()
    freeze(backbone)
    unfreeze(backbone, layers="block5_*")
    assert _trainable_paths(model) == sorted(CONV5 + HEAD)


def test_unfreeze_accumulates_and_does_not_refreeze():
    model, backbone = _model()
    freeze(backbone)
    unfreeze(backbone, layers="block5_*")
    unfreeze(backbone, layers=["block4_conv"])
    assert _trainable_paths(model) == sorted(CONV4 + CONV5 + HEAD)


def test_unfreeze_by_name_of_a_nested_model_takes_its_whole_subtree():
    model, backbone = _model()
    freeze(backbone)
    unfreeze(backbone, layers=["block5"], keep_batchnorm_frozen=False)
    assert _trainable_paths(model) == sorted(CONV5 + BN5 + HEAD)


def test_unfreeze_last_n_layers_with_weights():
    model, backbone = _model()
    assert [layer.name for layer in selectable_layers(backbone)] == [
        "block4_conv", "block4_bn", "block5_conv", "block5_bn"
    ]
    freeze(backbone)
    unfreeze(backbone, layers=2)  # block5_conv, block5_bn (kept frozen)
    assert _trainable_paths(model) == sorted(CONV5 + HEAD)
    unfreeze(backbone, layers=3)  # + block4_bn, kept frozen
    assert _trainable_paths(model) == sorted(CONV5 + HEAD)


def test_unfrozen_weights_really_train_and_frozen_batch_norm_stays_in_inference_mode():
    """The Keras 3 semantics relied on: trainable=False batch norm uses moving stats."""
    model, backbone = _model()
    freeze(backbone)
    unfreeze(backbone, layers="block5_*")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    bn5 = find_layer(backbone, "block5_bn")
    conv4 = find_layer(backbone, "block4_conv")
    conv5 = find_layer(backbone, "block5_conv")
    before = {
        "stats": [np.array(bn5.moving_mean), np.array(bn5.moving_variance)],
        "conv4": np.array(conv4.kernel),
        "conv5": np.array(conv5.kernel),
    }
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(np.array(bn5.moving_mean), before["stats"][0])
    np.testing.assert_array_equal(np.array(bn5.moving_variance), before["stats"][1])
    np.testing.assert_array_equal(np.array(conv4.kernel), before["conv4"])
    assert not np.array_equal(np.array(conv5.kernel), before["conv5"])


def test_find_layer_searches_nested_models():
    model, backbone = _model()
    wrapper = keras.Sequential([keras.Input((8, 8, 3)), model])
    assert find_layer(wrapper, "backbone") is backbone
    assert find_layer(wrapper, "block5_bn") is find_layer(backbone, "block5_bn")


def test_find_layer_error_names_the_missing_layer():
    model, _ = _model()
    with pytest.raises(ValueError, match="No layer named 'nope'"):
        find_layer(model, "nope")


@pytest.mark.parametrize(
    "layers, match",
    [
        (0, "Expected 'all', an int > 0"),
        (1.5, "Expected 'all', an int > 0, a glob"),
        ([], "Expected a non-empty list of layer names"),
        ("block9_*", r"No layer of 'backbone' matches \['block9_\*'\]"),
        (["block4_conv", "typo"], r"matches \['typo'\]"),
    ],
)
def test_unfreeze_invalid_layers(layers, match):
    _, backbone = _model()
    with pytest.raises(ValueError, match=match):
        unfreeze(backbone, layers=layers)


def test_freeze_rejects_a_non_layer():
    with pytest.raises(ValueError, match="Invalid value for argument `layer`"):
        freeze("backbone")
