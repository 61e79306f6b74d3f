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


def _reference_rows(n, bs, seed, first, epochs):
    """The rows of each batch: NumPy's permutation of each epoch, or one pass in order."""
    if seed is None:
        return [np.arange(j, min(j + bs, n)) for j in range(0, n, bs)]
    return [p[j:j + bs] for e in range(first, epochs)
            for p in [np.random.default_rng([seed, e]).permutation(n)] for j in range(0, n, bs)]


def _structured_data(n):
    rng = np.random.default_rng(4)
    x = {"image": rng.normal(size=(n, 2, 2)).astype("float32"),
         "ids": [np.arange(n) * 10, np.arange(n) * 100]}
    y = (np.arange(n).astype("int32"), rng.normal(size=(n, 3)).astype("float32"))
    return x, y, rng.uniform(size=n).astype("float32")


def _as_numpy(structure):
    return keras.tree.map_structure(np.asarray, keras.tree.lists_to_tuples(structure))


@pytest.mark.parametrize("engine", ["numpy", "tf.data"])
@pytest.mark.parametrize("seed,first,epochs", [(3, 0, 3), (5, 2, 4), (None, 0, 1)])
def test_structures_and_sample_weights_follow_the_reference_rows(keras_backend, engine, seed,
                                                                  first, epochs):
    if engine == "tf.data":
        pytest.importorskip("tensorflow")
    n, bs = 11, 4
    x, y, w = _structured_data(n)
    ds = epoch_batches(x, y, bs, sample_weight=w, seed=seed, initial_epoch=first,
                       epochs=epochs, engine=engine)
    batches = list(ds)
    rows = _reference_rows(n, bs, seed, first, epochs)
    assert len(batches) == len(rows)
    if engine == "numpy":
        assert len(ds) == len(rows)
    take = lambda part, idx: keras.tree.map_structure(lambda a: a[idx], part)  # noqa: E731
    for batch, idx in zip(batches, rows, strict=True):
        assert len(batch) == 3
        xb, yb, wb = (_as_numpy(part) for part in batch)
        want_x, want_y = _as_numpy(take(x, idx)), _as_numpy(take(y, idx))
        keras.tree.assert_same_structure(xb, want_x)
        for got, want in zip(keras.tree.flatten((xb, yb)), keras.tree.flatten((want_x, want_y)),
                             strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(wb, w[idx])
    if engine == "numpy":  # lists stay lists
        assert isinstance(ds[0][0]["ids"], list) and isinstance(ds[0][1], tuple)


@pytest.mark.parametrize("engine", ["numpy", "tf.data"])
def test_inputs_only_and_weights_without_targets(keras_backend, engine):
    if engine == "tf.data":
        pytest.importorskip("tensorflow")
    x, w = np.arange(7, dtype="float32")[:, None], np.arange(7) / 7
    rows = _reference_rows(7, 3, 1, 0, 2)
    alone = [tuple(np.asarray(p) for p in b)
             for b in epoch_batches(x, None, 3, seed=1, epochs=2, engine=engine)]
    assert [len(b) for b in alone] == [1] * len(rows)
    for (xb,), idx in zip(alone, rows, strict=True):
        np.testing.assert_array_equal(xb, x[idx])
    weighted = list(epoch_batches(x, None, 3, sample_weight=w, seed=1, epochs=2, engine=engine))
    for (xb, yb, wb), idx in zip(weighted, rows, strict=True):
        assert yb is None
        np.testing.assert_array_equal(np.asarray(xb), x[idx])
        np.testing.assert_array_equal(np.asarray(wb), w[idx])


def test_structured_resume_is_the_tail_of_the_full_feed(keras_backend):
    n, bs, epochs = 9, 4, 4
    x, y, w = _structured_data(n)
    steps = math.ceil(n / bs)

    def flat(ds):
        return [[np.asarray(a) for a in keras.tree.flatten(ds[i])] for i in range(len(ds))]

    full = flat(epoch_batches(x, y, bs, sample_weight=w, seed=2, epochs=epochs))
    for first in range(epochs):
        tail = flat(epoch_batches(x, y, bs, sample_weight=w, seed=2, initial_epoch=first,
                                  epochs=epochs))
        assert len(tail) == len(full[first * steps:])
        for got, want in zip(tail, full[first * steps:], strict=True):
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)


def test_one_hot_of_structured_targets_and_transform_keeps_weights(keras_backend):
    x, y = np.arange(6, dtype="float32")[:, None], np.arange(6) % 3
    ds = epoch_batches(x, {"a": y, "b": 2 - y}, 4, sample_weight=np.full(6, 0.5), seed=None,
                       one_hot=3, transform=lambda a, b: (a + 1, b))
    xb, yb, wb = ds[0]
    np.testing.assert_array_equal(xb[:, 0], x[:4, 0] + 1)
    np.testing.assert_array_equal(yb["a"], np.eye(3)[y[:4]])
    np.testing.assert_array_equal(yb["b"], np.eye(3)[2 - y[:4]])
    assert wb.tolist() == [0.5] * 4


def test_fit_with_sample_weights_and_a_two_input_model(keras_backend):
    """Zero-weighted rows do not move the model; the feed drives a two-input model."""
    a_in, b_in = keras.Input((2,), name="a"), keras.Input((1,), name="b")
    out = keras.layers.Dense(1, use_bias=False)(keras.layers.Concatenate()([a_in, b_in]))
    model = keras.Model({"a": a_in, "b": b_in}, out)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(8, 2)).astype("float32"),
         "b": rng.normal(size=(8, 1)).astype("float32")}
    y = rng.normal(size=(8, 1)).astype("float32")
    before = [np.array(v) for v in model.get_weights()]
    model.fit(epoch_batches(x, y, 4, sample_weight=np.zeros(8, "float32"), seed=0, epochs=2),
              epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], before[0])
    model.fit(epoch_batches(x, y, 4, sample_weight=np.ones(8, "float32"), seed=0, epochs=1),
              epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
    assert not np.allclose(model.get_weights()[0], before[0])


# The checks of the former `distribute.GlobalBatches`, on the feed that replaces it.


def test_unseeded_batches_in_order_with_targets(keras_backend):
    x, y = np.arange(10).reshape(10, 1), np.arange(10) * 10
    feed = epoch_batches(x, y, 4, seed=None)
    assert len(feed) == 3
    assert [feed[i][0].ravel().tolist() for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert feed[2][1].tolist() == [80, 90]


def test_same_seed_same_batches_every_epoch_a_permutation(keras_backend):
    x = np.arange(23)
    steps = 5
    a = epoch_batches(x, x, 5, seed=7, epochs=3)
    b = epoch_batches(x, x, 5, seed=7, epochs=3)
    epochs = [np.concatenate([a[e * steps + i][0] for i in range(steps)]) for e in range(3)]
    for e, ea in enumerate(epochs):
        eb = np.concatenate([b[e * steps + i][0] for i in range(steps)])
        np.testing.assert_array_equal(ea, eb)  # two processes, same seed
        np.testing.assert_array_equal(np.sort(ea), x)  # every row once per epoch
        np.testing.assert_array_equal(ea, np.random.default_rng([7, e]).permutation(23))
        for i in range(steps):  # rows stay paired with targets
            np.testing.assert_array_equal(a[e * steps + i][0], a[e * steps + i][1])
        if e:
            assert not np.array_equal(ea, epochs[e - 1])  # reshuffled
    other = epoch_batches(x, x, 5, seed=8, epochs=1)
    assert not np.array_equal(np.concatenate([other[i][0] for i in range(steps)]), epochs[0])


def test_structures_and_sample_weight_in_order(keras_backend):
    x = {"a": np.arange(6), "b": np.arange(6) * 2}
    feed = epoch_batches(x, np.arange(6), 4, sample_weight=np.ones(6) * 0.5, seed=None)
    xb, yb, wb = feed[1]
    assert xb["a"].tolist() == [4, 5] and xb["b"].tolist() == [8, 10]
    assert yb.tolist() == [4, 5] and wb.tolist() == [0.5, 0.5]
    assert len(epoch_batches(np.arange(6), None, 4, seed=None)[0]) == 1  # inputs only


@pytest.mark.parametrize("x,y,sw,arg", [
    (np.arange(4), np.arange(5), None, "y"),
    ({"a": np.arange(4), "b": np.arange(5)}, np.arange(4), None, "x"),
    (np.arange(4), {"a": np.arange(4), "b": np.arange(3)}, None, "y"),
    (np.arange(4), np.arange(4), np.ones(3), "sample_weight"),
    ({}, np.arange(4), None, "x"),
])
def test_arrays_of_different_lengths_are_refused(keras_backend, x, y, sw, arg):
    with pytest.raises(ValueError, match=f"argument `{arg}`.*Received"):
        epoch_batches(x, y, 2, sample_weight=sw)


def test_one_hot_without_targets_is_refused(keras_backend):
    with pytest.raises(ValueError, match="argument `one_hot`.*Received: one_hot=3"):
        epoch_batches(np.zeros((4, 1)), None, 2, one_hot=3)
