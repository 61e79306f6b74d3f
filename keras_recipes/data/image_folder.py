"""A folder of class sub-folders -> stratified, seeded tf.data splits."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from keras_recipes.data.check_images import check_images
from keras_recipes.data.pipeline import DatasetSplits

__all__ = ["IMAGE_EXTENSIONS", "build_splits", "files_to_dataset", "files_to_numpy", "image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int | np.integer):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(s) for s in image_size)
        except (TypeError, ValueError):
            h = w = -1
    if h < 1 or w < 1:
        raise ValueError(
            "Invalid value for argument `image_size`. Expected an int >= 1 or a pair "
            f"(height, width). Received: image_size={image_size!r}"
        )
    return h, w


def files_to_dataset(
    paths,
    labels,
    *,
    image_size=224,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = False,
):
    """Image files and integer labels -> a batched ``tf.data`` pipeline of ``(image, label)``.

    Images are decoded to RGB, resized bilinearly to ``image_size`` and kept in
    0-255 as float32 (the backbone's own preprocessing comes later, inside the
    model). Shuffling is seeded and redone every epoch. No paths give an empty pipeline
    (no batch) of the same structure.

    Example:

    >>> ds = files_to_dataset([], [], image_size=8)
    >>> len(list(ds)), ds.element_spec[0].shape.as_list()
    (0, [None, 8, 8, 3])
    """
    import tensorflow as tf

    h, w = _size(image_size)
    if int(batch_size) < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`. Expected an int >= 1. "
            f"Received: batch_size={batch_size}"
        )

    def load(path, label):
        raw = tf.io.read_file(path)
        img = tf.io.decode_image(raw, channels=3, expand_animations=False)
        img = tf.image.resize(tf.cast(img, tf.float32), (h, w), method="bilinear")
        img = tf.clip_by_value(img, 0.0, 255.0)
        img.set_shape((h, w, 3))
        return img, tf.cast(label, tf.int32)

    # dtype=str: an empty list of paths is still a (0,) string tensor, not float64.
    ds = tf.data.Dataset.from_tensor_slices(
        (np.asarray([str(p) for p in paths], dtype=str), np.asarray(labels, "int32"))
    )
    autotune = tf.data.AUTOTUNE
    if cache:
        ds = ds.map(load, num_parallel_calls=autotune).cache()
        if shuffle:
            ds = ds.shuffle(min(max(len(paths), 1), 2048), seed=seed,
                            reshuffle_each_iteration=True)
    else:
        if shuffle:
            ds = ds.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(load, num_parallel_calls=autotune)
    return ds.batch(int(batch_size)).prefetch(autotune)


def files_to_numpy(paths, labels, *, image_size=224) -> tuple[np.ndarray, np.ndarray]:
    """Image files -> ``(x, y)`` arrays: float32 RGB images in 0-255 and int32 labels."""
    from PIL import Image

    h, w = _size(image_size)
    x = np.empty((len(paths), h, w, 3), "float32")
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            x[i] = np.asarray(img.convert("RGB").resize((w, h), Image.BILINEAR), "float32")
    return x, np.asarray(labels, "int32")


def _stratified(labels: np.ndarray, fractions: list[float], seed: int) -> list[np.ndarray]:
    """Splits indices per class: each class gives `fractions` of its items to each later part."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        n = len(idx)
        start = 0
        for j, f in enumerate(fractions):
            m = int(round(f * n))
            parts[j + 1].extend(idx[start : start + m])
            start += m
        parts[0].extend(idx[start:])
    return [rng.permutation(np.asarray(p, dtype=int)) for p in parts]


def _list_classes(path: Path) -> tuple[list[str], list[Path], np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(
            f"Invalid value for argument `path`. The folder does not exist. Received: path='{path}'"
        )
    if not path.is_dir():
        raise ValueError(
            f"Invalid value for argument `path`. Expected a folder of class sub-folders. "
            f"Received: path='{path}' (a file)"
        )
    class_names, files, labels = [], [], []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(
            f for f in sub.rglob("*")
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
            # hidden files and folders: .DS_Store, macOS AppleDouble "._photo.jpg", .git
            and not any(part.startswith(".") for part in f.relative_to(sub).parts)
        )
        if not images:
            continue
        labels.extend([len(class_names)] * len(images))
        class_names.append(sub.name)
        files.extend(images)
    if not files:
        raise ValueError(
            f"Invalid value for argument `path`. No images ({', '.join(IMAGE_EXTENSIONS)}) "
            f"found in class sub-folders of '{path}'. Expected the layout "
            "path/<class name>/<image files>."
        )
    if len(class_names) < 2:
        raise ValueError(
            f"Invalid value for argument `path`. Found a single class ({class_names[0]!r}) in "
            f"'{path}'; classification needs at least 2 class sub-folders."
        )
    return class_names, files, np.asarray(labels, "int32")


def image_folder(
    path: str | os.PathLike,
    image_size=224,
    batch_size: int = 32,
    validation_split: float = 0.2,
    seed: int = 0,
    *,
    test_split: float = 0.0,
    format: str = "dataset",
    shuffle: bool = True,
    cache: bool = False,
    check: bool = True,
) -> DatasetSplits:
    """Loads ``path/<class>/<images>`` as stratified, seeded train/validation(/test) splits.

    This is the layout in which people download Flowers-17/102 or keep their own
    data. Class names are the sorted sub-folder names; label k is the k-th name.
    Each class contributes ``validation_split`` (and ``test_split``) of its
    images to those splits, chosen by ``seed`` alone, so a run is reproducible
    and every class is present in every split. Hidden files (``.DS_Store``, the macOS
    ``._photo.jpg`` AppleDouble files) are ignored; every image is decoded once before the
    splits are made (:func:`check_images`, in parallel), and the files that cannot be
    decoded (truncated, empty, not an image) are left out with one warning that names them,
    and listed in the result's ``skipped``.

    Example:

    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cat", "dog"):
    ...     (root / name).mkdir()
    ...     for i in range(5):
    ...         Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / name / f"{i}.png")
    >>> splits = image_folder(root, image_size=16, validation_split=0.4, format="numpy")
    >>> splits.class_names, splits.counts
    (['cat', 'dog'], {'train': 6, 'validation': 4, 'test': 0})

    Args:
        path: the folder holding one sub-folder per class.
        image_size: output size, an int or ``(height, width)``.
        batch_size: batch size of the pipelines.
        validation_split: fraction of each class held out for validation (0 <= f < 1).
        seed: seed of the split and of the shuffling.
        test_split: fraction of each class held out for testing (default none).
        format: ``"dataset"`` (``tf.data`` pipelines, decoding on the fly) or
            ``"numpy"`` (all images decoded into arrays).
        shuffle: shuffle the training pipeline every epoch.
        cache: cache decoded images in memory after the first epoch.
        check: decode every image first and skip those that fail (``False``: trust the
            files; a bad one then stops training when the pipeline reaches it).

    Returns:
        A ``DatasetSplits``; ``test`` is ``None`` when ``test_split`` is 0.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it holds no images (or none that decodes), a single class, or an
            argument is out of range.
    """
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected a float in [0, 1). "
                f"Received: {name}={value!r}"
            )
    if validation_split + test_split >= 1.0:
        raise ValueError(
            "Invalid values for arguments `validation_split` and `test_split`. Expected a "
            f"sum < 1. Received: validation_split={validation_split}, test_split={test_split}"
        )
    if format not in ("dataset", "numpy"):
        raise ValueError(
            "Invalid value for argument `format`. Expected 'dataset' or 'numpy'. "
            f"Received: format={format!r}"
        )
    _size(image_size)
    path = Path(path).expanduser()
    class_names, files, labels = _list_classes(path)
    skipped = []
    if check:
        class_names, files, labels, skipped = _skip_undecodable(
            path, class_names, files, labels, "pil" if format == "numpy" else "tensorflow")
    train, val, test = _stratified(labels, [validation_split, test_split], seed)
    splits = build_splits(
        files, labels, {"train": train, "validation": val, "test": test}, class_names,
        image_size=image_size, batch_size=batch_size, seed=seed, format=format,
        shuffle=shuffle, cache=cache, source=str(path),
    )
    splits.skipped = skipped
    return splits


def _skip_undecodable(path: Path, class_names, files, labels, decoder):
    """Leaves out the files that do not decode (one warning); drops classes left empty."""
    checked = check_images(files, decoder=decoder)
    if not checked.bad:
        return class_names, files, labels, []
    skipped = [os.path.relpath(p, path) for p, _ in checked.bad]
    named = "; ".join(f"{p} ({why})" for p, (_, why) in zip(skipped, checked.bad[:5],
                                                              strict=False))
    if len(skipped) > 5:
        named += f"; and {len(skipped) - 5} more"
    if not checked.good:
        raise ValueError(
            f"Invalid value for argument `path`. None of the {len(files)} image files in "
            f"'{path}' can be decoded: {named}. Expected JPEG, PNG, BMP or GIF images in "
            "path/<class name>/."
        )
    warnings.warn(
        f"image_folder: skipped {len(checked.bad)} of {len(files)} files in '{path}' that "
        f"cannot be decoded as images: {named}",
        RuntimeWarning,
        stacklevel=3,
    )
    files = [files[i] for i in checked.good]
    labels = np.asarray(labels)[checked.good]
    kept = sorted(set(labels.tolist()))
    if len(kept) < 2:
        raise ValueError(
            f"Invalid value for argument `path`. Once the {len(checked.bad)} files that "
            f"cannot be decoded are left out, '{path}' holds a single class "
            f"({class_names[kept[0]]!r}); classification needs at least 2."
        )
    remap = {old: new for new, old in enumerate(kept)}
    labels = np.asarray([remap[v] for v in labels.tolist()], "int32")
    return [class_names[k] for k in kept], files, labels, skipped


def build_splits(
    files, labels, index, class_names, *, image_size, batch_size, seed, format, shuffle, cache,
    source,
) -> DatasetSplits:
    """Index arrays per split -> a ``DatasetSplits`` of pipelines or arrays (shared by loaders)."""
    files = list(files)
    labels = np.asarray(labels, "int32")
    parts = {}
    for name, ids in index.items():
        if ids is None or (len(ids) == 0 and name == "test"):
            parts[name] = None
            continue
        p = [files[i] for i in ids]
        y = labels[ids]
        if format == "numpy":
            parts[name] = files_to_numpy(p, y, image_size=image_size)
        else:
            parts[name] = files_to_dataset(
                p, y, image_size=image_size, batch_size=batch_size,
                shuffle=shuffle and name == "train", seed=seed, cache=cache,
            )
    return DatasetSplits(
        train=parts["train"], validation=parts["validation"], test=parts.get("test"),
        class_names=list(class_names), source=source,
        counts={k: 0 if v is None else len(v) for k, v in index.items()},
    )
