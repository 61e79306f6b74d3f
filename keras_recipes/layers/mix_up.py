"""MixUp: blend each image with a partner, labels in the same proportion."""

from __future__ import annotations

import keras

from keras_recipes.layers.base_mixing_layer import BaseMixingLayer, check_alpha

__all__ = ["MixUp"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class MixUp(BaseMixingLayer):
    """MixUp (Zhang et al. 2018): convex combinations of image pairs and their labels.

    Each image ``x_i`` of the batch is paired with the image ``x_p(i)`` of a
    random permutation ``p`` of the batch and replaced by
    ``λ_i·x_i + (1 - λ_i)·x_p(i)``, ``λ_i ~ Beta(α, α)``; its labels become
    ``λ_i·y_i + (1 - λ_i)·y_p(i)``. One draw (λ, partner) drives the images,
    every label tensor and float segmentation masks, so every output pixel
    equals ``Σ_k y_out[i, k]·x_k`` (for distinct one-hot labels; up to float
    rounding).

    - ``mode="elem"`` draws λ per sample (as the course does); ``mode="batch"``
      one λ per batch (as the paper does).
    - λ follows ``Beta(α, α)`` for every ``α > 0`` on every backend (sampled
      from uniforms in log space: ``keras.random.beta`` returns 0.5 for small
      ``α`` and does not compile with XLA on TensorFlow).
    - Class ids (``(N,)`` or ``(N, 1)``; integer, or float with ``num_classes``
      > 1, as a Keras image layer before this one in ``tf.data`` leaves them) become
      float32 one-hot with ``num_classes``; one-hot or soft labels pass through. Labels come
      out float32 (also under float16 policies) and their rows keep their sum.
    - ``label_smoothing=ε`` turns targets into ``(1 - ε)·y + ε/K`` first.
    - ``training=False`` returns the inputs unchanged. A batch of one is
      returned unchanged (its only partner is itself); odd batch sizes work.
    - Integer images (uint8) come back in their dtype, rounded and clipped;
      float images in the layer's compute dtype.
    - Works eagerly, in ``tf.data`` (``ds.batch(n).map(layer)``) under every
      backend, in ``tf.function(jit_compile=True)``, and in a jitted training
      step (``keras_recipes.models.AugmentedModel``), with fresh randomness at
      every call. Under a hand-written ``jax.jit``, call ``stateless_call``
      and thread the seed state (a plain call there raises, rather than
      repeating the same draw).
    - A Keras image-preprocessing layer (the base class of
      ``keras.layers.MixUp``): ``get_random_transformation``,
      ``transform_images``, ``transform_labels`` and
      ``transform_segmentation_masks`` apply the same draw step by step, and
      the layer composes in ``keras.layers.Pipeline`` (on dict inputs) like
      Keras's own. ``transform_images`` also takes Keras's MixUp
      transformation (``{"mix_weight", "permutation_order"}``).

    Deliberate differences from ``keras.layers.MixUp`` (Keras's
    ``mix_up_test.py`` runs on this class in
    ``tests/layers/test_keras_mixing_tests.py``; these are its expected
    failures, each pinned there):

    - Unbatched images ``(H, W, C)`` are refused at training (a lone image
      has no partner: a batch-first error instead of a silent no-op); at
      inference they pass through unchanged.
    - No bounding boxes: ``bounding_box_format`` is refused (classification
      mixing; Keras's MixUp concatenates both images' boxes, for detection).
    - Also: ``λ ~ Beta(α, α)`` for every ``α > 0`` (Keras's sampler gives 0.5
      for small ``α``), sparse labels made one-hot (Keras broadcasts them),
      float32 labels under mixed precision, tuple and dict labels.

    Example:

    >>> import numpy as np
    >>> images = np.broadcast_to(np.arange(4.0, dtype="float32")[:, None, None, None],
    ...                          (4, 8, 8, 3))  # image i is filled with the value i
    >>> labels = np.array([0, 1, 2, 3])
    >>> x, y = MixUp(alpha=0.4, num_classes=4, seed=1)(images, labels)
    >>> x, y = keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)
    >>> x.shape, y.shape
    ((4, 8, 8, 3), (4, 4))
    >>> bool(np.allclose(y.sum(axis=1), 1.0))  # rows of mixed labels sum to 1
    True
    >>> bool(np.allclose(x[:, 3, 5, 0], y @ np.arange(4.0), atol=1e-5))  # pixel = Σ y·x
    True

    The same, step by step, as Keras's image-preprocessing layers do it (one
    draw, then each part of the data):

    >>> layer = MixUp(alpha=0.4, num_classes=4, seed=1)
    >>> t = layer.get_random_transformation(images)
    >>> x2 = keras.ops.convert_to_numpy(layer.transform_images(images, t))
    >>> y2 = keras.ops.convert_to_numpy(layer.transform_labels(labels, t))
    >>> bool(np.allclose(x2[:, 3, 5, 0], y2 @ np.arange(4.0), atol=1e-5))
    True

    Args:
        alpha: the Beta concentration ``α > 0`` (finite). Small values mix
            little (λ near 0 or 1), ``α = 1`` gives uniform λ. Default 0.2.
        mode: ``"elem"`` (λ and partner per sample) or ``"batch"`` (one λ).
        num_classes: number of classes of sparse labels (an int, or a list /
            dict of ints for a tuple / dict of label tensors). None: labels
            must be one-hot or soft.
        label_smoothing: ``ε`` in ``[0, 1]``, applied before mixing.
        seed: int seed; the same seed gives the same outputs on a backend.
        data_format: ``"channels_last"`` (default from Keras config) or
            ``"channels_first"``.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    Call arguments:
        images: a batch of images ``(B, H, W, C)`` (or ``(B, C, H, W)``), or a
            dict ``{"images": ..., "labels": ..., "segmentation_masks": ...}``
            (masks must be float, e.g. one-hot per pixel).
            One ``(images, labels)`` tuple is also accepted (returned as a tuple).
        labels: optional labels: a tensor, or a tuple / dict of tensors (one per
            model output); each is mixed with the same λ and partner.
        training: mix when True (default); return the inputs when False.

    Returns:
        ``(images, labels)``, the images alone when no labels are given, or a
        dict with the keys that were passed.

    Raises:
        ValueError: for an invalid argument; at call time for unbatched
            (rank-3) images, sparse labels without ``num_classes``, integer
            segmentation masks, or a plain call under ``jax.jit``; for a
            ``bounding_box_format``.
        NotImplementedError: from ``transform_bounding_boxes`` (no boxes).

    References:
        - Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018.
          https://arxiv.org/abs/1710.09412
    """

    def __init__(self, alpha=0.2, *, mode="elem", num_classes=None, label_smoothing=0.0,
                 seed=None, data_format=None, **kwargs):
        alpha = check_alpha("alpha", alpha)
        super().__init__(mixup_alpha=alpha, cutmix_alpha=None, switch_prob=0.0, prob=1.0,
                         mode=mode, num_classes=num_classes, label_smoothing=label_smoothing,
                         area_range=None, seed=seed, data_format=data_format, **kwargs)
        self.alpha = alpha

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "mode": self.mode,
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
            "seed": self.seed,
            "data_format": self.data_format,
        }
