"""CutMix: label weights equal the exact pasted pixel fraction; boxes, dtypes, masks."""

import keras
import numpy as np
import pytest

from keras_recipes.layers import CutMix
from tests.contract import run_layer_test
from tests.layers.mixing_reference import (
    assert_every_argument_round_trips,
    ks_distance,
    labelled_images,
    numpy_box,
    partner_of,
    to_np,
)

N, H, W = 7, 5, 6  # odd batch, odd and non-square images


def _pasted(x_in, x_out):
    """Per sample: bool (H, W) mask of changed pixels (labelled, channels-last images)."""
    return np.any(x_out != x_in, axis=-1)


def _assert_rectangle(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:
        box = np.zeros_like(mask)
        box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
        np.testing.assert_array_equal(mask, box)


def _check_exact(x_in, x_out, y_out):
    """Pasted pixels come from the partner, form one box, and match the label weight."""
    n = len(x_in)
    partners = partner_of(y_out)
    errors = []
    for i in range(n):
        mask = _pasted(x_in[i], x_out[i])
        _assert_rectangle(mask)
        np.testing.assert_array_equal(x_out[i][mask], x_in[partners[i]][mask])
        if partners[i] != i:
            errors.append(abs(y_out[i, partners[i]] - mask.mean()))
            assert abs(y_out[i, i] + y_out[i, partners[i]] - 1) < 1e-6
    return max(errors)


def test_layer_contract(tmp_path):
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    y = np.eye(4, dtype="float32")
    run_layer_test(
        CutMix, {"alpha": 1.0, "seed": 1}, (x, y), call_kwargs={"training": True},
        expected_output_shape=[(4, 8, 8, 3), (4, 4)], tmp_path=tmp_path, cross_backend=False,
        mixed_precision=("mixed_float16",),  # bfloat16: in MixUp's contract (shared code)
        output_dtypes_under_policy=lambda p: [keras.DTypePolicy(p).compute_dtype, "float32"],
    )


@pytest.mark.parametrize("mode", ["elem", "batch"])
def test_label_weight_is_the_exact_pasted_fraction_odd_sizes(mode):
    x, y = labelled_images(N, H, W)
    layer = CutMix(alpha=1.0, mode=mode, seed=5)
    boxes = []
    for _ in range(20):
        x_out, y_out = (to_np(t) for t in layer(x, y))
        assert _check_exact(x, x_out, y_out) < 1e-6
        boxes.append([_pasted(x[i], x_out[i]) for i in range(N)])
    boxes = np.array(boxes)  # (calls, N, H, W)
    if mode == "batch":  # one box per batch: every moved sample has the same box
        for call in boxes:
            used = [b for b in call if b.any()]
            assert all(np.array_equal(b, used[0]) for b in used)
    else:
        assert len({b.tobytes() for b in boxes.reshape(-1, H, W)}) > 20


def test_exact_at_32x32_where_keras_cutmix_is_off_by_up_to_006():
    x, y = labelled_images(16, 32, 32)
    x_out, y_out = (to_np(t) for t in CutMix(seed=2)(x, y))
    assert _check_exact(x, x_out, y_out) < 1e-6
    if keras.backend.backend() != "jax":  # JAX: same Keras code, but compiled op by op (slow)
        # Peer fault (Keras 3.15): label weight from a continuous box, pixels on the grid.
        out = keras.layers.CutMix(seed=3)({"images": x, "labels": y})
        theirs = _check_exact(x, to_np(out["images"]), to_np(out["labels"]))
        assert theirs > 0.01


def test_uint8_pixels_are_copied_not_rounded():
    x = (np.random.default_rng(1).random((N, H, W, 3)) * 255).astype("uint8")
    x_out, y_out = CutMix(seed=4)(x, np.eye(N, dtype="float32"))
    assert keras.backend.standardize_dtype(x_out.dtype) == "uint8"
    x_out, partners = to_np(x_out), partner_of(to_np(y_out))
    own, theirs = x_out == x, x_out == x[partners]
    assert np.all(own | theirs)


def test_integer_segmentation_masks_get_the_same_rectangle():
    x, y = labelled_images(N, H, W)
    masks = np.broadcast_to(np.arange(1, N + 1, dtype="int32")[:, None, None], (N, H, W))
    out = CutMix(seed=6)({"images": x, "labels": y, "segmentation_masks": masks})
    m = to_np(out["segmentation_masks"])
    assert m.dtype == np.int32 and m.shape == (N, H, W)
    np.testing.assert_array_equal(m, to_np(out["images"])[..., 0].astype("int32"))


def test_area_range_bounds_the_pasted_fraction():
    x, y = labelled_images(N, H, W)
    lo, hi = 0.2, 0.4
    layer = CutMix(alpha=1.0, area_range=(lo, hi), seed=7)
    tol = 0.5 * (1 / H + 1 / W) + 1 / (H * W)  # sides rounded to whole pixels
    fractions = []
    for _ in range(20):
        x_out, y_out = (to_np(t) for t in layer(x, y))
        partners = partner_of(y_out)
        moved = partners != np.arange(N)
        fractions.append(y_out[np.arange(N), partners][moved])
        assert _check_exact(x, x_out, y_out) < 1e-6
    fractions = np.concatenate(fractions)
    assert np.all((fractions >= lo - tol) & (fractions <= hi + tol))


def test_channels_first_matches_channels_last():
    x, y = labelled_images(N, H, W)
    cl = CutMix(seed=8)(x, y)
    cf = CutMix(seed=8, data_format="channels_first")(x.transpose(0, 3, 1, 2), y)
    np.testing.assert_array_equal(to_np(cf[0]), to_np(cl[0]).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(to_np(cf[1]), to_np(cl[1]))


def test_batch_of_one_and_training_false_are_identity():
    x, y = labelled_images(N, H, W)
    x_out, y_out = CutMix(seed=0)(x[:1], y[:1])
    np.testing.assert_array_equal(to_np(x_out), x[:1])
    np.testing.assert_array_equal(to_np(y_out), y[:1])
    x_out, y_out = CutMix(seed=0)(x, y, training=False)
    np.testing.assert_array_equal(to_np(x_out), x)


@pytest.mark.parametrize("area_range", [(0.5, 0.2), (-0.1, 0.5), (0.0, 0.0), "big", (0.1,)])
def test_invalid_area_range_raises(area_range):
    with pytest.raises(ValueError, match="`area_range`"):
        CutMix(area_range=area_range)


def test_invalid_alpha_raises():
    with pytest.raises(ValueError, match="Expected a finite float > 0. Received: alpha=0"):
        CutMix(alpha=0)


def _extreme_share(lam):
    """Share of λ < 0.05 or > 0.95: 10% for the paper's Beta(1, 1)."""
    return float(np.mean((lam < 0.05) | (lam > 0.95)))


def test_default_alpha_draws_beta_1_1_unlike_keras_cutmix_factor():
    assert CutMix().alpha == 1.0
    # The shapes and arguments of the 32x32 test above (one compiled kernel on JAX).
    x, y = labelled_images(16, 32, 32)
    layer = CutMix(seed=3)
    pasted = []
    for _ in range(20):
        y_out = to_np(layer(x, y)[1])
        partners = partner_of(y_out)
        moved = partners != np.arange(16)
        pasted.append(y_out[np.arange(16), partners][moved])
    pasted = np.concatenate(pasted)
    # NumPy: 1 - λ with λ ~ Beta(1, 1), through the same box rule (uniform centre, clipped).
    rng = np.random.default_rng(0)
    area = 1.0 - rng.beta(1.0, 1.0, 50_000)
    y0, y1, x0, x1 = numpy_box(area, rng.random(50_000), rng.random(50_000), 32, 32)
    ref = (y1 - y0) * (x1 - x0) / 1024
    assert pasted.size > 250 and ks_distance(pasted, ref) < 0.1
    assert abs(_extreme_share(pasted) - _extreme_share(ref)) < 0.05
    if keras.backend.backend() != "jax":  # JAX: same Keras code, but compiled op by op (slow)
        # Peer fault (Keras 3.15): factor=1.0 draws α ~ U(0, 1) per call, then
        # λ ~ Beta(α, α): ~35% of λ are < 0.05 or > 0.95. Its box is never clipped, so
        # its label weight is λ itself (rows of a fixed point of the permutation skipped).
        theirs = keras.layers.CutMix(seed=3)
        lam = []
        for _ in range(12):
            y_out = to_np(theirs({"images": x, "labels": y})["labels"])
            diag = y_out[np.arange(16), np.arange(16)]
            lam.append(diag[diag < 1.0])
        assert _extreme_share(np.concatenate(lam)) > 0.25


def test_float16_runs_where_keras_cutmix_raises_on_torch():
    x, y = labelled_images(4, 8, 8)  # the contract's shapes and policy: one compile on JAX
    x_out, y_out = CutMix(seed=4, dtype="mixed_float16")(x, y)
    assert keras.backend.standardize_dtype(x_out.dtype) == "float16"
    assert keras.backend.standardize_dtype(y_out.dtype) == "float32"
    assert _check_exact(x, to_np(x_out).astype("float32"), to_np(y_out)) < 1e-6
    if keras.backend.backend() == "torch":
        # Peer fault (Keras 3.15, torch): its Beta sampler has no float16 kernel.
        with pytest.raises(Exception, match="(?i)dirichlet|half"):
            keras.layers.CutMix(dtype="mixed_float16", seed=1)({"images": x, "labels": y})


def test_config_round_trips_every_argument():
    assert_every_argument_round_trips(
        CutMix, {"alpha": 0.5, "mode": "batch", "num_classes": 3, "label_smoothing": 0.1,
         "area_range": (0.1, 0.5), "seed": 5, "data_format": "channels_first"})
