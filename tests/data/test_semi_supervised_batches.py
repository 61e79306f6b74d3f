"""keras_recipes.data.semi_supervised_batches: labelled + unlabelled batches for fit.

References: the rows of every batch are checked against streams of NumPy permutations
written out here, and one SGD step of ``fit`` against a NumPy gradient of the weighted
cross-entropy (the unlabelled rows contribute nothing).
"""

import keras
import numpy as np
import pytest

from keras_recipes.data import semi_supervised_batches


def _stream(n, seed, epoch, part, length):
    """The first `length` rows of the stream, by tiling permutations (the reference)."""
    perms = [np.random.default_rng([seed, epoch, part, k]).permutation(n)
             for k in range(length // n + 1)]
    return np.concatenate(perms)[:length]


def _data(n_l, n_u):
    x_l = np.arange(n_l, dtype="float32")[:, None]  # labelled rows: values 0 .. n_l-1
    y_l = np.arange(n_l) % 3
    x_u = 1000 + np.arange(n_u, dtype="float32")[:, None]  # unlabelled: 1000 ..
    return x_l, y_l, x_u


@pytest.mark.parametrize("n_l,n_u,lb,ub,seed,first,epochs", [
    (5, 12, 2, 4, 0, 0, 3),   # labelled rows cycle within an epoch
    (7, 9, 3, 2, 4, 1, 3),    # 9 // 2 = 4 steps: one unlabelled row left out per epoch
    (4, 3, 4, 3, 2, 0, 2),    # whole sets per batch
])
def test_rows_follow_the_seeded_streams(keras_backend, n_l, n_u, lb, ub, seed, first, epochs):
    x_l, y_l, x_u = _data(n_l, n_u)
    ds = semi_supervised_batches(x_l, y_l, x_u, lb, ub, seed=seed, initial_epoch=first,
                                 epochs=epochs)
    steps = n_u // ub
    assert len(ds) == steps * (epochs - first)
    i = 0
    for e in range(first, epochs):
        lab = _stream(n_l, seed, e, 0, steps * lb).reshape(steps, lb)
        unl = _stream(n_u, seed, e, 1, steps * ub).reshape(steps, ub)
        for j in range(steps):
            x, y, w = ds[i]
            np.testing.assert_array_equal(x[:, 0], np.concatenate([lab[j], 1000 + unl[j]]))
            np.testing.assert_array_equal(y, np.concatenate([y_l[lab[j]], np.zeros(ub)]))
            np.testing.assert_array_equal(w, [1.0] * lb + [0.0] * ub)
            assert x.dtype == np.float32 and w.dtype == np.float32
            i += 1
        # Every labelled example once before any one twice, within the epoch.
        counts = np.bincount(lab.reshape(-1), minlength=n_l)
        assert counts.max() - counts.min() <= 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_resumed_feed_is_the_tail_and_the_baseline_sees_the_same_labelled_rows(keras_backend):
    x_l, y_l, x_u = _data(6, 20)
    full = semi_supervised_batches(x_l, y_l, x_u, 4, 5, seed=3, epochs=4)
    resumed = semi_supervised_batches(x_l, y_l, x_u, 4, 5, seed=3, initial_epoch=2, epochs=4)
    assert len(full) == 16 and len(resumed) == 8
    for i in range(8):
        for a, b in zip(full[8 + i], resumed[i], strict=True):
            np.testing.assert_array_equal(a, b)
    # Supervised only, same steps per epoch: exactly the labelled rows of each batch.
    baseline = semi_supervised_batches(x_l, y_l, None, 4, 0, seed=3, epochs=4,
                                       steps_per_epoch=4)
    assert len(baseline) == len(full)
    for i in range(len(full)):
        x, y, w = baseline[i]
        np.testing.assert_array_equal(x, full[i][0][:4])
        np.testing.assert_array_equal(y, full[i][1][:4])
        np.testing.assert_array_equal(w, np.ones(4))
    # Without unlabelled examples the default epoch is one pass over the labelled ones.
    assert len(semi_supervised_batches(x_l, y_l, labelled_batch_size=4, epochs=1)) == 1


def test_fit_step_ignores_unlabelled_rows(keras_backend):
    rng = np.random.default_rng(0)
    x_l = rng.normal(size=(4, 2)).astype("float32")
    y_l = np.array([0, 1, 2, 1])
    x_u = rng.normal(size=(6, 2)).astype("float32") * 5
    kernel = rng.normal(size=(2, 3)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, use_bias=False)])
    model.layers[0].set_weights([kernel])
    model.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = semi_supervised_batches(x_l, y_l, x_u, 4, 6, seed=1, epochs=1)
    assert len(ds) == 1
    x, y, w = ds[0]
    model.fit(ds, epochs=1, shuffle=False, verbose=0)
    # NumPy: the mean over the whole batch (sum_over_batch_size) of w_i · CE_i.
    logits = x @ kernel
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad_logits = (p - np.eye(3)[y.astype(int)]) * w[:, None] / len(x)
    want = kernel - 0.5 * x.T @ grad_logits
    np.testing.assert_allclose(model.layers[0].get_weights()[0], want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, kernel)  # the step moved the weights


@pytest.mark.parametrize("kwargs,name", [
    ({"labelled_batch_size": 0}, "labelled_batch_size"),
    ({"unlabelled_batch_size": -1}, "unlabelled_batch_size"),
    ({"unlabelled_batch_size": 2, "x_unlabelled": None}, "x_unlabelled"),
    ({"x_unlabelled": np.zeros((5, 2), "float32")}, "x_unlabelled"),
    ({"y_labelled": np.zeros(2)}, "y_labelled"),
    ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"seed": 1.5}, "seed"),
    ({"initial_epoch": 4, "epochs": 2}, "initial_epoch"),
])
def test_errors_name_the_argument(keras_backend, kwargs, name):
    args = {"x_labelled": np.zeros((3, 1), "float32"), "y_labelled": np.zeros(3),
            "x_unlabelled": np.zeros((5, 1), "float32"), "labelled_batch_size": 2,
            "unlabelled_batch_size": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"`{name}`"):
        semi_supervised_batches(**args)
