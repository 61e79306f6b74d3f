"""Models from build_transfer_model load and predict with Keras alone, on every backend (issue 32).

The saved ``.keras`` files are loaded in a fresh process that never imports ``keras_recipes``,
under the backend of the test and under the other two.
"""

import json
import os
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_recipes.applications import (
    ImageNetPreprocessing,
    build_transfer_model,
    imagenet_preprocessing,
    with_float32_outputs,
)
from tests.applications.tiny import SIZE, tiny_transfer_model
from tests.processes import run

BACKENDS = ("jax", "tensorflow", "torch")
RNG = np.random.default_rng(32)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(n, size, seed=0):
    x = np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")
    x[0] = np.round(x[0])  # integer pixels too
    return x


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch", "none"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_keras_layers_preprocessing_equals_the_class_to_the_bit(mode, data_format):
    x = _images(3, 7)
    shape = (7, 7, 3)
    if data_format == "channels_first":
        x, shape = np.ascontiguousarray(np.moveaxis(x, -1, 1)), (3, 7, 7)
    pre = imagenet_preprocessing(mode, shape, data_format=data_format)
    assert not pre.weights
    assert all(type(layer).__module__.startswith("keras.") for layer in pre.layers)
    expected = _np(ImageNetPreprocessing(mode, data_format=data_format)(x))
    np.testing.assert_array_equal(_np(pre(x)), expected)


def test_keras_layers_preprocessing_rejects_bad_arguments():
    with pytest.raises(ValueError, match="argument `mode`"):
        imagenet_preprocessing("caffe2", (8, 8, 3))
    with pytest.raises(ValueError, match="argument `data_format`"):
        imagenet_preprocessing("caffe", (8, 8, 3), data_format="nhwc")


_LOADER = r"""
import json, sys
import numpy as np
import keras
assert "keras_recipes" not in sys.modules
spec = json.loads(sys.argv[1])
out = {}
for name, path in spec["models"].items():
    model = keras.models.load_model(path)
    stack, modules = [model], set()
    while stack:
        layer = stack.pop()
        modules.add(type(layer).__module__.split(".")[0])
        stack.extend(getattr(layer, "layers", []) or [])
    assert modules == {"keras"}, (name, modules)
    x = np.load(spec["inputs"])[name]
    out[name] = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
np.savez(spec["outputs"], **out)
assert "keras_recipes" not in sys.modules, sorted(m for m in sys.modules if "recipes" in m)
print("loaded", keras.backend.backend(), sorted(out))
"""


def _load_elsewhere(backend, models, inputs, outputs, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    spec = json.dumps({"models": models, "inputs": str(inputs), "outputs": str(outputs)})
    # From an empty folder: keras_recipes is not importable by accident from the checkout.
    proc = run([sys.executable, "-c", _LOADER, spec], timeout=400, capture_output=True,
               text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"loaded {backend}" in proc.stdout
    with np.load(outputs) as data:
        return {name: data[name] for name in models}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The main recipe's model (VGG19, 32x32) and tiny ones of each preprocessing mode."""
    folder = tmp_path_factory.mktemp("keras_only")
    keras.utils.set_random_seed(0)
    vgg = build_transfer_model("vgg19", 5, weights=None, head="gap", input_shape=(32, 32, 3),
                               freeze_backbone=False, classifier_activation=None,
                               name="vgg19_transfer")
    models = {"vgg19": with_float32_outputs(vgg)}
    for mode in ("caffe", "tf", "torch"):
        models[f"tiny_{mode}"] = with_float32_outputs(
            tiny_transfer_model(preprocessing=mode, dropout=0.2))
    inputs = {"vgg19": _images(3, 32, seed=1)}
    inputs.update({name: _images(4, SIZE, seed=2) for name in models if name != "vgg19"})
    paths, expected = {}, {}
    for name, model in models.items():
        paths[name] = str(folder / f"{name}.keras")
        model.save(paths[name])
        expected[name] = _np(model.predict(inputs[name], verbose=0))
    np.savez(folder / "inputs.npz", **inputs)
    return folder, paths, expected


def test_saved_config_names_no_keras_recipes_object(saved):
    _, paths, _ = saved
    for path in paths.values():
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json").decode("utf8")
        assert "keras_recipes" not in config and "ImageNetPreprocessing" not in config


@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_model_loads_and_predicts_with_keras_alone(saved, backend, tmp_path):
    """Same backend: the values of the original; another backend: the same to rounding."""
    folder, paths, expected = saved
    got = _load_elsewhere(backend, paths, folder / "inputs.npz", tmp_path / "out.npz", tmp_path)
    same = backend == keras.backend.backend()
    for name, want in expected.items():
        scale = float(np.abs(want).max())
        assert scale > 0
        rtol, atol = (1e-5, 1e-6 * scale) if same else (1e-4, 1e-5 * scale)
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=atol, err_msg=name)
