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

# The cheapest mode for a few tiny steps: JAX without jit (each jitted fit compiles
# anew), TensorFlow eagerly (each traced fit costs a trace).
CHEAP = {"jax": {"jit_compile": False}, "tensorflow": {"run_eagerly": True}}.get(
    keras.backend.backend(), {})


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


def test_keras_guide_training_false_does_not_keep_batch_norm_frozen_but_freeze_does():
    """Regression (keras-team/keras#20285, Keras 3.15 measured on every backend).

    The keras.io guide builds ``base(inputs, training=False)`` and later sets
    ``base.trainable = True`` to fine-tune, expecting batch norm to stay in
    inference mode. Once ``fit`` runs, the outer ``training=True`` wins and the
    moving statistics move. ``freeze`` then ``unfreeze(layers="block5_*")``
    (the Keras 3 semantics relied on: batch norm non-trainable = inference mode)
    keeps every moving statistic bitwise and ``block4_conv`` bitwise, while
    ``block5_conv`` trains. Same data, same start.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    y = rng.normal(size=(4, 2)).astype("float32")

    def numpy(v):
        return np.array(keras.ops.convert_to_numpy(v), copy=True)

    def run(guide: bool):
        keras.utils.set_random_seed(0)
        backbone = tiny_backbone()
        bns = [layer for layer in selectable_layers(backbone) if is_batch_norm(layer)]
        for bn in bns:
            bn.moving_mean.assign(np.full(4, 0.3, "float32"))
            bn.moving_variance.assign(np.full(4, 1.5, "float32"))
        inputs = keras.Input((8, 8, 3))
        features = backbone(inputs, training=False) if guide else backbone(inputs)
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(pooled))
        if guide:
            backbone.trainable = True  # the guide's fine-tuning step
        else:
            freeze(backbone)
            unfreeze(backbone, layers="block5_*")
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", **CHEAP)
        convs = [find_layer(backbone, n) for n in ("block4_conv", "block5_conv")]
        start = [numpy(c.kernel) for c in convs]
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        stats = [numpy(v) for bn in bns for v in (bn.moving_mean, bn.moving_variance)]
        trained = [not np.array_equal(numpy(c.kernel), s) for c, s in zip(convs, start,
                                                                       strict=True)]
        return stats, trained

    guide_stats, guide_trained = run(guide=True)
    ours_stats, ours_trained = run(guide=False)
    assert guide_trained == [True, True] and ours_trained == [False, True]
    # momentum 0.99: one step moves the statistics by 1% of (batch value - start).
    starts = [np.full(4, 0.3 if i % 2 == 0 else 1.5, "float32") for i in range(4)]
    assert max(np.max(np.abs(s - s0)) for s, s0 in zip(guide_stats, starts, strict=True)) > 1e-4
    for s, s0 in zip(ours_stats, starts, strict=True):
        np.testing.assert_array_equal(s, s0)


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
