"""A tiny backbone for transfer-learning tests: two blocks, batch norm, one nested block.

Layer names follow VGG's ``blockN_*`` so that glob patterns work as on real
backbones; ``block5`` is a nested model (batch norm at depth 2).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_recipes.applications import build_transfer_model, is_batch_norm, selectable_layers

SIZE = 8


def tiny_backbone(size: int = SIZE, name: str = "backbone") -> keras.Model:
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
