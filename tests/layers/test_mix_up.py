"""MixUp: exact pixel/label consistency, Beta(α, α) draws, labels, dtypes, errors."""

import keras
import numpy as np
import pytest

from keras_recipes.layers import CutMix, MixUp
from tests.contract import run_layer_test
from tests.layers.mixing_reference import (
    as_float32_grid,
    assert_every_argument_round_trips,
    ks_distance,
    partner_of,
    to_np,
)

RNG = np.random.default_rng(0)
X = RNG.random((7, 5, 6, 3)).astype("float32")  # odd batch, non-square images
EYE = np.eye(7, dtype="float32")


def _mix_reference(y_out, x):
    """Σ_k y_out[i, k]·x_k for every output pixel (labels are one-hot identities)."""
    return np.einsum("ik,k...->i...", y_out.astype(np.float64), x.astype(np.float64))


def test_layer_contract(tmp_path):
    x = RNG.random((4, 8, 8, 3)).astype("float32") * 255
    y = np.array([0, 1, 2, 1])
    run_layer_test(
        MixUp, {"alpha": 0.4, "num_classes": 3, "seed": 1}, (x, y),
        call_kwargs={"training": True}, expected_output_shape=[(4, 8, 8, 3), (4, 3)],
        # One reload under another backend per test run is enough (the config is plain
        # Python); it costs a process importing a second framework (~10 s of CPU).
        tmp_path=tmp_path, cross_backend=keras.backend.backend() == "torch",
        output_dtypes_under_policy=lambda p: [keras.DTypePolicy(p).compute_dtype, "float32"],
    )


@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_every_pixel_is_the_label_weighted_sum_of_images(mode):
    x_out, y_out = (to_np(t) for t in MixUp(alpha=1.0, mode=mode, seed=2)(X, EYE))
    np.testing.assert_allclose(x_out, _mix_reference(y_out, X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_out.sum(axis=1), 1.0, atol=1e-6)
    partners = partner_of(y_out)
    np.testing.assert_array_equal(np.sort(partners), np.arange(7))  # a permutation
    moved = partners != np.arange(7)
    lam = y_out[np.arange(7), np.arange(7)][moved]
    if mode == "batch":
        assert np.ptp(lam) < 1e-6  # one λ for the batch (the paper)
    else:
        assert len(np.unique(lam)) == moved.sum() > 1  # one λ per sample (the course)


def test_lambda_follows_beta_alpha_alpha():
    layer = MixUp(alpha=0.2, seed=4)
    lam = []
    for _ in range(150):  # the shape of the other tests: one compiled kernel
        y_out = to_np(layer(X, EYE)[1])
        moved = partner_of(y_out) != np.arange(7)
        lam.append(y_out[np.arange(7), np.arange(7)][moved])
    lam = np.concatenate(lam)
    ref = np.random.default_rng(5).beta(0.2, 0.2, 20000)
    assert lam.size > 800
    assert ks_distance(as_float32_grid(lam), as_float32_grid(ref)) < 0.07


def test_sparse_labels_become_float32_one_hot_unlike_keras_mixup():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    for labels in (y, y[:, None]):
        _, y_out = MixUp(num_classes=3, seed=0)(X, labels)
        assert tuple(y_out.shape) == (7, 3)
        assert keras.backend.standardize_dtype(y_out.dtype) == "float32"
        y_out = to_np(y_out)
        np.testing.assert_allclose(y_out.sum(axis=1), 1.0, atol=1e-6)
        assert np.all((y_out > 0).sum(axis=1) <= 2)  # λ·e_y(i) + (1 - λ)·e_y(p(i))
    # Peer fault: keras.layers.MixUp broadcasts sparse labels to (N, N) (torch, JAX) or
    # fails (TensorFlow) instead of one-hot (N, K). Not re-run on JAX, where the same
    # code path gives (N, N) but compiles op by op (~15 s).
    if keras.backend.backend() != "jax":
        try:
            theirs = tuple(keras.layers.MixUp()({"images": X, "labels": y})["labels"].shape)
        except Exception:  # any failure is the fault
            theirs = "error"
        assert theirs in ((7, 7), "error")


def test_label_smoothing_is_applied_before_mixing():
    eps = 0.1
    x_out, y_out = (to_np(t) for t in MixUp(alpha=1.0, label_smoothing=eps, seed=3)(X, EYE))
    mixed_one_hot = (y_out - eps / 7) / (1 - eps)
    np.testing.assert_allclose(mixed_one_hot.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(x_out, _mix_reference(mixed_one_hot, X), rtol=1e-4, atol=1e-5)
    assert y_out.min() >= eps / 7 - 1e-7


def test_training_false_returns_inputs_bit_identical():
    layer = MixUp(num_classes=3, seed=0)
    for x in (X, (X * 255).astype("uint8")):
        y = np.array([0, 1, 2, 0, 1, 2, 2])
        x_out, y_out = layer(x, y, training=False)
        np.testing.assert_array_equal(to_np(x_out), x)
        assert to_np(x_out).dtype == x.dtype
        np.testing.assert_array_equal(to_np(y_out), y)
    out = MixUp()({"images": X, "labels": EYE}, training=False)
    assert sorted(out) == ["images", "labels"]
    np.testing.assert_array_equal(to_np(out["images"]), X)


def test_batch_of_one_is_returned_unchanged():
    x = X[:1]
    x_out, y_out = MixUp(alpha=1.0, num_classes=3, seed=0)(x, np.array([2]))
    np.testing.assert_array_equal(to_np(x_out), x)
    np.testing.assert_array_equal(to_np(y_out), [[0.0, 0.0, 1.0]])


def test_unbatched_images_raise_a_batch_first_error():
    with pytest.raises(ValueError, match="batch first"):
        MixUp()(X[0], EYE[0])


def test_uint8_in_uint8_out_rounded_and_clipped():
    x = (X * 255).astype("uint8")
    x_out, y_out = MixUp(alpha=1.0, seed=6)(x, EYE)
    assert keras.backend.standardize_dtype(x_out.dtype) == "uint8"
    want = np.clip(np.round(_mix_reference(to_np(y_out), x)), 0, 255)
    diff = np.abs(to_np(x_out).astype(int) - want)
    assert diff.max() <= 1 and np.mean(diff == 0) > 0.99  # float32 vs float64 at .5 ties


def test_channels_first_matches_channels_last():
    cl = MixUp(alpha=1.0, seed=8, data_format="channels_last")(X, EYE)
    cf = MixUp(alpha=1.0, seed=8, data_format="channels_first")(X.transpose(0, 3, 1, 2), EYE)
    np.testing.assert_array_equal(to_np(cf[0]), to_np(cl[0]).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(to_np(cf[1]), to_np(cl[1]))


def test_tuple_and_dict_labels_share_lambda_and_partner():
    y2 = np.array([0, 1, 2, 0, 1, 2, 2])
    onehot2 = np.eye(3, dtype="float32")[y2]
    layer = MixUp(alpha=1.0, num_classes=[7, 3], seed=9)
    _, (a, b) = layer(X, (EYE, y2))
    a, b = to_np(a), to_np(b)
    np.testing.assert_allclose(b, a @ onehot2, atol=1e-6)  # same λ and partner
    layer = MixUp(alpha=1.0, num_classes={"digit": 7, "parity": 3}, seed=9)
    out = layer({"images": X, "labels": {"digit": EYE, "parity": y2}})
    np.testing.assert_allclose(to_np(out["labels"]["parity"]),
                               to_np(out["labels"]["digit"]) @ onehot2, atol=1e-6)
    np.testing.assert_allclose(to_np(out["labels"]["digit"]), a, atol=1e-7)  # same seed


def test_float_segmentation_masks_are_mixed_like_images():
    masks = np.eye(2, dtype="float32")[RNG.integers(0, 2, (7, 5, 6))]  # one-hot per pixel
    out = MixUp(alpha=1.0, seed=1)({"images": X, "labels": EYE, "segmentation_masks": masks})
    np.testing.assert_allclose(to_np(out["segmentation_masks"]),
                               _mix_reference(to_np(out["labels"]), masks), atol=1e-6)


def test_integer_segmentation_masks_raise():
    masks = np.zeros((7, 5, 6), "int32")
    with pytest.raises(ValueError, match="integer class masks"):
        MixUp()({"images": X, "labels": EYE, "segmentation_masks": masks})


def test_same_seed_same_output_and_input_not_mutated():
    x = keras.ops.convert_to_tensor(X)
    first = to_np(MixUp(seed=11)(x, EYE)[0])
    again = to_np(MixUp(seed=11)(x, EYE)[0])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(to_np(x), X)  # timm mixes in place; we do not
    layer = MixUp(seed=11)
    assert not np.array_equal(to_np(layer(x, EYE)[0]), to_np(layer(x, EYE)[0]))


def test_sparse_labels_without_num_classes_raise():
    with pytest.raises(ValueError, match="num_classes=K"):
        MixUp()(X, np.arange(7))


def test_labels_of_another_batch_size_raise():
    with pytest.raises(ValueError, match="as many labels as images"):
        MixUp()(X, EYE[:5])


def test_one_hot_width_other_than_num_classes_raises():
    with pytest.raises(ValueError, match="num_classes=3 columns"):
        MixUp(num_classes=3)(X, EYE)


def test_unknown_dict_key_raises():
    with pytest.raises(ValueError, match="'bounding_boxes'"):
        MixUp()({"images": X, "bounding_boxes": EYE})


def test_labels_given_twice_raise():
    with pytest.raises(ValueError, match="labels given twice"):
        MixUp()({"images": X, "labels": EYE}, EYE)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": -1}, "`alpha`. Expected a finite float > 0. Received: alpha=-1"),
    ({"alpha": 0.0}, "`alpha`"),
    ({"alpha": float("nan")}, "`alpha`"),
    ({"alpha": float("inf")}, "`alpha`"),
    ({"alpha": True}, "`alpha`"),
    ({"mode": "pairs"}, "`mode`"),
    ({"num_classes": 1}, "`num_classes`"),
    ({"label_smoothing": 1.5}, "`label_smoothing`"),
    ({"seed": 1.5}, "`seed`"),
    ({"data_format": "NHWC"}, "`data_format`"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        MixUp(**kwargs)


def test_mixed_float16_runs_and_keeps_labels_float32_where_keras_mixup_raises():
    x_out, y_out = MixUp(alpha=1.0, seed=2, dtype="mixed_float16")(X, EYE)
    assert keras.backend.standardize_dtype(x_out.dtype) == "float16"
    assert keras.backend.standardize_dtype(y_out.dtype) == "float32"
    np.testing.assert_allclose(to_np(x_out).astype("float64"), _mix_reference(to_np(y_out), X),
                               atol=2e-3)  # float16 resolution near 1
    if keras.backend.backend() == "tensorflow":
        # Peer fault (Keras 3.15, TensorFlow): float32 labels times a float16 λ.
        with pytest.raises(Exception, match="(?i)mul|float16|half|dtype"):
            keras.layers.MixUp(dtype="mixed_float16", seed=1)({"images": X, "labels": EYE})


def test_config_round_trips_every_argument():
    assert_every_argument_round_trips(
        MixUp, {"alpha": 0.7, "mode": "batch", "num_classes": 3, "label_smoothing": 0.1,
         "seed": 5, "data_format": "channels_first"})


def test_keras_input_faults_that_ours_do_not_share():
    """Keras 3.15: tuples and dict labels raise, unbatched CutMix is a silent no-op, α = 0
    gives λ = 0.5 (TensorFlow) or an error at call time (torch). Ours: the tests above
    (tuple/dict labels mixed, a batch-first error, a ValueError at construction)."""
    if keras.backend.backend() == "jax":
        pytest.skip("jax: Keras's layers run op by op there (seconds per call); the faults "
                    "are reproduced on torch and tensorflow")
    with pytest.raises(Exception):  # noqa: B017 - any error is the fault
        keras.layers.MixUp(seed=0)((X, EYE))
    with pytest.raises(Exception):  # noqa: B017
        keras.layers.MixUp(seed=0)({"images": X, "labels": {"a": EYE}})
    np.testing.assert_array_equal(to_np(keras.layers.CutMix(seed=0)(X[0])), X[0])
    if keras.backend.backend() == "tensorflow":
        out = keras.layers.MixUp(alpha=0.0, seed=0)({"images": X, "labels": EYE})
        lam = to_np(out["labels"])[np.arange(7), np.arange(7)]
        assert np.any(np.isclose(lam, 0.5))  # Beta(0, 0) draws exactly 0.5
    else:
        with pytest.raises(Exception, match="(?i)concentration"):
            keras.layers.MixUp(alpha=0.0, seed=0)({"images": X, "labels": EYE})
    # Ours, side by side.
    pair, positional = MixUp(seed=0)((X, EYE)), MixUp(seed=0)(X, EYE)  # a tuple: (x, y)
    for a, b in zip(pair, positional, strict=True):
        np.testing.assert_array_equal(to_np(a), to_np(b))
    x_out, y_out = MixUp(seed=0)((X, EYE), training=False)
    np.testing.assert_array_equal(to_np(x_out), X)
    with pytest.raises(ValueError, match="batch first"):
        CutMix()(X[0])
    with pytest.raises(ValueError, match="`alpha`"):
        MixUp(alpha=0.0)


def test_a_tuple_other_than_images_and_labels_raises():
    with pytest.raises(ValueError, match=r"one `\(images, labels\)` pair"):
        MixUp()((X, EYE, EYE))
