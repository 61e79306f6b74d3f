"""keras_recipes.data.epoch_batches: seeded, resumable batches (NumPy PyDataset or tf.data).

References: the batch order is checked against NumPy permutations written out here (for
the NumPy and the tf.data engine alike), and a hand-written NumPy SGD over the same batches.
"""

import math

import keras
import numpy as np
import pytest

from keras_recipes.data import epoch_batches


def _labels(ds):
    return [np.asarray(ds[i][1]).tolist() for i in range(len(ds))]


@pytest.mark.parametrize("n,bs,seed,first,epochs", [(7, 3, 0, 0, 3), (10, 5, 4, 2, 4),
                                                     (5, 8, 1, 0, 1), (6, 1, 2, 1, 2)])
def test_order_is_the_seeded_permutation_of_each_epoch(keras_backend, n, bs, seed, first, epochs):
    x = np.arange(n, dtype="float32")[:, None] * 10
    y = np.arange(n)
    ds = epoch_batches(x, y, bs, seed=seed, initial_epoch=first, epochs=epochs)
    want = []
    for e in range(first, epochs):
        perm = np.random.default_rng([seed, e]).permutation(n)
        want += [perm[j:j + bs].tolist() for j in range(0, n, bs)]
    assert len(ds) == math.ceil(n / bs) * (epochs - first)
    assert _labels(ds) == want
    for i in range(len(ds)):  # inputs travel with their labels
        np.testing.assert_array_equal(ds[i][0][:, 0], ds[i][1] * 10.0)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_resumed_dataset_is_the_tail_of_the_full_one(keras_backend):
    x, y = np.random.default_rng(0).normal(size=(11, 2)), np.arange(11)
    full = _labels(epoch_batches(x, y, 4, seed=3, epochs=5))
    steps = 3
    for first in range(5):
        assert _labels(epoch_batches(x, y, 4, seed=3, initial_epoch=first, epochs=5)) == \
            full[first * steps:]


def test_unseeded_is_one_pass_in_order(keras_backend):
    x, y = np.zeros((5, 1)), np.arange(5)
    assert _labels(epoch_batches(x, y, 2, seed=None, epochs=9)) == [[0, 1], [2, 3], [4]]


def test_prefetch_changes_nothing_and_transform_runs_in_batch_order(keras_backend):
    x, y = np.arange(9, dtype="float32")[:, None], np.arange(9)
    seen = []

    def transform(xb, yb):
        seen.append(yb.tolist())
        return xb * 2, yb + 100

    a = epoch_batches(x, y, 2, seed=5, epochs=2, transform=transform)
    got = [a[i] for i in range(len(a))]
    b = epoch_batches(x, y, 2, seed=5, epochs=2, prefetch=False)
    assert seen == _labels(b)  # called once per batch, in order, ahead by one at most
    for (xa, ya), i in zip(got, range(len(b)), strict=True):
        np.testing.assert_array_equal(xa, b[i][0] * 2)
        np.testing.assert_array_equal(ya, b[i][1] + 100)
    # Random access out of order still gives the right batch.
    np.testing.assert_array_equal(a[3][1], b[3][1] + 100)
    np.testing.assert_array_equal(a[0][1], b[0][1] + 100)


def test_fit_over_epochs_matches_numpy_sgd_on_the_same_batches(keras_backend):
    """Keras keeps the dataset's iterator between epochs (steps_per_epoch given): the model
    sees epoch e's permutation in epoch e. Reference: SGD on MSE written in NumPy."""
    rng = np.random.default_rng(1)
    n, bs, epochs, lr, seed = 10, 4, 3, 0.05, 7
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype("float32")[:, None]
    w0 = np.array([[0.2], [0.1], [-0.3]], "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].set_weights([w0])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    steps = math.ceil(n / bs)
    model.fit(epoch_batches(x, y, bs, seed=seed, epochs=epochs), epochs=epochs,
              steps_per_epoch=steps, shuffle=False, verbose=0)
    w = w0.astype("float64")
    for e in range(epochs):
        perm = np.random.default_rng([seed, e]).permutation(n)
        for j in range(0, n, bs):
            xb, yb = x[perm[j:j + bs]].astype("float64"), y[perm[j:j + bs]]
            w -= lr * 2.0 / len(xb) * xb.T @ (xb @ w - yb)
    np.testing.assert_allclose(model.layers[0].get_weights()[0], w, rtol=1e-5, atol=1e-6)


def _reference_batches(x, y, bs, seed, first, epochs):
    """The documented order written out with NumPy: epoch e permuted by rng([seed, e])."""
    out = []
    for e in range(first, epochs):
        perm = np.random.default_rng([seed, e]).permutation(len(x))
        out += [(x[perm[j:j + bs]], y[perm[j:j + bs]]) for j in range(0, len(x), bs)]
    return out


@pytest.mark.parametrize("onehot", [None, 4])
def test_tf_data_engine_gives_the_numpy_engines_batches(keras_backend, onehot):
    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (9, 4, 4, 3)).astype("float32")
    y = rng.integers(0, 4, 9).astype("int32")
    eye = np.eye(4, dtype="float32")
    for seed, first, epochs in ((3, 1, 3), (None, 0, 1)):
        got = {}
        for engine in ("tf.data", "numpy"):
            ds = epoch_batches(x, y, 4, seed=seed, initial_epoch=first, epochs=epochs,
                               one_hot=onehot, engine=engine, **({"prefetch": False}
                                                                 if engine == "numpy" else {}))
            got[engine] = [(np.asarray(a), np.asarray(b)) for a, b in ds]
        if seed is None:
            want = [(x[j:j + 4], y[j:j + 4]) for j in range(0, 9, 4)]
        else:
            want = _reference_batches(x, y, 4, seed, first, epochs)
        assert len(got["tf.data"]) == len(got["numpy"]) == len(want) == (3 if seed is None else 6)
        for engine, batches in got.items():
            for (xa, ya), (xw, yw) in zip(batches, want, strict=True):
                np.testing.assert_array_equal(xa, xw)
                np.testing.assert_array_equal(ya, eye[yw] if onehot else yw)
                assert ya.dtype == (np.float32 if onehot else np.int32), engine


@pytest.mark.parametrize("engine", ["numpy", "tf.data"])
def test_augment_changes_images_only_and_only_when_seeded(keras_backend, engine):
    if engine == "tf.data":
        pytest.importorskip("tensorflow")
    x = np.tile(np.linspace(0, 255, 8, dtype="float32")[None, None, :, None], (6, 8, 1, 3))
    y = np.arange(6).astype("int32")

    def flip(images):  # a known augmentation: mirror left-right
        return images[:, :, ::-1, :]

    ds = epoch_batches(x, y, 3, seed=0, epochs=1, augment=flip, engine=engine)
    batches = [(np.asarray(a), np.asarray(b)) for a, b in ds]
    perm = np.random.default_rng([0, 0]).permutation(6)
    assert len(batches) == 2
    for i, (xb, yb) in enumerate(batches):
        assert xb.dtype == np.float32 and xb.shape == (3, 8, 8, 3)
        np.testing.assert_array_equal(yb, y[perm[3 * i:3 * i + 3]])
        np.testing.assert_array_equal(xb, x[perm[3 * i:3 * i + 3]][:, :, ::-1, :])
    # Without a seed (validation, test data) the images are not augmented.
    plain = epoch_batches(x, y, 3, seed=None, augment=flip, engine=engine)
    np.testing.assert_array_equal(np.concatenate([np.asarray(a) for a, _ in plain]), x)


def test_transform_with_tf_data_engine_and_bad_engine_are_refused(keras_backend):
    x, y = np.zeros((4, 1), "float32"), np.arange(4)
    with pytest.raises(ValueError, match="argument `engine`.*Received: engine='torch'"):
        epoch_batches(x, y, 2, engine="torch")
    pytest.importorskip("tensorflow")
    with pytest.raises(ValueError, match="argument `transform`"):
        epoch_batches(x, y, 2, transform=lambda a, b: (a, b), engine="tf.data")


@pytest.mark.parametrize("kwargs,arg", [({"batch_size": 0}, "batch_size"),
                                        ({"y": np.arange(3)}, "y"),
                                        ({"initial_epoch": 5, "epochs": 2}, "initial_epoch")])
def test_invalid_arguments_name_the_argument(keras_backend, kwargs, arg):
    args = {"x": np.zeros((4, 1)), "y": np.arange(4), "batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{arg}`.*Received: "):
        epoch_batches(args.pop("x"), args.pop("y"), args.pop("batch_size"), **args)


@pytest.mark.parametrize("engine", ["numpy", "tf.data"])
def test_fit_inputs_of_in_memory_splits(keras_backend, engine):
    from keras_recipes.data import DatasetSplits, fit_inputs

    if engine == "tf.data":
        pytest.importorskip("tensorflow")
    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10) % 3
    splits = DatasetSplits((x, y), (x[:5], y[:5]), (x[5:], y[5:]), ["a", "b", "c"])
    feeds = fit_inputs(splits, 4, seed=2, initial_epoch=1, epochs=3, one_hot=3,
                       augment=lambda a: a + 100.0, engine=engine)
    assert feeds.steps_per_epoch == 3
    batches = [(np.asarray(a), np.asarray(b)) for a, b in feeds.train]
    want = [p[j:j + 4] for e in (1, 2)
            for p in [np.random.default_rng([2, e]).permutation(10)] for j in (0, 4, 8)]
    assert len(batches) == len(want)
    for (xb, yb), idx in zip(batches, want, strict=True):
        np.testing.assert_array_equal(xb[:, 0], idx + 100.0)  # augmented, in the seeded order
        np.testing.assert_array_equal(yb, np.eye(3)[idx % 3])
    for feed, part in ((feeds.validation, slice(0, 5)), (feeds.test, slice(5, 10))):
        xs, ys = zip(*((np.asarray(a), np.asarray(b)) for a, b in feed), strict=True)
        np.testing.assert_array_equal(np.concatenate(xs)[:, 0], x[part, 0])  # not augmented
        np.testing.assert_array_equal(np.concatenate(ys), np.eye(3)[y[part]])


def test_fit_inputs_of_tf_data_splits_keep_their_batches(keras_backend):
    tf = pytest.importorskip("tensorflow")
    from keras_recipes.data import DatasetSplits, fit_inputs

    x, y = np.arange(6, dtype="float32")[:, None], np.array([0, 1, 0, 1, 0, 1])
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    feeds = fit_inputs(DatasetSplits(ds, ds, None, ["a", "b"]), 99, one_hot=2,
                       augment=lambda a: a * 2)
    assert feeds.steps_per_epoch is None and feeds.test is None
    (x1, y1), (x2, _) = [(a.numpy(), b.numpy()) for a, b in feeds.train]
    np.testing.assert_array_equal(x1[:, 0], [0, 2, 4, 6])
    np.testing.assert_array_equal(y1, np.eye(2)[[0, 1, 0, 1]])
    np.testing.assert_array_equal(next(iter(feeds.validation))[0].numpy()[:, 0], [0, 1, 2, 3])


def test_first_examples_of_tuples_and_of_batches(keras_backend):
    from keras_recipes.data import first_examples

    x, y = np.arange(20, dtype="float32").reshape(10, 2), np.arange(10)
    for data in ((x, y), epoch_batches(x, y, 3, seed=None), [(x[:4], y[:4]), (x[4:], y[4:])]):
        fx, fy = first_examples(data, 5)
        np.testing.assert_array_equal(fx, x[:5])
        np.testing.assert_array_equal(fy, y[:5])
    fx, fy = first_examples(epoch_batches(x, y, 4, seed=None), 50)  # fewer than asked
    assert len(fx) == len(fy) == 10


def test_random_augmentation_in_tf_data_is_reproducible(keras_backend):
    """Seeded Keras random layers in the tf.data engine give the same batches run after run.

    With the augmentation mapped in parallel threads, the layers' seed generator was read
    in whatever order the threads ran: two runs differed by up to 255 in some pixels.
    """
    pytest.importorskip("tensorflow")
    from keras_recipes.layers import basic_augmentation

    x = np.random.default_rng(0).random((120, 8, 8, 3)).astype("float32") * 255
    y = np.arange(120) % 5
    runs = []
    for _ in range(3):
        ds = epoch_batches(x, y, 6, seed=0, epochs=2, engine="tf.data",
                           augment=basic_augmentation(seed=0))
        runs.append(np.concatenate([np.asarray(b[0]) for b in ds]))
    assert not np.array_equal(runs[0][:120], x[np.random.default_rng([0, 0]).permutation(120)])
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])
