import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_digits

from keras_recipes.data import load_digits


def test_counts_splits_and_ranges():
    s = load_digits(format="numpy", seed=0)
    n = {k: len(v[1]) for k, v in (("train", s.train), ("validation", s.validation),
                                   ("test", s.test))}
    assert sum(n.values()) == 1797
    assert n == s.counts
    assert n["test"] == round(0.15 * 1797) or abs(n["test"] - 0.15 * 1797) <= 1
    assert abs(n["validation"] - 0.15 * 1797) <= 2
    x, y = s.train
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 255.0
    # Gray tiled to RGB: the three channels are equal.
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    # Stratified: each class's share in each split within 1.5 points of the whole.
    full = np.bincount(sk_digits().target, minlength=10) / 1797
    for _, ys in (s.train, s.validation, s.test):
        share = np.bincount(ys, minlength=10) / len(ys)
        assert np.max(np.abs(share - full)) < 0.015


def test_no_overlap_and_exact_pixels_at_native_size():
    s = load_digits(image_size=8, channels=1, format="numpy", seed=3)
    raw = sk_digits()
    parts = [s.train[0], s.validation[0], s.test[0]]
    allx = np.concatenate(parts)[..., 0]
    # Every image is a real digit scaled by 255/16, used exactly once.
    want = np.sort((raw.images * 255.0 / 16.0).reshape(1797, -1), axis=0)
    got = np.sort(allx.reshape(1797, -1), axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_deterministic_per_seed():
    a = load_digits(format="numpy", seed=1, image_size=16)
    b = load_digits(format="numpy", seed=1, image_size=16)
    c = load_digits(format="numpy", seed=2, image_size=16)
    np.testing.assert_array_equal(a.train[0], b.train[0])
    np.testing.assert_array_equal(a.test[1], b.test[1])
    assert not np.array_equal(a.test[0], c.test[0])


def test_classes_relabel_and_few_labels():
    s = load_digits(classes=[5, 6, 7, 8, 9], train_per_class=7, format="numpy", seed=0)
    assert s.class_names == ["5", "6", "7", "8", "9"] and s.num_classes == 5
    assert np.bincount(s.train[1]).tolist() == [7] * 5
    raw = sk_digits()
    n_target = int(np.isin(raw.target, [5, 6, 7, 8, 9]).sum())
    assert len(s.validation[1]) + len(s.test[1]) + (n_target - len(s.validation[1])
                                                    - len(s.test[1])) == n_target
    assert set(np.unique(s.test[1])) == {0, 1, 2, 3, 4}


def test_dataset_form_batches_and_feeds_fit():
    import keras

    s = load_digits(image_size=16, classes=[0, 1], batch_size=16, seed=0)
    xb, yb = next(iter(s.train))
    assert tuple(xb.shape) == (16, 16, 16, 3)
    total = sum(int(b[1].shape[0]) for b in s.validation)
    assert total == s.counts["validation"]
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    hist = model.fit(s.train, validation_data=s.validation, epochs=3, verbose=0)
    assert hist.history["val_accuracy"][-1] > 0.9  # 0 vs 1 is easy


@pytest.mark.parametrize(
    "kwargs, name",
    [({"image_size": 4}, "image_size"), ({"channels": 2}, "channels"),
     ({"classes": [3]}, "classes"), ({"classes": [1, 12]}, "classes"),
     ({"validation_split": 0.0}, "validation_split"), ({"format": "torch"}, "format"),
     ({"train_per_class": 0}, "train_per_class")],
)
def test_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        load_digits(**kwargs)
