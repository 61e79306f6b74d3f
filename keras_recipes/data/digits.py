"""The 1,797 handwritten digits bundled in scikit-learn, as RGB images for ImageNet backbones."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_recipes.data.pipeline import DatasetSplits, to_dataset

__all__ = ["load_digits"]


def _resize(images: np.ndarray, image_size: int) -> np.ndarray:
    from PIL import Image

    if images.shape[1] == image_size:
        return images.astype("float32")
    out = np.empty((len(images), image_size, image_size), "float32")
    for i, img in enumerate(images):
        pil = Image.fromarray(img.astype("float32"), mode="F")
        out[i] = np.asarray(pil.resize((image_size, image_size), Image.BILINEAR))
    return out


def _check_fraction(name: str, value: float) -> None:
    if not (0.0 < float(value) < 1.0):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a float in (0, 1). "
            f"Received: {name}={value!r}"
        )


def load_digits(
    image_size: int = 32,
    channels: int = 3,
    classes: Sequence[int] | None = None,
    *,
    validation_split: float = 0.15,
    test_split: float = 0.15,
    train_per_class: int | None = None,
    seed: int = 0,
    format: str = "dataset",
    batch_size: int = 32,
    shuffle: bool = True,
    cache: bool = True,
) -> DatasetSplits:
    """Loads scikit-learn's bundled digits as images in 0-255, split per class.

    The 8×8 gray digits (values 0-16) are scaled to 0-255, resized bilinearly to
    ``image_size``×``image_size`` and tiled to ``channels`` channels, so that
    ImageNet backbones (minimum input 32×32) can take them. Nothing is
    downloaded: the data ships inside scikit-learn's wheel.

    Splits are stratified (every class keeps its proportion in each split) and
    depend only on ``seed``. With ``classes``, labels are renumbered 0..K-1 in
    the order given and ``class_names`` holds the original digits, so digits
    0-4 and 5-9 make a source and a target task for transfer learning.

    Example:

    >>> splits = load_digits(image_size=32, classes=[5, 6, 7, 8, 9], format="numpy")
    >>> x, y = splits.train
    >>> x.shape[1:], x.dtype.name, float(x.min()), float(x.max()), splits.class_names
    ((32, 32, 3), 'float32', 0.0, 255.0, ['5', '6', '7', '8', '9'])

    Args:
        image_size: side of the square output images (>= 8).
        channels: 1 (gray) or 3 (RGB, the gray value in each channel).
        classes: the digits to keep (default all ten).
        validation_split: fraction of each class held out for validation.
        test_split: fraction of each class held out for testing.
        train_per_class: keep only this many training images per class
            (few-label transfer); validation and test are not reduced.
        seed: the seed of the split and of the shuffling.
        format: ``"dataset"`` (batched, prefetched ``tf.data`` pipelines;
            the training split shuffled every epoch) or ``"numpy"`` (``(x, y)``
            arrays, float32 images and int32 labels).
        batch_size: batch size of the ``tf.data`` pipelines.
        shuffle: shuffle the training pipeline each epoch.
        cache: cache the pipelines in memory.

    Returns:
        A ``DatasetSplits`` with ``train``, ``validation``, ``test``,
        ``class_names`` and per-split ``counts``.

    Raises:
        ValueError: for an argument out of range or an unknown class.
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    if int(image_size) < 8:
        raise ValueError(
            "Invalid value for argument `image_size`. Expected an int >= 8. "
            f"Received: image_size={image_size!r}"
        )
    if channels not in (1, 3):
        raise ValueError(
            "Invalid value for argument `channels`. Expected 1 or 3. "
            f"Received: channels={channels!r}"
        )
    if format not in ("dataset", "numpy"):
        raise ValueError(
            "Invalid value for argument `format`. Expected 'dataset' or 'numpy'. "
            f"Received: format={format!r}"
        )
    _check_fraction("validation_split", validation_split)
    _check_fraction("test_split", test_split)
    if validation_split + test_split >= 1.0:
        raise ValueError(
            "Invalid values for arguments `validation_split` and `test_split`. Expected a sum "
            f"< 1. Received: validation_split={validation_split}, test_split={test_split}"
        )
    if classes is None:
        classes = list(range(10))
    classes = [int(c) for c in classes]
    bad = [c for c in classes if c not in range(10)]
    if bad or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(
            "Invalid value for argument `classes`. Expected at least two distinct digits "
            f"in 0-9. Received: classes={classes!r}"
        )
    if train_per_class is not None and int(train_per_class) < 1:
        raise ValueError(
            "Invalid value for argument `train_per_class`. Expected an int >= 1 or None. "
            f"Received: train_per_class={train_per_class!r}"
        )

    raw = _sk_load_digits()
    keep = np.isin(raw.target, classes)
    images = raw.images[keep] * (255.0 / 16.0)
    remap = {c: i for i, c in enumerate(classes)}
    labels = np.array([remap[t] for t in raw.target[keep]], "int32")

    idx = np.arange(len(labels))
    idx_rest, idx_test = train_test_split(
        idx, test_size=test_split, stratify=labels, random_state=seed
    )
    idx_train, idx_val = train_test_split(
        idx_rest,
        test_size=validation_split / (1.0 - test_split),
        stratify=labels[idx_rest],
        random_state=seed,
    )
    if train_per_class is not None:
        idx_train = np.concatenate(
            [idx_train[labels[idx_train] == k][: int(train_per_class)] for k in range(len(classes))]
        )
        idx_train = np.random.default_rng(seed).permutation(idx_train)

    x = _resize(images, int(image_size))
    x = np.clip(x, 0.0, 255.0)[..., None]
    if channels == 3:
        x = np.repeat(x, 3, axis=-1)

    parts = {}
    for name, ids in (("train", idx_train), ("validation", idx_val), ("test", idx_test)):
        xs, ys = x[ids], labels[ids]
        if format == "numpy":
            parts[name] = (xs, ys)
        else:
            parts[name] = to_dataset(
                xs,
                ys,
                batch_size=batch_size,
                shuffle=shuffle and name == "train",
                seed=seed,
                cache=cache,
            )
    return DatasetSplits(
        train=parts["train"],
        validation=parts["validation"],
        test=parts["test"],
        class_names=[str(c) for c in classes],
        source="scikit-learn bundled digits (1,797 8x8 images)",
        counts={"train": len(idx_train), "validation": len(idx_val), "test": len(idx_test)},
    )
