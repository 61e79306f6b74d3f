from pathlib import Path

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


def _bad_files(root):
    """A truncated JPEG, a zero-byte file and a text file named .png, plus macOS leftovers."""
    good = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype("uint8")
    Image.fromarray(good).save(root / "a" / "photo.jpg", quality=90)
    data = (root / "a" / "photo.jpg").read_bytes()
    (root / "a" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "b" / "empty.jpg").write_bytes(b"")
    (root / "b" / "notes.png").write_text("shopping list, not an image\n")
    (root / "a" / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble" + b"\x00" * 80)
    (root / "b" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return ["a/truncated.jpg", "b/empty.jpg", "b/notes.png"]


@pytest.mark.parametrize("decoder", ["tensorflow", "pil"])
def test_check_images_names_the_files_that_do_not_decode(tmp_path, decoder):
    from keras_recipes.data import check_images

    root = _make_folder(tmp_path / "f", {"a": 3, "b": 3})
    bad = _bad_files(root)
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    checked = check_images(paths, decoder=decoder, workers=2)
    names = sorted(str(p.relative_to(root)) for p in paths)
    assert sorted(str(p.relative_to(root)) for p in np.asarray(paths)[checked.good]) == sorted(
        set(names) - set(bad) - {"a/._photo.jpg", "b/.DS_Store"})
    failed = sorted(str(Path(p).relative_to(root)) for p, _ in checked.bad)
    assert failed == sorted(bad + ["a/._photo.jpg", "b/.DS_Store"])  # hidden files fail too
    assert all(why for _, why in checked.bad)


@pytest.mark.parametrize("format", ["numpy", "dataset"])
def test_bad_files_are_skipped_with_one_warning_and_hidden_files_ignored(tmp_path, format):
    root = _make_folder(tmp_path / "f", {"a": 6, "b": 6})
    bad = _bad_files(root)
    with pytest.warns(RuntimeWarning, match=r"skipped 3 of 16 files") as record:
        splits = image_folder(root, image_size=8, validation_split=0.25, format=format)
    assert len(record) == 1
    message = str(record[0].message)
    assert all(name in message for name in bad) and "._photo" not in message
    assert sorted(splits.skipped) == sorted(bad)
    assert splits.class_names == ["a", "b"]
    assert sum(splits.counts.values()) == 13  # 12 made + photo.jpg
    if format == "numpy":
        x, y = splits.train
        assert x.shape[1:] == (8, 8, 3) and np.all(np.isfinite(x))
    else:
        assert sum(len(b[1]) for b in splits.train) == splits.counts["train"]


def test_only_bad_files_is_one_clear_error(tmp_path):
    root = tmp_path / "f"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x.jpg").write_bytes(b"")
    (root / "b" / "y.png").write_text("text")
    with pytest.raises(ValueError, match=r"None of the 2 image files .* can be decoded: a/x\.jpg"):
        image_folder(root, image_size=8)
    with pytest.raises(ValueError, match="`decoder`"):
        from keras_recipes.data import check_images

        check_images([root / "a" / "x.jpg"], decoder="opencv")


@pytest.mark.parametrize("shuffle,cache", [(False, False), (True, False), (True, True)])
def test_empty_file_list_is_an_empty_pipeline(shuffle, cache):
    from keras_recipes.data import files_to_dataset

    ds = files_to_dataset([], [], image_size=(4, 6), batch_size=2, shuffle=shuffle,
                          cache=cache)
    assert list(ds) == []
    images, labels = ds.element_spec
    assert images.shape.as_list() == [None, 4, 6, 3] and images.dtype.name == "float32"
    assert labels.dtype.name == "int32"
