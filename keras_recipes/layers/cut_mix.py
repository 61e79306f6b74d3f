"""CutMix: paste a box of a partner image, labels by the exact pasted area."""

from __future__ import annotations

import keras

from keras_recipes.layers.base_mixing_layer import (
    BaseMixingLayer,
    check_alpha,
    check_area_range,
)

__all__ = ["CutMix"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class CutMix(BaseMixingLayer):
    """CutMix (Yun et al. 2019): paste a rectangle of a partner image; mix labels by area.

    Each image ``x_i`` is paired with ``x_p(i)`` of a random permutation of the
    batch. With ``λ ~ Beta(α, α)``, a box of ``round(H·sqrt(1-λ))`` by
    ``round(W·sqrt(1-λ))`` pixels centred on a uniform pixel, clipped to the
    image, is copied from the partner. The label weight of the partner is the
    **fraction of pixels actually pasted**, counted on the integer grid after
    clipping, so labels match pixels exactly (also for odd, non-square sizes).

    - Pixels are copied, not blended: float images come back in the compute
      dtype, integer images (uint8) and integer segmentation masks in theirs.
    - The image mask is the broadcast product of per-sample row and column
      masks: no ``(B, H, W, C)`` mask is built.
    - ``area_range=(lo, hi)`` clips the target area ``1 - λ`` to ``[lo, hi]``
      and places the box wholly inside the image (nothing clipped off), so the
      pasted fraction is the target up to rounding the sides to whole pixels.
    - ``mode``, labels, ``label_smoothing``, ``training``, batch of one,
      dtypes, ``tf.data`` and compiled use: as ``MixUp``.
    - A Keras image-preprocessing layer, as ``MixUp``; ``transform_images``
      also takes Keras's CutMix transformation (with ``"batch_masks"``).

    Deliberate differences from ``keras.layers.CutMix`` (Keras's
    ``cut_mix_test.py`` runs on this class in
    ``tests/layers/test_keras_mixing_tests.py``; its expected failure is
    pinned there):

    - No ``factor``: Keras draws the Beta concentration itself from
      ``U(0, factor)``; this layer takes ``alpha`` and draws
      ``λ ~ Beta(α, α)``, the paper's law (``factor=`` raises a ValueError
      that says so).
    - Labels are weighted by the pixels actually pasted (Keras's use the
      real-valued box area, up to 0.06 off the pixels it pastes); unbatched
      images are refused at training and bounding boxes not offered, as in ``MixUp``.

    Example:

    >>> import numpy as np
    >>> images = np.broadcast_to(np.arange(4, dtype="uint8")[:, None, None, None],
    ...                          (4, 9, 7, 3))  # image i is filled with the value i
    >>> x, y = CutMix(num_classes=4, seed=3)(images, np.array([0, 1, 2, 3]))
    >>> x, y = keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)
    >>> str(x.dtype), y.shape
    ('uint8', (4, 4))
    >>> kept = (x[..., 0] == np.arange(4)[:, None, None]).mean(axis=(1, 2))
    >>> bool(np.allclose(y[np.arange(4), np.arange(4)], kept))  # label = pixels kept
    True

    Args:
        alpha: the Beta concentration ``α > 0`` (finite). Default 1.0, the
            paper's ``Beta(1, 1)`` (uniform λ).
        mode: ``"elem"`` (λ, partner and box per sample) or ``"batch"``.
        num_classes: number of classes of sparse labels (int, or list / dict).
        label_smoothing: ``ε`` in ``[0, 1]``, applied before mixing.
        area_range: None, or ``(lo, hi)`` with ``0 <= lo <= hi <= 1``: bounds
            of the box area fraction (box kept inside the image).
        seed: int seed; the same seed gives the same outputs on a backend.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        images: a batch of images, or a dict with ``"images"`` and optional
            ``"labels"`` and ``"segmentation_masks"`` (``(B, H, W)`` or rank 4,
            any dtype; the same rectangle is pasted).
            One ``(images, labels)`` tuple is also accepted (returned as a tuple).
        labels: optional labels: a tensor, or a tuple / dict of tensors.
        training: mix when True (default); return the inputs when False.

    Returns:
        ``(images, labels)``, the images alone, or a dict with the keys passed.

    Raises:
        ValueError: for an invalid argument; at call time for unbatched
            images, sparse labels without ``num_classes``, or a plain call
            under ``jax.jit``; for ``factor`` (Keras's) or a
            ``bounding_box_format``.
        NotImplementedError: from ``transform_bounding_boxes`` (no boxes).

    References:
        - Yun et al., CutMix: Regularization Strategy to Train Strong Classifiers
          with Localizable Features, ICCV 2019. https://arxiv.org/abs/1905.04899
    """

    def __init__(self, alpha=1.0, *, mode="elem", num_classes=None, label_smoothing=0.0,
                 area_range=None, seed=None, data_format=None, **kwargs):
        alpha = check_alpha("alpha", alpha)
        area_range = check_area_range(area_range)
        super().__init__(mixup_alpha=None, cutmix_alpha=alpha, switch_prob=1.0, prob=1.0,
                         mode=mode, num_classes=num_classes, label_smoothing=label_smoothing,
                         area_range=area_range, seed=seed, data_format=data_format, **kwargs)
        self.alpha = alpha
        self.area_range = area_range

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "mode": self.mode,
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
            "area_range": None if self.area_range is None else list(self.area_range),
            "seed": self.seed,
            "data_format": self.data_format,
        }
