"""ImageNetPreprocessing: a backbone's own input preprocessing, as a layer in the model."""

from __future__ import annotations

import keras

__all__ = ["ImageNetPreprocessing", "PREPROCESSING_MODES"]

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
        self.mode = mode
        self.data_format = data_format
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
