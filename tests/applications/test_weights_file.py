"""check_weights_file: a readable HDF5 weights file, or one clear error naming the file."""

import keras
import numpy as np
import pytest

from keras_recipes.applications import check_weights_file


def test_a_saved_weights_file_passes_and_loads(keras_backend, tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    assert check_weights_file(path) == path
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.load_weights(check_weights_file(str(path)))
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_home_is_expanded(keras_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(
        tmp_path / "h.weights.h5")
    assert check_weights_file("~/h.weights.h5") == tmp_path / "h.weights.h5"


def test_missing_file_and_folder(keras_backend, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*nothing.h5"):
        check_weights_file(tmp_path / "nothing.h5")
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_weights_file(tmp_path)


def test_a_file_that_is_not_hdf5(keras_backend, tmp_path):
    path = tmp_path / "w.h5"
    path.write_bytes(b"not an HDF5 file at all" * 10)
    with pytest.raises(ValueError, match=r"w\.h5' is not a readable HDF5 weights file"):
        check_weights_file(path)


def _no_weights_warnings(caught):
    return not [w for w in caught if "container" in str(w.message) or "could not" in str(
        w.message).lower()]


@pytest.mark.parametrize("other,where", [
    ("vgg16", "'block3_conv4' has weights of shapes [(3, 3, 256, 256), (256,)], the file "
              "[(3, 3, 256, 512), (512,)]"),
    ("dense", "'block1_conv1' (Conv2D) has no weights in the file"),
])
def test_weights_of_another_architecture_get_one_short_paragraph(keras_backend, tmp_path,
                                                                   other, where):
    import warnings

    from keras_recipes.applications import build_transfer_model

    if other == "vgg16":
        model = keras.applications.VGG16(include_top=False, weights=None,
                                         input_shape=(32, 32, 3))
    else:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / f"{other}.weights.h5"
    model.save_weights(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            build_transfer_model("vgg19", 5, weights=str(path), input_shape=(32, 32, 3),
                                 head="gap")
    message = str(info.value)
    assert message.startswith(f"The weights file '{path}' does not fit backbone 'vgg19'")
    assert where in message and len(message) < 700 and "\n" not in message
    assert _no_weights_warnings(caught)


def test_keras2_file_of_another_architecture_names_the_first_layer(keras_backend, tmp_path):
    import h5py

    from keras_recipes.applications import build_transfer_model

    path = tmp_path / "other_notop.h5"  # Keras 2 layout: layer_names, weight_names
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1", b"conv1", b"conv2"]
        f.create_group("input_1").attrs["weight_names"] = []
        for name, shape in (("conv1", (7, 7, 3, 64)), ("conv2", (3, 3, 64, 64))):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(),
                                           f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=np.zeros(shape, "float32"))
            group.create_dataset(f"{name}/bias:0", data=np.zeros(shape[-1:], "float32"))
    with pytest.raises(ValueError) as info:
        build_transfer_model("vgg19", 5, weights=str(path), input_shape=(32, 32, 3),
                             head="gap")
    assert ("the backbone's layer 'block1_conv1' has weights of shapes [(3, 3, 3, 64), (64,)], "
            "the file's layer 'conv1' [(7, 7, 3, 64), (64,)]") in str(info.value)
