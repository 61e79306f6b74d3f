"""basic_augmentation: random horizontal flip, contrast and brightness, one Keras pipeline."""

from __future__ import annotations

import keras

__all__ = ["basic_augmentation"]


def basic_augmentation(*, flip="horizontal", contrast=0.2, brightness=0.2,
                       value_range=(0, 255), seed=None):
    """A ``keras.layers.Pipeline`` of ``RandomFlip``, ``RandomContrast``, ``RandomBrightness``.

    The course's "basic" image augmentation, made of Keras layers only, so that it runs in
    a ``tf.data`` map under every backend (Keras switches its preprocessing layers to
    TensorFlow there), inside a model, or on NumPy batches, and saves with Keras alone. The
    layers get the seeds ``seed``, ``seed + 1`` and ``seed + 2``. Pass it as the ``augment``
    of :func:`keras_recipes.data.epoch_batches`.

    Example:

    >>> import numpy as np
    >>> aug = basic_augmentation(contrast=0.0, brightness=0.0, seed=0)
    >>> x = np.arange(2 * 2 * 3 * 1, dtype="float32").reshape(2, 2, 3, 1)
    >>> out = np.asarray(aug(x))
    >>> all(np.array_equal(o, a) or np.array_equal(o, a[:, ::-1]) for o, a in zip(out, x))
    True

    Args:
        flip: ``RandomFlip``'s mode (``"horizontal"``, ``"vertical"``,
            ``"horizontal_and_vertical"``), or ``None`` for no flip.
        contrast: ``RandomContrast``'s factor (0: no contrast change).
        brightness: ``RandomBrightness``'s factor (0: no brightness change).
        value_range: the images' range, ``(0, 255)`` or ``(0, 1)``.
        seed: the first layer's seed, or ``None``.

    Returns:
        A ``keras.layers.Pipeline``; call it on a batch of images (``training`` defaults
        to ``True``).
    """
    if flip not in (None, "horizontal", "vertical", "horizontal_and_vertical"):
        raise ValueError(
            "Invalid value for argument `flip`. Expected None, 'horizontal', 'vertical' or "
            f"'horizontal_and_vertical'. Received: flip={flip!r}"
        )
    for name, value in (("contrast", contrast), ("brightness", brightness)):
        if not 0 <= value <= 1:
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected a float in [0, 1]. "
                f"Received: {name}={value!r}"
            )
    seeds = [None] * 3 if seed is None else [seed, seed + 1, seed + 2]
    parts = []
    if flip is not None:
        parts.append(keras.layers.RandomFlip(flip, seed=seeds[0]))
    if contrast:
        parts.append(keras.layers.RandomContrast(contrast, value_range=value_range,
                                                 seed=seeds[1]))
    if brightness:
        parts.append(keras.layers.RandomBrightness(brightness, value_range=value_range,
                                                   seed=seeds[2]))
    return keras.layers.Pipeline(parts, name="basic_augmentation")
