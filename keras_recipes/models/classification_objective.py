"""classification_objective: a classifier's loss with top-1 and top-k metrics."""

from __future__ import annotations

import keras

__all__ = ["classification_objective"]


def classification_objective(num_classes, *, one_hot=False, label_smoothing=0.0,
                             from_logits=True, top_k=5):
    """The cross-entropy loss and the ``top1`` / ``top<k>`` metrics for `num_classes` classes.

    Picks the sparse or the categorical Keras classes to match the labels ``fit`` will see:
    one-hot labels for label smoothing (Keras's sparse cross-entropy has none) and for
    :class:`~keras_recipes.models.AugmentedModel`'s mixing, integer labels otherwise. The
    top-k metric keeps its name ``top<top_k>`` but counts ``min(top_k, num_classes)``
    classes, so a 3-class run logs the same keys as a 100-class one.

    Example:

    >>> import numpy as np
    >>> loss, metrics = classification_objective(3, top_k=2)
    >>> [m.name for m in metrics], type(loss).__name__
    (['top1', 'top2'], 'SparseCategoricalCrossentropy')
    >>> logits = np.log(np.array([[0.7, 0.2, 0.1]], "float32"))
    >>> print(f"{float(loss(np.array([1]), logits)):.4f} {-np.log(0.2):.4f}")
    1.6094 1.6094

    Args:
        num_classes: the number of classes (>= 2).
        one_hot: labels come one-hot (``True``) or as integers (``False``). Label
            smoothing needs one-hot labels.
        label_smoothing: ε of label smoothing, in ``[0, 1)``.
        from_logits: the model outputs logits (``True``) or probabilities.
        top_k: the k of the second metric (>= 1).

    Returns:
        ``(loss, [top1, topk])``, ready for ``model.compile(loss=..., metrics=...)``.
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an int >= 2. "
            f"Received: num_classes={num_classes!r}"
        )
    if not 0 <= label_smoothing < 1:
        raise ValueError(
            "Invalid value for argument `label_smoothing`. Expected a float in [0, 1). "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    if label_smoothing and not one_hot:
        raise ValueError(
            "Invalid value for argument `one_hot`. Expected True with label smoothing (sparse "
            f"labels cannot be smoothed). Received: one_hot={one_hot!r}, "
            f"label_smoothing={label_smoothing!r}"
        )
    if int(top_k) != top_k or top_k < 1:
        raise ValueError(
            f"Invalid value for argument `top_k`. Expected an int >= 1. Received: top_k={top_k!r}"
        )
    k = min(int(top_k), int(num_classes))
    names = ("top1", f"top{int(top_k)}")
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                    label_smoothing=label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name=names[0]),
                   keras.metrics.TopKCategoricalAccuracy(k, name=names[1])]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name=names[0]),
                   keras.metrics.SparseTopKCategoricalAccuracy(k, name=names[1])]
    return loss, metrics
