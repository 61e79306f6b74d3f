"""MixUpOrCutMix: per sample (or batch), MixUp or CutMix, as timm's Mixup does."""

from __future__ import annotations

import keras

from keras_recipes.layers.base_mixing_layer import (
    BaseMixingLayer,
    check_alpha,
    check_probability,
)

__all__ = ["MixUpOrCutMix"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class MixUpOrCutMix(BaseMixingLayer):
    """Mixes each sample with MixUp or CutMix, chosen at random.

    With probability ``prob`` a sample (``mode="elem"``) or the whole batch
    (``mode="batch"``) is mixed at all; a mixed one uses CutMix with
    probability ``switch_prob`` and MixUp otherwise. MixUp draws
    ``λ ~ Beta(mixup_alpha, mixup_alpha)`` and blends; CutMix draws
    ``λ ~ Beta(cutmix_alpha, cutmix_alpha)`` and pastes an integer box, with the
    label weight equal to the fraction of pixels pasted. Both kinds run in one
    vectorized pass over the batch; an unmixed sample is returned bit-exact.
    Everything else (labels, dtypes, ``training``, ``tf.data``, compiled use,
    the Keras image-preprocessing API and ``keras.layers.Pipeline``, the
    deliberate differences from Keras's layers: unbatched images refused at
    training, no bounding boxes, no ``factor``) is as in ``MixUp`` and
    ``CutMix``.

    Example:

    >>> import numpy as np
    >>> images = np.broadcast_to(np.arange(6.0, dtype="float32")[:, None, None, None],
    ...                          (6, 8, 8, 3))
    >>> layer = MixUpOrCutMix(num_classes=6, switch_prob=0.5, prob=0.8, seed=0)
    >>> x, y = layer(images, np.arange(6))
    >>> x, y = keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)
    >>> bool(np.allclose(x.mean(axis=(1, 2, 3)), y @ np.arange(6.0), atol=1e-4))
    True

    Args:
        mixup_alpha: MixUp's Beta concentration, a finite float > 0.
        cutmix_alpha: CutMix's Beta concentration, a finite float > 0.
        switch_prob: probability in ``[0, 1]`` of CutMix for a mixed sample.
        prob: probability in ``[0, 1]`` that a sample (or batch) is mixed.
        mode: ``"elem"`` (per sample) or ``"batch"`` (one decision, λ and box).
        num_classes: number of classes of sparse labels (int, or list / dict).
        label_smoothing: ``ε`` in ``[0, 1]``, applied to every sample's targets.
        seed: int seed; the same seed gives the same outputs on a backend.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        images: a batch of images, or a dict with ``"images"`` and optional
            ``"labels"`` and ``"segmentation_masks"`` (float masks; integer
            masks only with ``switch_prob=1``).
            One ``(images, labels)`` tuple is also accepted (returned as a tuple).
        labels: optional labels: a tensor, or a tuple / dict of tensors.
        training: mix when True (default); return the inputs when False.

    Returns:
        ``(images, labels)``, the images alone, or a dict with the keys passed.

    Raises:
        ValueError: for an invalid argument, or at call time as ``MixUp``.

    References:
        - Zhang et al., mixup, ICLR 2018. https://arxiv.org/abs/1710.09412
        - Yun et al., CutMix, ICCV 2019. https://arxiv.org/abs/1905.04899
        - Wightman, timm ``Mixup`` (per-batch/element switching).
          https://github.com/huggingface/pytorch-image-models
    """

    def __init__(self, mixup_alpha=0.2, cutmix_alpha=1.0, *, switch_prob=0.5, prob=1.0,
                 mode="elem", num_classes=None, label_smoothing=0.0, seed=None,
                 data_format=None, **kwargs):
        mixup_alpha = check_alpha("mixup_alpha", mixup_alpha)
        cutmix_alpha = check_alpha("cutmix_alpha", cutmix_alpha)
        switch_prob = check_probability("switch_prob", switch_prob)
        prob = check_probability("prob", prob)
        super().__init__(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                         switch_prob=switch_prob, prob=prob, mode=mode,
                         num_classes=num_classes, label_smoothing=label_smoothing,
                         area_range=None, seed=seed, data_format=data_format, **kwargs)
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.switch_prob = switch_prob
        self.prob = prob

    def get_config(self):
        return {
            **super().get_config(),
            "mixup_alpha": self.mixup_alpha,
            "cutmix_alpha": self.cutmix_alpha,
            "switch_prob": self.switch_prob,
            "prob": self.prob,
            "mode": self.mode,
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
            "data_format": self.data_format,
        }
