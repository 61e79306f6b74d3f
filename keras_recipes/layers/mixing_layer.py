"""mixing_layer: the batch-mixing layer named by a recipe's flag (or None)."""

from __future__ import annotations

from keras_recipes.layers.cut_mix import CutMix
from keras_recipes.layers.mix_up import MixUp
from keras_recipes.layers.mix_up_or_cut_mix import MixUpOrCutMix

__all__ = ["MIXING_KINDS", "mixing_layer"]

#: The names :func:`mixing_layer` accepts (``"mixup-cutmix"`` is ``"mixup_or_cutmix"``).
MIXING_KINDS = ("none", "mixup", "cutmix", "mixup_or_cutmix", "mixup-cutmix")


def mixing_layer(kind, *, mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=0.5,
                 num_classes=None, label_smoothing=0.0, seed=None):
    """The ``MixUp`` / ``CutMix`` / ``MixUpOrCutMix`` layer for `kind`, or ``None``.

    One place that turns a command-line choice into a layer for
    :class:`~keras_recipes.models.AugmentedModel`, with the usual defaults:
    MixUp's ``Beta(0.2, 0.2)`` and CutMix's ``Beta(1, 1)`` (timm's), and an even
    switch between the two for ``"mixup_or_cutmix"``.

    Example:

    >>> layer = mixing_layer("cutmix", num_classes=5, seed=0)
    >>> type(layer).__name__, layer.alpha, layer.num_classes
    ('CutMix', 1.0, 5)
    >>> mixing_layer("none") is None
    True

    Args:
        kind: one of ``MIXING_KINDS``; ``"none"`` or ``None`` gives ``None``.
        mixup_alpha: MixUp's ``α`` (``λ ~ Beta(α, α)``).
        cutmix_alpha: CutMix's ``α``.
        switch_prob: for ``"mixup_or_cutmix"``, the probability of CutMix per batch.
        num_classes: classes of sparse labels (``None``: labels come one-hot).
        label_smoothing: smoothing applied to the labels before mixing.
        seed: the layer's seed.

    Returns:
        A Keras layer called as ``layer(x, y, training=True) -> (x, y)``, or ``None``.
    """
    if kind is None or kind == "none":
        return None
    common = {"num_classes": num_classes, "label_smoothing": label_smoothing, "seed": seed}
    if kind == "mixup":
        return MixUp(mixup_alpha, **common)
    if kind == "cutmix":
        return CutMix(cutmix_alpha, **common)
    if kind in ("mixup_or_cutmix", "mixup-cutmix"):
        return MixUpOrCutMix(mixup_alpha, cutmix_alpha, switch_prob=switch_prob, **common)
    raise ValueError(
        f"Invalid value for argument `kind`. Expected one of {', '.join(MIXING_KINDS)}. "
        f"Received: kind={kind!r}"
    )
