import hashlib
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from keras_recipes.data import DatasetUnavailableError, flowers, oxford_flowers102, tf_flowers


def _fixture(folder, n_images=12, n_classes=3):
    """A miniature Flowers-102 in the official file layout."""
    jpg = folder / "jpg"
    jpg.mkdir(parents=True)
    labels = np.array([1 + (i % n_classes) for i in range(n_images)])
    for i in range(1, n_images + 1):
        Image.new("RGB", (20, 16), (int(labels[i - 1]) * 50, i, 0)).save(
            jpg / f"image_{i:05d}.jpg", quality=100)
    savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
    ids = np.arange(1, n_images + 1)
    savemat(folder / "setid.mat", {"trnid": ids[:3][None], "valid": ids[3:6][None],
                                   "tstid": ids[6:][None]})
    return labels


def test_parses_official_split_from_data_dir(tmp_path):
    labels = _fixture(tmp_path)
    s = oxford_flowers102(image_size=8, data_dir=tmp_path, format="numpy")
    assert s.counts == {"train": 3, "validation": 3, "test": 6}
    assert s.class_names == ["pink primrose", "hard-leaved pocket orchid", "canterbury bells"]
    np.testing.assert_array_equal(s.train[1], labels[:3] - 1)
    np.testing.assert_array_equal(s.test[1], labels[6:] - 1)
    # Image i carries its index in the green channel (JPEG: within a few levels).
    np.testing.assert_allclose(s.validation[0][:, 4, 4, 1], [4, 5, 6], atol=3)


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cached_files_are_used_without_network(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _fixture(src)
    home = tmp_path / "keras_home"
    cache = home / "datasets" / "oxford_flowers102"
    cache.mkdir(parents=True)
    with tarfile.open(cache / "102flowers.tgz", "w:gz") as tar:
        tar.add(src / "jpg", arcname="jpg")
    for name in ("imagelabels.mat", "setid.mat"):
        (cache / name).write_bytes((src / name).read_bytes())
    hashes = {n: _md5(cache / n) for n in ("102flowers.tgz", "imagelabels.mat", "setid.mat")}
    monkeypatch.setattr(flowers, "FLOWERS102_FILES", hashes)
    monkeypatch.setenv("KERAS_HOME", str(home))

    def offline(*args, **kwargs):
        raise AssertionError("network used although the files are cached")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    s = oxford_flowers102(image_size=8, batch_size=2)
    assert s.counts == {"train": 3, "validation": 3, "test": 6}
    assert sum(int(y.shape[0]) for _, y in s.test) == 6


@pytest.mark.parametrize("loader, url_part, cached", [
    (oxford_flowers102, "102flowers.tgz", "oxford_flowers102/102flowers.tgz"),
    (tf_flowers, "flower_photos.tgz", "tf_flowers/flower_photos.tgz"),
])
def test_offline_error_names_url_cache_path_and_alternative(tmp_path, monkeypatch, loader,
                                                           url_part, cached):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetUnavailableError) as info:
        loader(image_size=8)
    msg = str(info.value)
    assert "https://" in msg and url_part in msg
    assert str(tmp_path / "datasets" / cached) in msg
    assert "image_folder" in msg
    assert isinstance(info.value, OSError)
