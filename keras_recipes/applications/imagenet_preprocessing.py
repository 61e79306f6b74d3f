"""ImageNetPreprocessing: a backbone's own input preprocessing, as a layer in the model."""

from __future__ import annotations

import keras

__all__ = ["ImageNetPreprocessing", "PREPROCESSING_MODES", "imagenet_preprocessing"]

# The three conventions of keras.applications' `preprocess_input`, and "none"
# for backbones that rescale inside the model (EfficientNet, MobileNetV3, ConvNeXt).
PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")

_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_recipes")
class ImageNetPreprocessing(keras.layers.Layer):
    """Maps raw images (RGB, 0-255) to what an ImageNet backbone expects.

    The same arithmetic as ``keras.applications.<module>.preprocess_input``, as
    a serializable layer, so that a transfer model takes raw images and its
    ``.keras`` file carries its preprocessing:

    - ``"caffe"`` (VGG16/19, ResNet50/101/152): RGB -> BGR, then subtract the
      ImageNet channel means ``[103.939, 116.779, 123.68]`` (BGR order); no
      scaling.
    - ``"tf"`` (MobileNet/V2, ResNetV2, Inception, Xception, NASNet):
      ``x / 127.5 - 1``, into [-1, 1].
    - ``"torch"`` (DenseNet): ``x / 255``, then ``(x - mean) / std`` per channel
      with mean ``[0.485, 0.456, 0.406]`` and std ``[0.229, 0.224, 0.225]``.
    - ``"none"``: identity (EfficientNet, MobileNetV3, ConvNeXt rescale inside
      the backbone).

    Example:

    >>> import numpy as np
    >>> layer = ImageNetPreprocessing("caffe")
    >>> x = np.array([[[[255.0, 128.0, 0.0]]]], "float32")  # one RGB pixel
    >>> [round(float(v), 3) for v in np.asarray(layer(x)).ravel()]  # BGR minus the means
    [-103.939, 11.221, 131.32]

    Args:
        mode: one of ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"``.
        data_format: ``"channels_last"`` or ``"channels_first"`` (default:
            ``keras.config.image_data_format()``).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        inputs: a float tensor of images in 0-255, RGB, shape
            ``(batch, height, width, 3)`` (or channels first).

    Returns:
        A tensor of the same shape in the backbone's input convention.

    Raises:
        ValueError: if ``mode`` or ``data_format`` is not one of the values above.

    References:
        - Keras Applications, ``preprocess_input`` of each model.
          https://keras.io/api/applications/
    """

    def __init__(self, mode: str = "caffe", data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.data_format = _check_mode(mode, data_format)
        self.supports_masking = True

    def _per_channel(self, values, ndim):
        axis = -1 if self.data_format == "channels_last" else -3
        shape = [1] * ndim
        shape[axis] = 3
        return keras.ops.reshape(
            keras.ops.convert_to_tensor(values, dtype=self.compute_dtype), shape
        )

    def call(self, inputs):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if self.mode == "none":
            return x
        if self.mode == "tf":
            return x / 127.5 - 1.0
        ndim = len(x.shape)
        if self.mode == "torch":
            x = x / 255.0
            return (x - self._per_channel(_TORCH_MEAN, ndim)) / self._per_channel(
                _TORCH_STD, ndim
            )
        axis = -1 if self.data_format == "channels_last" else -3
        x = keras.ops.flip(x, axis=axis)  # RGB -> BGR
        return x - self._per_channel(_CAFFE_BGR_MEAN, ndim)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "data_format": self.data_format})
        return config


def _check_mode(mode, data_format):
    if mode not in PREPROCESSING_MODES:
        raise ValueError(
            f"Invalid value for argument `mode`. Expected one of {list(PREPROCESSING_MODES)}. "
            f"Received: mode={mode!r}"
        )
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "Invalid value for argument `data_format`. Expected 'channels_last' or "
            f"'channels_first'. Received: data_format={data_format!r}"
        )
    return data_format


def _divide_by(value: float, axis: int, name: str):
    # (x - 0) / sqrt(value**2) is x / value, rounded once: sqrt is exact for these values.
    return keras.layers.Normalization(axis=axis, mean=0.0, variance=float(value) ** 2, name=name)


def _channel_flip(x, shape, data_format):
    """RGB <-> BGR with data-movement layers only (reshape, crop, concatenate): exact."""
    if data_format == "channels_last":
        height, width, channels = shape
        x = keras.layers.Reshape((height * width, channels), name="flatten_pixels")(x)
        x = keras.layers.Permute((2, 1), name="channels_first")(x)
    else:
        channels, height, width = shape
        x = keras.layers.Reshape((channels, height * width), name="flatten_pixels")(x)
    # Cropping1D crops axis 1 (the channels here): keep channel c of 3, from the last.
    parts = [keras.layers.Cropping1D((c, channels - 1 - c), name=f"channel_{c}")(x)
             for c in reversed(range(channels))]
    x = keras.layers.Concatenate(axis=1, name="reversed_channels")(parts)
    if data_format == "channels_last":
        x = keras.layers.Permute((2, 1), name="channels_last")(x)
        return keras.layers.Reshape((height, width, channels), name="bgr")(x)
    return keras.layers.Reshape((channels, height, width), name="bgr")(x)


def imagenet_preprocessing(
    mode: str = "caffe",
    input_shape: tuple[int, int, int] = (224, 224, 3),
    *,
    data_format: str | None = None,
    name: str = "preprocessing",
) -> keras.Model:
    """The arithmetic of :class:`ImageNetPreprocessing`, as a model of Keras's own layers.

    A model that contains it saves and loads with Keras alone (no
    ``keras_recipes`` import, no custom object), on any backend.
    ``build_transfer_model`` nests it as its ``"preprocessing"`` layer. The
    values are those of ``ImageNetPreprocessing(mode)``, to the bit in float32
    (under a mixed-precision policy too, except ``"torch"``, whose half-precision
    ``sqrt(std**2)`` can differ from ``std`` in the last bit):

    - ``"caffe"``: ``Normalization`` with the channel means (``(x - mean) / 1``)
      and the RGB -> BGR flip done by ``Reshape``, ``Permute``, ``Cropping1D``
      and ``Concatenate`` (data movement, no arithmetic);
    - ``"tf"``: ``x / 127.5`` (``Normalization`` with mean 0 and variance
      ``127.5**2``, whose square root is exact), then ``- 1`` (``Normalization``
      with mean 1 and variance 1);
    - ``"torch"``: ``x / 255`` the same way, then ``Normalization`` with the
      ImageNet mean and variance ``std**2`` (squares whose float32 square root
      is ``std`` again);
    - ``"none"``: an ``Identity`` layer.

    None of these layers has weights.

    Example:

    >>> import numpy as np
    >>> pre = imagenet_preprocessing("caffe", (1, 1, 3))
    >>> x = np.array([[[[255.0, 128.0, 0.0]]]], "float32")  # one RGB pixel
    >>> [round(float(v), 3) for v in np.asarray(pre(x)).ravel()]  # BGR minus the means
    [-103.939, 11.221, 131.32]
    >>> sorted({type(layer).__module__.split(".")[0] for layer in pre.layers})
    ['keras']

    Args:
        mode: one of ``"caffe"``, ``"tf"``, ``"torch"``, ``"none"``.
        input_shape: the shape of one image, 3 positive ints (static: the
            channel flip reshapes).
        data_format: ``"channels_last"`` or ``"channels_first"`` (default:
            ``keras.config.image_data_format()``).
        name: the model's name.

    Returns:
        A functional ``keras.Model`` from raw images (RGB, 0-255) to the
        backbone's input convention, of the same shape.

    Raises:
        ValueError: if ``mode`` or ``data_format`` is not one of the values above.
    """
    data_format = _check_mode(mode, data_format)
    shape = tuple(input_shape)
    axis = -1 if data_format == "channels_last" else 1
    inputs = keras.Input(shape=shape, name="raw_image")
    if mode == "none":
        return keras.Model(inputs, keras.layers.Identity(name="identity")(inputs), name=name)
    if mode == "tf":
        x = _divide_by(127.5, axis, "divide_127_5")(inputs)
        x = keras.layers.Normalization(axis=axis, mean=1.0, variance=1.0, name="minus_1")(x)
        return keras.Model(inputs, x, name=name)
    if mode == "torch":
        x = _divide_by(255.0, axis, "divide_255")(inputs)
        # float32(std)**2 in float64, rounded to float32: its float32 sqrt is float32(std).
        variance = [float(keras.ops.convert_to_numpy(
            keras.ops.convert_to_tensor(s, "float32"))) ** 2 for s in _TORCH_STD]
        x = keras.layers.Normalization(axis=axis, mean=list(_TORCH_MEAN), variance=variance,
                                       name="imagenet_mean_std")(x)
        return keras.Model(inputs, x, name=name)
    x = _channel_flip(inputs, shape, data_format)
    x = keras.layers.Normalization(axis=axis, mean=list(_CAFFE_BGR_MEAN),
                                   variance=[1.0, 1.0, 1.0], name="bgr_mean")(x)
    return keras.Model(inputs, x, name=name)
