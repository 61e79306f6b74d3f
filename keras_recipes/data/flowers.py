"""Real downloaders: Oxford Flowers-102 (official split) and TensorFlow's 5-class flowers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_recipes.data.download import fetch
from keras_recipes.data.image_folder import _list_classes, _stratified, build_splits
from keras_recipes.data.pipeline import DatasetSplits

__all__ = ["FLOWERS102_FILES", "FLOWERS102_NAMES", "oxford_flowers102", "tf_flowers"]

_FLOWERS102_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
# name -> md5, as published with the data set (and used by torchvision).
FLOWERS102_FILES = {
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
}
_TF_FLOWERS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
)
_TF_FLOWERS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"

# The official category names, label 1..102 in imagelabels.mat -> index 0..101.
FLOWERS102_NAMES = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe-flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke",
    "sweet william", "carnation", "garden phlox", "love in the mist", "mexican aster",
    "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip",
    "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink-yellow dahlia", "cautleya spicata", "japanese anemone",
    "black-eyed susan", "silverbush", "californian poppy", "osteospermum", "spring crocus",
    "bearded iris", "windflower", "tree poppy", "gazania", "azalea", "water lily", "rose",
    "thorn apple", "morning glory", "passion flower", "lotus", "toad lily", "anthurium",
    "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "ball moss", "foxglove",
    "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower",
    "trumpet creeper", "blackberry lily",
)


def _flowers102_files(data_dir) -> tuple[Path, Path, Path]:
    """(image folder, imagelabels.mat, setid.mat), from `data_dir` or the Keras cache."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        labels, setid = root / "imagelabels.mat", root / "setid.mat"
        images = root / "jpg"
        if not images.is_dir() and (root / "102flowers.tgz").exists():
            import tarfile

            with tarfile.open(root / "102flowers.tgz") as tar:
                tar.extractall(root, filter="data")
        missing = [p.name for p in (images, labels, setid) if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"Invalid value for argument `data_dir`. '{root}' lacks {missing}; expected "
                "jpg/ (or 102flowers.tgz), imagelabels.mat and setid.mat."
            )
        return images, labels, setid
    alt = (
        "download the three files by hand and pass oxford_flowers102(data_dir=FOLDER), or "
        "arrange any images as FOLDER/<class>/<image> and use keras_recipes.data.image_folder"
        "(FOLDER)"
    )
    common = {"subdir": "oxford_flowers102", "dataset": "Oxford Flowers-102", "alternative": alt}
    extracted = fetch(
        _FLOWERS102_URL + "102flowers.tgz", "102flowers.tgz",
        file_hash=FLOWERS102_FILES["102flowers.tgz"], extract=True, **common,
    )
    labels = fetch(_FLOWERS102_URL + "imagelabels.mat", "imagelabels.mat",
                   file_hash=FLOWERS102_FILES["imagelabels.mat"], **common)
    setid = fetch(_FLOWERS102_URL + "setid.mat", "setid.mat",
                  file_hash=FLOWERS102_FILES["setid.mat"], **common)
    images = extracted / "jpg" if (extracted / "jpg").is_dir() else extracted
    return images, labels, setid


def oxford_flowers102(
    image_size=224,
    batch_size: int = 32,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    format: str = "dataset",
    shuffle: bool = True,
    cache: bool = False,
) -> DatasetSplits:
    """Oxford Flowers-102 with its official split: 1,020 train / 1,020 validation / 6,149 test.

    Downloads ``102flowers.tgz``, ``imagelabels.mat`` and ``setid.mat`` once into
    ``$KERAS_HOME/datasets/oxford_flowers102/`` through ``keras.utils.get_file``,
    each checked against its published md5, or reads them from ``data_dir``.
    The split is the data set's own (``trnid``, ``valid``, ``tstid``), so
    numbers are comparable with the literature (docs/techniques.md §5).

    Args:
        image_size: output size, an int or ``(height, width)``.
        batch_size: batch size of the ``tf.data`` pipelines.
        data_dir: a folder already holding ``jpg/`` (or ``102flowers.tgz``),
            ``imagelabels.mat`` and ``setid.mat``; then nothing is downloaded.
        seed: seed of the training pipeline's shuffling.
        format: ``"dataset"`` or ``"numpy"``.
        shuffle: shuffle the training pipeline every epoch.
        cache: cache decoded images in memory.

    Returns:
        A ``DatasetSplits`` with 102 ``class_names``.

    Raises:
        DatasetUnavailableError: offline and not cached; the message names the
            URL, the cache path to place each file at, and the alternatives.
    """
    from scipy.io import loadmat

    images, labels_mat, setid_mat = _flowers102_files(data_dir)
    labels = np.asarray(loadmat(labels_mat)["labels"]).ravel().astype("int32") - 1
    setid = loadmat(setid_mat)
    files = [images / f"image_{i:05d}.jpg" for i in range(1, len(labels) + 1)]
    index = {
        name: np.asarray(setid[key]).ravel().astype(int) - 1
        for name, key in (("train", "trnid"), ("validation", "valid"), ("test", "tstid"))
    }
    n_classes = int(labels.max()) + 1
    names = list(FLOWERS102_NAMES[:n_classes]) if n_classes <= 102 else [
        str(k) for k in range(n_classes)]
    return build_splits(
        files, labels, index, names, image_size=image_size, batch_size=batch_size, seed=seed,
        format=format, shuffle=shuffle, cache=cache,
        source=f"Oxford Flowers-102 ({images.parent})",
    )


def tf_flowers(
    image_size=224,
    batch_size: int = 32,
    *,
    validation_split: float = 0.2,
    test_split: float = 0.1,
    seed: int = 0,
    format: str = "dataset",
    shuffle: bool = True,
    cache: bool = False,
) -> DatasetSplits:
    """TensorFlow's flower photos: 3,670 images of 5 classes, stratified seeded splits.

    Downloads ``flower_photos.tgz`` (sha256-checked) once into
    ``$KERAS_HOME/datasets/tf_flowers/`` and reads it as an image folder.

    Raises:
        DatasetUnavailableError: offline and not cached (names the URL, the cache
            path, and ``image_folder`` as the alternative).
    """
    root = fetch(
        _TF_FLOWERS_URL, "flower_photos.tgz", subdir="tf_flowers", file_hash=_TF_FLOWERS_SHA256,
        extract=True, dataset="tf_flowers (5 classes)",
        alternative="extract flower_photos.tgz anywhere and use "
        "keras_recipes.data.image_folder('<folder>/flower_photos')",
    )
    folder = root / "flower_photos" if (root / "flower_photos").is_dir() else root
    class_names, files, labels = _list_classes(folder)
    train, val, test = _stratified(labels, [validation_split, test_split], seed)
    return build_splits(
        files, labels, {"train": train, "validation": val, "test": test}, class_names,
        image_size=image_size, batch_size=batch_size, seed=seed, format=format,
        shuffle=shuffle, cache=cache, source=f"tf_flowers ({folder})",
    )
