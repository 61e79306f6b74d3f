"""build_transfer_model: a keras.applications backbone with a new head, ready to fine-tune."""

from __future__ import annotations

import os
import warnings

import keras

from keras_recipes.applications.freezing import freeze, unfreeze
from keras_recipes.applications.imagenet_preprocessing import (
    PREPROCESSING_MODES,
    imagenet_preprocessing,
)
from keras_recipes.applications.imagenet_weights import (
    WeightsFile,
    imagenet_weights_file,
    imagenet_weights_path,
    offline_message,
)
from keras_recipes.backend.convolution import fast_small_convolutions

__all__ = ["build_transfer_model", "backbone_names", "preprocessing_mode"]

# keras.applications module -> the convention of its `preprocess_input`.
_MODULE_PREPROCESSING = {
    "vgg16": "caffe",
    "vgg19": "caffe",
    "resnet": "caffe",
    "resnet50": "caffe",
    "resnet_v2": "tf",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "inception_v3": "tf",
    "inception_resnet_v2": "tf",
    "xception": "tf",
    "nasnet": "tf",
    "densenet": "torch",
    "mobilenet_v3": "none",
    "efficientnet": "none",
    "efficientnet_v2": "none",
    "convnext": "none",
}
# Backbones whose classifier sits on a Flatten: their ImageNet top needs 224x224.
_FLATTEN_TOP = {"vgg16", "vgg19"}
_MIN_SIZE = 32


def _canonical(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _applications() -> dict:
    return {
        _canonical(n): getattr(keras.applications, n)
        for n in dir(keras.applications)
        if n[:1].isupper() and callable(getattr(keras.applications, n))
    }


def backbone_names() -> list[str]:
    """The backbone names ``build_transfer_model`` accepts (canonical form).

    Case, ``_`` and ``-`` are ignored: ``"mobilenet_v3_small"``,
    ``"MobileNetV3Small"`` and ``"mobilenetv3small"`` are the same backbone.

    Example:

    >>> {"vgg19", "resnet50", "mobilenetv3small", "efficientnetb0"} <= set(backbone_names())
    True

    Returns:
        A sorted list of the names of ``keras.applications`` models.
    """
    return sorted(_applications())


def preprocessing_mode(backbone: str) -> str:
    """The input convention of a named backbone (see ``imagenet_preprocessing``).

    Example:

    >>> preprocessing_mode("vgg19"), preprocessing_mode("densenet121")
    ('caffe', 'torch')

    Args:
        backbone: a ``keras.applications`` model name.

    Returns:
        One of ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"``.

    Raises:
        ValueError: for an unknown backbone name.
    """
    fn = _resolve(backbone)
    module = fn.__module__.rsplit(".", 1)[-1]
    if module not in _MODULE_PREPROCESSING:
        raise ValueError(
            f"Unknown preprocessing for backbone {backbone!r} (module {module!r}). Pass "
            f"preprocessing= one of {list(PREPROCESSING_MODES)}."
        )
    return _MODULE_PREPROCESSING[module]


def _resolve(backbone: str):
    apps = _applications()
    key = _canonical(backbone)
    if key not in apps:
        raise ValueError(
            "Invalid value for argument `backbone`. Expected a keras.applications model "
            f"name (one of {sorted(apps)}) or a keras.Model. Received: backbone={backbone!r}"
        )
    return apps[key]


def _check_args(backbone, num_classes, input_shape, weights, head, dropout, preprocessing):
    if not isinstance(backbone, (str, keras.Model)):
        raise ValueError(
            "Invalid value for argument `backbone`. Expected a keras.applications model "
            f"name or a keras.Model. Received: backbone={backbone!r}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an int >= 1. "
            f"Received: num_classes={num_classes!r}"
        )
    if head not in ("gap", "imagenet"):
        raise ValueError(
            "Invalid value for argument `head`. Expected 'gap' or 'imagenet'. "
            f"Received: head={head!r}"
        )
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, (int, float))
        or not 0.0 <= dropout < 1.0
    ):
        raise ValueError(
            "Invalid value for argument `dropout`. Expected a float in [0, 1). "
            f"Received: dropout={dropout!r}"
        )
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected 3 positive ints "
            f"(height, width, channels). Received: input_shape={input_shape!r}"
        )
    if preprocessing != "auto" and preprocessing is not None and (
        preprocessing not in PREPROCESSING_MODES
    ):
        raise ValueError(
            "Invalid value for argument `preprocessing`. Expected 'auto', None or one of "
            f"{list(PREPROCESSING_MODES)}. Received: preprocessing={preprocessing!r}"
        )
    if weights is None or weights == "imagenet":
        pass
    elif isinstance(weights, (str, os.PathLike)):
        if not os.path.isfile(os.fspath(weights)):
            raise ValueError(
                "Invalid value for argument `weights`. Expected 'imagenet', None or the "
                f"path of an existing weights file. Received: weights={weights!r} (no such "
                "file)"
            )
    else:
        raise ValueError(
            "Invalid value for argument `weights`. Expected 'imagenet', None or the path "
            f"of a weights file. Received: weights={weights!r}"
        )
    if isinstance(backbone, keras.Model) and weights == "imagenet":
        raise ValueError(
            "Invalid value for argument `weights`. A keras.Model backbone takes None or "
            "the path of its weights file, not 'imagenet'. Received: weights='imagenet'"
        )
    return shape


def _spatial(shape) -> tuple[int, int]:
    if keras.config.image_data_format() == "channels_first":
        return shape[1], shape[2]
    return shape[0], shape[1]


def _weighted_layers(model) -> list:
    return [layer for layer in model.layers if layer.weights]


def _shapes(weights) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in w.shape) for w in weights]


def _first_mismatch(model, path) -> str | None:
    """Where a weights file stops fitting `model`, in a few words (None: not found)."""
    import h5py
    from keras.src.utils.naming import to_snake_case

    layers = _weighted_layers(model)
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:  # Keras 2 '.h5': matched by order
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in root.attrs["layer_names"]]
                saved = []
                for name in names:
                    weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                                    for w in root[name].attrs.get("weight_names", [])]
                    if weight_names:
                        saved.append((name, [tuple(root[name][w].shape) for w in weight_names]))
                for i, layer in enumerate(layers):
                    if i >= len(saved):
                        return (f"the file ends after {len(saved)} layers with weights, before "
                                f"the backbone's layer {layer.name!r}")
                    if saved[i][1] != _shapes(layer.weights):
                        return (f"the backbone's layer {layer.name!r} has weights of shapes "
                                f"{_shapes(layer.weights)}, the file's layer {saved[i][0]!r} "
                                f"{saved[i][1]}")
                if len(saved) > len(layers):
                    return (f"the file holds {len(saved)} layers with weights, the backbone "
                            f"{len(layers)}")
                return None
            if "layers" in root:  # Keras 3 '.weights.h5': matched by generated names
                seen: dict[str, int] = {}
                for layer in layers:
                    base = to_snake_case(type(layer).__name__)
                    key = base if base not in seen else f"{base}_{seen[base]}"
                    seen[base] = seen.get(base, 0) + 1
                    group = root["layers"].get(f"{key}/vars")
                    if group is None:
                        return (f"the backbone's layer {layer.name!r} ({type(layer).__name__}) "
                                "has no weights in the file")
                    got = [tuple(group[str(i)].shape) for i in range(len(group))]
                    if got != _shapes(layer.weights):
                        return (f"the backbone's layer {layer.name!r} has weights of shapes "
                                f"{_shapes(layer.weights)}, the file {got}")
                return None
    except (OSError, KeyError, ValueError):
        return None
    return None


def _load(model, path, backbone) -> None:
    try:
        # Keras warns once per layer it cannot fill before it raises: those warnings are
        # shown only if the file loads; a failure is told in one paragraph instead.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.load_weights(os.fspath(path))
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except (ValueError, KeyError, OSError) as err:
        where = _first_mismatch(model, os.fspath(path))
        if where is None:  # Keras's own words, first line only (it lists every layer)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            where = first if len(first) <= 200 else first[:197] + "..."
        raise ValueError(
            f"The weights file {os.fspath(path)!r} does not fit backbone {backbone!r} "
            f"({len(_weighted_layers(model))} layers with weights): {where}. Expected the "
            "weights of the same architecture: keras.applications' ImageNet file of this "
            "backbone (Keras 2 '.h5', with the classifier for head='imagenet', the '_notop' "
            "one for head='gap') or a Keras 3 '.weights.h5' saved from it."
        ) from None


def _named_backbone(name, input_shape, weights, include_top):
    fn = _resolve(name)
    key = _canonical(name)
    kwargs = {"include_top": include_top, "input_shape": input_shape}
    if weights == "imagenet":
        file = imagenet_weights_file(key, include_top)
        if file is not None:
            path = imagenet_weights_path(name, file)
            app = fn(weights=None, **kwargs)
            _load(app, path, name)
            return app
        # Not in our table: let keras.applications download it, and explain a failure.
        try:
            return fn(weights="imagenet", **kwargs)
        except Exception as err:
            text = str(err)
            if "URL fetch failure" not in text:
                raise
            url = text.split("URL fetch failure on ", 1)[1].split(": ", 1)[0]
            file = WeightsFile(os.path.basename(url), url, "")
            raise OSError(offline_message(name, file, err)) from err
    app = fn(weights=None, **kwargs)
    if weights is not None:
        _load(app, weights, name)
    return app


def _drop_classifier(model, name):
    last = model.layers[-1] if getattr(model, "layers", None) else None
    if not isinstance(last, keras.layers.Dense) or not hasattr(model, "inputs"):
        raise ValueError(
            "Invalid value for argument `head`. head='imagenet' replaces the backbone's "
            f"final Dense classifier, but {name!r} does not end in one (its last layer is "
            f"{type(last).__name__}). Use head='gap'. Received: head='imagenet'"
        )
    return keras.Model(model.inputs, last.input, name="backbone")


def build_transfer_model(
    backbone: str | keras.Model = "vgg19",
    num_classes: int | None = None,
    *,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | os.PathLike | None = "imagenet",
    head: str = "gap",
    dropout: float = 0.0,
    freeze_backbone: bool = True,
    name: str | None = None,
    classifier_activation: str | None = "softmax",
    preprocessing: str | None = "auto",
) -> keras.Model:
    """A pretrained backbone with a new classifier head, for transfer learning.

    The course's procedure (replace the classifier, freeze, warm up the head,
    unfreeze, continue with a small learning rate) starts here. The model
    takes **raw images** (RGB, 0-255) and contains, in order:

    1. ``"preprocessing"``: the backbone's own input convention (caffe for
       VGG/ResNet, ``[-1, 1]`` for MobileNetV2/Inception, torch for DenseNet,
       none for EfficientNet, MobileNetV3 and ConvNeXt, which rescale inside)
       as a nested model of Keras's own layers (:func:`imagenet_preprocessing`,
       the values of :class:`ImageNetPreprocessing`), so that the saved model
       loads with Keras alone;
    2. ``"backbone"``: the backbone as one nested model (frozen by default,
       batch norm in inference mode);
    3. the new head:

       - ``head="gap"``: ``GlobalAveragePooling2D`` -> ``Dropout(dropout)`` ->
         ``Dense(num_classes)`` named ``"predictions"``; any input >= 32x32.
       - ``head="imagenet"``: the course's way for VGG. The backbone keeps the
         whole pretrained top (VGG's two 4096-unit layers ``fc1``, ``fc2``);
         only the final 1000-way ``Dense`` is replaced by a new one (after an
         optional ``Dropout``). VGG's top needs 224x224 inputs with pretrained
         weights.

    ``weights="imagenet"`` uses Keras's cache (``$KERAS_HOME/models/``) and its
    md5-checked download. When the file is neither cached nor downloadable, an
    ``OSError`` names the file expected in the cache, its URL and the
    ``weights=PATH`` alternative. ``weights=PATH`` loads a file laid out like
    ``keras.applications``' own for that backbone: the official Keras 2 ``.h5``
    (the one with the classifier for ``head="imagenet"``, the ``_notop`` one for
    ``head="gap"``) or a Keras 3 ``.weights.h5`` saved from the same backbone.

    Example (the course's VGG19 on 102 flower classes, then a runnable small one):

    ```python
    model = build_transfer_model("vgg19", 102, head="imagenet")  # 224x224, ImageNet weights
    ```

    >>> import keras, numpy as np
    >>> features = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...                              keras.layers.BatchNormalization()], name="features")
    >>> model = build_transfer_model(features, 5, input_shape=(32, 32, 3), weights=None,
    ...                              preprocessing="caffe", dropout=0.2)
    >>> [layer.name for layer in model.layers]
    ['image', 'preprocessing', 'backbone', 'head_pool', 'head_dropout', 'predictions']
    >>> [w.path for w in model.trainable_weights]  # the backbone is frozen
    ['predictions/kernel', 'predictions/bias']
    >>> model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape
    (2, 5)

    Args:
        backbone: a ``keras.applications`` model name (``"vgg16"``, ``"vgg19"``,
            ``"resnet50"``, ``"mobilenet_v3_small"``, ``"efficientnet_b0"``, ...;
            case, ``_`` and ``-`` ignored; see :func:`backbone_names`) or a
            built ``keras.Model`` mapping images to features (it is nested as
            ``"backbone"``, wrapped if its name differs).
        num_classes: number of classes of the new ``Dense`` head.
        input_shape: ``(height, width, channels)`` of the raw images.
        weights: ``"imagenet"``, ``None`` (random initialization) or the path
            of a weights file for the backbone (see above).
        head: ``"gap"`` or ``"imagenet"`` (see above).
        dropout: dropout rate before the new ``Dense`` (0 for none).
        freeze_backbone: freeze the whole backbone (the warm-up phase). With
            ``False`` the backbone is trainable except its batch-norm layers.
        name: the model's name (default ``"<backbone>_transfer"``).
        classifier_activation: activation of the new ``Dense`` (``"softmax"``,
            or ``None`` for logits).
        preprocessing: ``"auto"`` (the named backbone's own; none for a model
            backbone), ``None``, or one of ``"caffe"``, ``"tf"``, ``"torch"``,
            ``"none"``.

    Returns:
        An uncompiled ``keras.Model`` from raw images to class probabilities.
        On JAX its small-output convolutions are computed as im2col + matmul
        (:func:`keras_recipes.backend.fast_small_convolutions`; the same values
        up to rounding, a VGG19 training step at 32x32 3.3x faster on a CPU).

    Raises:
        ValueError: for an invalid argument, an unknown backbone name, a
            weights file that does not fit the backbone, or ``head="imagenet"``
            on a backbone without a final ``Dense`` classifier.
        OSError: when ImageNet weights are neither cached nor downloadable.

    References:
        - Yosinski et al., How transferable are features in deep neural
          networks? (NeurIPS 2014). https://arxiv.org/abs/1411.1792
        - Keras guide, Transfer learning & fine-tuning.
          https://keras.io/guides/transfer_learning/
    """
    shape = _check_args(backbone, num_classes, input_shape, weights, head, dropout, preprocessing)
    if isinstance(backbone, str):
        key = _canonical(backbone)
        _resolve(backbone)  # unknown names fail before any download
        height, width = _spatial(shape)
        if min(height, width) < _MIN_SIZE:
            raise ValueError(
                f"Invalid value for argument `input_shape`. Expected height and width >= "
                f"{_MIN_SIZE} for keras.applications backbones. Received: "
                f"input_shape={input_shape!r}"
            )
        if head == "imagenet" and weights is not None and key in _FLATTEN_TOP and (
            (height, width) != (224, 224)
        ):
            raise ValueError(
                f"Invalid value for argument `input_shape`. head='imagenet' keeps {backbone}'s "
                "pretrained fully connected layers, which need 224x224 inputs. Received: "
                f"input_shape={input_shape!r} (use head='gap' for other sizes)"
            )
        mode = preprocessing_mode(backbone) if preprocessing == "auto" else preprocessing
        app = _named_backbone(backbone, shape, weights, include_top=head == "imagenet")
        if head == "imagenet":
            net = _drop_classifier(app, backbone)
        else:
            app.name = "backbone"
            net = app
        default_name = f"{key}_transfer"
    else:
        mode = "none" if preprocessing == "auto" else preprocessing
        if weights is not None:
            _load(backbone, weights, backbone.name)
        net = backbone
        if head == "imagenet":
            net = _drop_classifier(backbone, backbone.name)
        elif net.name != "backbone":
            inner = keras.Input(shape=shape)
            net = keras.Model(inner, backbone(inner), name="backbone")
        default_name = f"{backbone.name}_transfer"

    inputs = keras.Input(shape=shape, name="image")
    # Keras's own layers only: the saved model loads without keras_recipes.
    x = imagenet_preprocessing(mode or "none", shape, name="preprocessing")(inputs)
    x = net(x)
    if head == "gap" and len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation=classifier_activation, name="predictions"
    )(x)
    model = keras.Model(inputs, outputs, name=name or default_name)
    if freeze_backbone:
        freeze(net)
    else:
        unfreeze(net, layers="all")
    # JAX's CPU convolution is very slow on tiny feature maps (VGG19's last block at 32x32).
    fast_small_convolutions(model)
    return model
