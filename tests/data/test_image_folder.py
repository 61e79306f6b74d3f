import numpy as np
import pytest
from PIL import Image

from keras_recipes.data import image_folder


def _make_folder(root, counts, size=(10, 6)):
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            # Pixel value encodes (class, index) so splits can be checked exactly.
            img = np.full((size[1], size[0], 3), 0, "uint8")
            img[..., 0] = 10 * k
            img[..., 1] = i
            Image.fromarray(img).save(root / name / f"img_{i:03d}.png")
    return root


def test_stratified_split_counts_and_values(tmp_path):
    root = _make_folder(tmp_path / "data", {"a": 10, "b": 20, "c": 5})
    s = image_folder(root, image_size=(6, 10), validation_split=0.2, seed=0, format="numpy")
    assert s.class_names == ["a", "b", "c"]
    ytr, yva = s.train[1], s.validation[1]
    assert np.bincount(yva, minlength=3).tolist() == [2, 4, 1]
    assert np.bincount(ytr, minlength=3).tolist() == [8, 16, 4]
    assert s.test is None and s.counts == {"train": 28, "validation": 7, "test": 0}
    # Native size kept: pixels exact; red channel is 10*label; no image in two splits.
    x = np.concatenate([s.train[0], s.validation[0]])
    y = np.concatenate([ytr, yva])
    np.testing.assert_array_equal(x[:, 0, 0, 0], 10.0 * y)
    keys = list(zip(y.tolist(), x[:, 0, 0, 1].tolist(), strict=True))
    assert len(set(keys)) == 35
    assert x.dtype == np.float32 and x.max() <= 255 and x.min() >= 0


def test_deterministic_per_seed_and_test_split(tmp_path):
    root = _make_folder(tmp_path / "data", {"a": 10, "b": 10})
    a = image_folder(root, image_size=8, validation_split=0.2, test_split=0.2, seed=5,
                     format="numpy")
    b = image_folder(root, image_size=8, validation_split=0.2, test_split=0.2, seed=5,
                     format="numpy")
    c = image_folder(root, image_size=8, validation_split=0.2, test_split=0.2, seed=6,
                     format="numpy")
    np.testing.assert_array_equal(a.test[0], b.test[0])
    assert a.counts == {"train": 12, "validation": 4, "test": 4}
    assert not np.array_equal(a.validation[0][:, 0, 0, 1], c.validation[0][:, 0, 0, 1])


def test_dataset_pipeline_matches_numpy(tmp_path):
    root = _make_folder(tmp_path / "data", {"a": 4, "b": 4}, size=(12, 12))
    ds = image_folder(root, image_size=6, batch_size=3, validation_split=0.25, seed=1,
                      shuffle=False)
    npy = image_folder(root, image_size=6, validation_split=0.25, seed=1, format="numpy")
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds.validation], strict=True)
    np.testing.assert_array_equal(np.concatenate(ys), npy.validation[1])
    # TF bilinear vs PIL bilinear on a constant image agree exactly.
    np.testing.assert_allclose(np.concatenate(xs), npy.validation[0], atol=1e-3)
    assert [len(y) for y in ys] == [2]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="`path`.*does not exist"):
        image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        image_folder(tmp_path / "empty")
    one = _make_folder(tmp_path / "one", {"only": 3})
    with pytest.raises(ValueError, match="single class"):
        image_folder(one)
    two = _make_folder(tmp_path / "two", {"a": 3, "b": 3})
    with pytest.raises(ValueError, match="`validation_split`"):
        image_folder(two, validation_split=1.5)
    with pytest.raises(ValueError, match="`image_size`"):
        image_folder(two, image_size=0)
    with pytest.raises(ValueError, match="`format`"):
        image_folder(two, format="pandas")
