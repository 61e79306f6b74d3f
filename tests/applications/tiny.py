"""A tiny backbone for transfer-learning tests: two blocks, batch norm, one nested block.

Layer names follow VGG's ``blockN_*`` so that glob patterns work as on real
backbones; ``block5`` is a nested model (batch norm at depth 2).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from keras_recipes.applications import build_transfer_model, is_batch_norm, selectable_layers

SIZE = 8


def _fans(shape) -> tuple[float, float]:
    if len(shape) < 2:
        return float(shape[0] if shape else 1), float(shape[0] if shape else 1)
    receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


@contextlib.contextmanager
def numpy_initializers(seed: int = 0):
    """``VarianceScaling`` initializers (Glorot, He, ...) draw from NumPy meanwhile.

    Same variance (a uniform law), no framework random op: on JAX every new
    weight shape otherwise compiles a threefry program (measured here: 16.8 s of
    CPU for VGG16's shapes, 11.7 s for the tiny model's, and minutes for
    EfficientNetB0). Tests that do not need Keras's own draws build under it.
    """
    rng = np.random.default_rng(seed)
    cls = keras.initializers.VarianceScaling
    original = cls.__call__

    def draw(self, shape, dtype=None):
        fan_in, fan_out = _fans(tuple(shape))
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(self.mode, (fan_in + fan_out) / 2)
        limit = np.sqrt(3.0 * self.scale / max(1.0, fan))
        values = rng.uniform(-limit, limit, tuple(shape)).astype(dtype or "float32")
        return keras.ops.convert_to_tensor(values, dtype=dtype or "float32")

    cls.__call__ = draw
    try:
        yield
    finally:
        cls.__call__ = original


def tiny_backbone(size: int = SIZE, name: str = "backbone") -> keras.Model:
    with numpy_initializers(sum(map(ord, name))):
        return _tiny_backbone(size, name)


def _tiny_backbone(size: int, name: str) -> keras.Model:
    block5 = keras.Sequential(
        [
            keras.Input((size, size, 4)),
            keras.layers.Conv2D(4, 3, padding="same", name="block5_conv"),
            keras.layers.BatchNormalization(name="block5_bn"),
            keras.layers.ReLU(name="block5_relu"),
        ],
        name="block5",
    )
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="block4_conv")(inputs)
    x = keras.layers.BatchNormalization(name="block4_bn")(x)
    x = keras.layers.ReLU(name="block4_relu")(x)
    x = block5(x)
    return keras.Model(inputs, x, name=name)


def set_bn_statistics(model: keras.Model, seed: int = 1) -> None:
    """Non-trivial moving statistics, so that any update would show."""
    rng = np.random.default_rng(seed)
    for layer in selectable_layers(model):
        if is_batch_norm(layer):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


def tiny_transfer_model(seed: int = 0, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("preprocessing", "tf")
    with numpy_initializers(seed):
        model = build_transfer_model(
            tiny_backbone(), 3, input_shape=(SIZE, SIZE, 3), weights=None, **kwargs
        )
    set_bn_statistics(model)
    return model


def data(n: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")
    y = rng.integers(0, 3, n).astype("int32")
    return x, y


def weights_of(layer) -> list[np.ndarray]:
    """Copies (never views: torch/jax may share memory with the variables)."""
    return [np.array(keras.ops.convert_to_numpy(w), copy=True) for w in layer.weights]


def copies(arrays) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in arrays]
