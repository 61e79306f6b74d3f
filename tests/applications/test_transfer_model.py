"""build_transfer_model: structure, numbers, weights files (Keras 2 and 3), offline error."""

import os
import socket

import h5py
import keras
import numpy as np
import pytest

from keras_recipes.applications import (
    ImageNetPreprocessing,
    build_transfer_model,
    is_batch_norm,
    selectable_layers,
)
from keras_recipes.applications import transfer_model as transfer_module
from tests.applications.tiny import (
    SIZE,
    copies,
    numpy_initializers,
    tiny_backbone,
    weights_of,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (2, 32, 32, 3)).astype("float32")



@pytest.fixture(scope="module", autouse=True)
def _numpy_initializers():
    """Random weights drawn by NumPy (same variance as Keras's), on every backend.

    The wiring under test does not depend on Keras's own random draws, and on
    JAX each new weight shape would compile a threefry program: measured here
    (2-core CPU shared with other jobs) 16.8 s of CPU for VGG16's shapes and
    minutes for ResNet50, MobileNetV3Small and EfficientNetB0 together.
    """
    with numpy_initializers(0):
        yield


# Weights of each keras.applications model without its top (Keras 3.15).
WEIGHT_COUNTS = {
    "vgg16": 26, "vgg19": 32, "resnet50": 318, "mobilenet_v3_small": 206,
    "efficientnet_b0": 312,
}
EXPECTED = {  # name -> (preprocessing mode, has batch norm)
    "vgg16": ("caffe", False),
    "vgg19": ("caffe", False),
    "resnet50": ("caffe", True),
    "mobilenet_v3_small": ("none", True),
    "efficientnet_b0": ("none", True),
}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_build_each_named_backbone_frozen_with_a_new_head(name):
    model = build_transfer_model(name, 7, input_shape=(32, 32, 3), weights=None, dropout=0.25)
    mode, has_bn = EXPECTED[name]
    assert [layer.name for layer in model.layers] == [
        "image", "preprocessing", "backbone", "head_pool", "head_dropout", "predictions"
    ]
    x = IMAGES[:, :32, :32]
    np.testing.assert_array_equal(
        _np(model.get_layer("preprocessing")(x)), _np(ImageNetPreprocessing(mode)(x)))
    backbone = model.get_layer("backbone")
    assert isinstance(backbone, keras.Model)
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    head = model.get_layer("predictions")
    assert tuple(head.kernel.shape) == (backbone.output.shape[-1], 7)
    bn = [layer for layer in selectable_layers(backbone) if is_batch_norm(layer)]
    assert bool(bn) == has_bn
    assert not any(layer.trainable for layer in bn)
    assert len(backbone.weights) == WEIGHT_COUNTS[name]


def test_vgg19_output_is_the_head_on_pooled_backbone_features():
    """Numbers: softmax(mean_hw(backbone(caffe(x))) @ W + b), computed in NumPy."""
    model = build_transfer_model("vgg19", 4, input_shape=(32, 32, 3), weights=None)
    head = model.get_layer("predictions")
    head.kernel.assign(RNG.normal(0, 0.05, tuple(head.kernel.shape)).astype("float32"))
    head.bias.assign(RNG.normal(0, 0.05, tuple(head.bias.shape)).astype("float32"))
    caffe = IMAGES[..., ::-1] - np.array([103.939, 116.779, 123.68], "float32")
    features = _np(model.get_layer("backbone")(caffe.astype("float32")))
    assert features.shape == (2, 1, 1, 512)
    logits = features.astype("float64").mean(axis=(1, 2)) @ _np(head.kernel) + _np(head.bias)
    np.testing.assert_allclose(_np(model(IMAGES)), _softmax(logits), rtol=1e-4, atol=1e-6)


def test_head_imagenet_keeps_vgg_fc_layers_and_replaces_only_the_classifier():
    model = build_transfer_model(
        "vgg19", 5, input_shape=(32, 32, 3), weights=None, head="imagenet", dropout=0.5
    )
    backbone = model.get_layer("backbone")
    names = [layer.name for layer in backbone.layers]
    assert names[-3:] == ["flatten", "fc1", "fc2"] and "predictions" not in names
    assert backbone.output.shape[-1] == 4096
    assert [layer.name for layer in model.layers][-2:] == ["head_dropout", "predictions"]
    assert tuple(model.get_layer("predictions").kernel.shape) == (4096, 5)
    assert [w.path for w in model.trainable_weights] == ["predictions/kernel", "predictions/bias"]


def test_freeze_backbone_false_trains_the_backbone_but_not_batch_norm():
    model = build_transfer_model(
        tiny_backbone(), 3, input_shape=(SIZE, SIZE, 3), weights=None, freeze_backbone=False
    )
    paths = sorted("/".join(w.path.split("/")[-2:]) for w in model.trainable_weights)
    assert paths == [
        "block4_conv/bias", "block4_conv/kernel", "block5_conv/bias", "block5_conv/kernel",
        "predictions/bias", "predictions/kernel",
    ]


def test_a_model_backbone_with_another_name_is_nested_as_backbone():
    net = tiny_backbone(name="my_net")
    model = build_transfer_model(net, 3, input_shape=(SIZE, SIZE, 3), weights=None)
    backbone = model.get_layer("backbone")
    assert backbone.layers[-1] is net and net.name == "my_net"
    pre = model.get_layer("preprocessing")
    assert [type(layer).__name__ for layer in pre.layers] == ["InputLayer", "Identity"]
    assert model.name == "my_net_transfer"


def test_keras_file_round_trip_keeps_predictions_and_frozen_flags(tmp_path):
    model = build_transfer_model(
        tiny_backbone(), 3, input_shape=(SIZE, SIZE, 3), weights=None, preprocessing="tf"
    )
    x = IMAGES[:, :SIZE, :SIZE]
    before = _np(model(x))
    model.save(tmp_path / "transfer.keras")
    loaded = keras.saving.load_model(tmp_path / "transfer.keras")
    np.testing.assert_allclose(_np(loaded(x)), before, rtol=1e-6, atol=1e-7)
    assert [w.path for w in loaded.trainable_weights] == [w.path for w in model.trainable_weights]


# ------------------------------------------------------------------ weight files
@pytest.fixture(scope="module")
def vgg16_source():
    """A VGG16 (no top) with its own random weights, as keras.applications builds it."""
    keras.utils.set_random_seed(123)
    app = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    return app, weights_of(app)


def _write_keras2_h5(path, model):
    """The layout Keras 2 wrote (and keras.applications' .h5 files have)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.13.1"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, w in zip(names, layer.weights, strict=True):
                group.create_dataset(name.decode("utf8"), data=_np(w))


def _backbone_weights(model):
    return weights_of(model.get_layer("backbone"))


def test_weights_from_a_keras3_weights_file(tmp_path, vgg16_source):
    app, expected = vgg16_source
    path = tmp_path / "vgg16_notop.weights.h5"
    app.save_weights(path)
    model = build_transfer_model("vgg16", 3, input_shape=(32, 32, 3), weights=str(path))
    got = _backbone_weights(model)
    assert len(got) == len(expected) == 26
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weights_from_a_keras2_h5_file(tmp_path, vgg16_source):
    app, expected = vgg16_source
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _write_keras2_h5(path, app)
    with h5py.File(path, "r") as f:  # the layout really is Keras 2's
        text = lambda v: v.decode("utf8") if isinstance(v, bytes) else str(v)  # noqa: E731
        assert "model_weights" not in f and text(f.attrs["keras_version"]) == "2.13.1"
        assert [text(n) for n in f["block1_conv1"].attrs["weight_names"]] == [
            "block1_conv1/kernel:0", "block1_conv1/bias:0"
        ]
    model = build_transfer_model("vgg16", 3, input_shape=(32, 32, 3), weights=path)
    for a, b in zip(_backbone_weights(model), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weights_imagenet_loads_the_file_keras_get_file_returns(tmp_path, vgg16_source,
                                                                 monkeypatch):
    app, expected = vgg16_source
    path = tmp_path / "cached.h5"
    _write_keras2_h5(path, app)
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    model = build_transfer_model("vgg16", 3, input_shape=(32, 32, 3), weights="imagenet")
    (fname, origin, kwargs), = calls
    assert fname == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert origin.endswith("/vgg16/" + fname)
    assert kwargs["cache_subdir"] == "models"
    assert kwargs["file_hash"] == "6d6bbae143d832006294945121d1f1fc"
    for a, b in zip(_backbone_weights(model), expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_weights_file_of_another_architecture_is_a_clear_error(tmp_path):
    net = tiny_backbone()
    path = tmp_path / "tiny.weights.h5"
    net.save_weights(path)
    with pytest.raises(ValueError,
                       match="The weights file .*tiny.weights.h5.* does not fit backbone 'vgg16'"):
        build_transfer_model("vgg16", 3, input_shape=(32, 32, 3), weights=str(path))


def test_model_backbone_head_imagenet_with_weights_file(tmp_path):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(tiny_backbone(name="features")(inputs))
    x = keras.layers.Dense(6, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    source = keras.Model(inputs, outputs, name="pretrained")
    path = tmp_path / "pretrained.weights.h5"
    source.save_weights(path)
    expected = copies(weights_of(source))
    keras.utils.set_random_seed(7)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Flatten()(tiny_backbone(name="features")(inputs))
    x = keras.layers.Dense(6, activation="relu", name="fc")(x)
    fresh = keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="pretrained")
    model = build_transfer_model(
        fresh, 4, input_shape=(SIZE, SIZE, 3), weights=str(path), head="imagenet"
    )
    backbone = model.get_layer("backbone")
    assert backbone.output.shape[-1] == 6
    for a, b in zip(weights_of(backbone), expected[:-2], strict=True):  # all but classifier
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- offline error
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty KERAS_HOME and no network."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.mark.parametrize(
    "head, input_shape, fname",
    [
        ("gap", (32, 32, 3), "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("imagenet", (224, 224, 3), "vgg19_weights_tf_dim_ordering_tf_kernels.h5"),
    ],
)
def test_offline_imagenet_error_names_file_url_and_alternative(offline, head, input_shape,
                                                                fname):
    with pytest.raises(OSError) as info:
        build_transfer_model("vgg19", 3, input_shape=input_shape, head=head)
    message = str(info.value)
    assert os.path.join(str(offline), "models", fname) in message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{fname}" in message
    assert "$KERAS_HOME/models/" in message
    assert "weights=PATH" in message and "weights=None" in message
    assert not os.listdir(offline / "models")  # no partial file left behind


def test_offline_error_for_a_backbone_outside_our_table(offline, monkeypatch):
    """Backbones we have no file table for go through keras.applications' own download."""
    cached = os.path.join(
        os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    )
    monkeypatch.setattr(transfer_module, "imagenet_weights_file", lambda *a, **k: None)
    if os.path.exists(cached):  # pragma: no cover - depends on the machine
        pytest.skip(f"the real file is cached at {cached}")
    with pytest.raises(OSError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") as info:
        build_transfer_model("vgg16", 3, input_shape=(32, 32, 3))
    assert "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" in str(
        info.value
    )
    assert "weights=PATH" in str(info.value)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "argument `num_classes`. Expected an int >= 1"),
        ({"num_classes": None}, "argument `num_classes`"),
        ({"head": "mlp"}, "argument `head`. Expected 'gap' or 'imagenet'"),
        ({"dropout": 1.0}, r"argument `dropout`. Expected a float in \[0, 1\)"),
        ({"input_shape": (32, 32)}, "argument `input_shape`. Expected 3 positive ints"),
        ({"input_shape": (16, 16, 3)}, "Expected height and width >= 32"),
        ({"head": "imagenet", "weights": "imagenet"}, "need 224x224 inputs"),
        ({"preprocessing": "caffe2"}, "argument `preprocessing`"),
        ({"weights": 3}, "argument `weights`. Expected 'imagenet', None or the path"),
        ({"weights": "/nonexistent/x.h5"}, "no such file"),
        ({"backbone": "vgg20"}, "argument `backbone`. Expected a keras.applications model name"),
        ({"backbone": 19}, "argument `backbone`"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"backbone": "vgg19", "num_classes": 3, "input_shape": (32, 32, 3), "weights": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_transfer_model(**args)


def test_model_backbone_rejects_imagenet_weights():
    with pytest.raises(ValueError, match="A keras.Model backbone takes None"):
        build_transfer_model(tiny_backbone(), 3, input_shape=(SIZE, SIZE, 3))


def test_head_imagenet_needs_a_final_dense():
    with pytest.raises(ValueError, match="does not end in one"):
        build_transfer_model(
            tiny_backbone(), 3, input_shape=(SIZE, SIZE, 3), weights=None, head="imagenet"
        )
