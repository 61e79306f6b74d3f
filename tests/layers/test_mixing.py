"""The pure math of keras_recipes.layers.mixing against NumPy."""

import keras
import numpy as np
import pytest

from keras_recipes.backend.augmentation import compile_kernel
from keras_recipes.layers import mixing
from tests.layers.mixing_reference import as_float32_grid, ks_distance, numpy_box, to_np

N_DRAWS = 20000


def _uniforms(shape, seed):
    return keras.random.uniform(shape, dtype="float32", seed=seed)


# One compiled program per function (JAX would otherwise compile every op on its own);
# α is an argument, so every α reuses it.
_beta = compile_kernel(lambda u, alpha: mixing.sample_beta(u, alpha))
_log_gamma = compile_kernel(lambda u, alpha: mixing.sample_log_gamma(u, alpha))


@pytest.mark.parametrize("alpha", [0.005, 0.2, 1.0])
def test_beta_matches_numpy_ks(alpha):
    lam, rest = _beta(_uniforms((N_DRAWS, mixing.BETA_UNIFORMS), 7), np.float32(alpha))
    lam, rest = to_np(lam), to_np(rest)
    ref = np.random.default_rng(1).beta(alpha, alpha, N_DRAWS)
    # Compare on the float32 grid the layer works on (values < 1e-38 are 0 there).
    assert ks_distance(as_float32_grid(lam), as_float32_grid(ref)) < 0.04
    assert np.all(np.isfinite(lam)) and np.all((lam >= 0) & (lam <= 1))
    np.testing.assert_allclose(lam + rest, 1.0, atol=1e-6)
    # The second moment of Beta(α, α): Var = 1 / (4 (2α + 1)).
    assert abs(lam.var() - 1 / (4 * (2 * alpha + 1))) < 0.01


def test_beta_never_stuck_at_half_for_small_alpha_unlike_keras_random_beta():
    u = _uniforms((N_DRAWS, mixing.BETA_UNIFORMS), 7)
    ours = to_np(_beta(u, np.float32(1e-3))[0])
    assert np.mean(ours == 0.5) == 0.0
    # Beta(1e-3, 1e-3) puts ~98.6% of its mass within 1e-6 of 0 or 1: as NumPy does.
    ref = np.random.default_rng(2).beta(1e-3, 1e-3, N_DRAWS)
    near = [np.mean(np.minimum(v, 1 - v) < 1e-6) for v in (ours.astype(np.float64), ref)]
    assert abs(near[0] - near[1]) < 0.01, near
    if keras.backend.backend() in ("tensorflow", "torch"):  # JAX's own beta is right
        # Peer fault (Keras 3.15): exactly 0.5 for a large share of draws (84% on TF).
        theirs = to_np(keras.random.beta((N_DRAWS,), 1e-3, 1e-3, seed=1))
        assert np.mean(theirs == 0.5) > 0.1


def test_log_gamma_mean_and_variance():
    u = _uniforms((N_DRAWS, mixing.GAMMA_UNIFORMS), 5)
    for alpha in (0.3, 3.0):
        g = np.exp(to_np(_log_gamma(u, np.float32(alpha))).astype(np.float64))
        assert abs(g.mean() - alpha) < 0.05 * max(alpha, 1), alpha
        assert abs(g.var() - alpha) < 0.1 * max(alpha, 1), alpha


@pytest.mark.parametrize("inside", [False, True])
def test_sample_box_matches_numpy_rule(inside):
    rng = np.random.default_rng(0)
    area = rng.random(500).astype("float32")
    area[:5] = [0.0, 1.0, 1e-4, 0.999, 0.5]
    u_y, u_x = rng.random((2, 500)).astype("float32")
    height, width = 9, 14
    box = compile_kernel(lambda a, y, x: mixing.sample_box(a, y, x, height, width, inside=inside))
    got = [to_np(t) for t in box(area, u_y, u_x)]
    want = numpy_box(area, u_y.astype(np.float64), u_x.astype(np.float64), height, width,
                     inside)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    y0, y1, x0, x1 = got
    assert np.all((0 <= y0) & (y0 <= y1) & (y1 <= height))
    assert np.all((0 <= x0) & (x0 <= x1) & (x1 <= width))
    if inside:  # nothing clipped: the sides are the rounded target sides
        np.testing.assert_array_equal(y1 - y0, np.round(np.sqrt(area) * height))


def test_box_fraction_and_masks_count_pixels_exactly():
    y0, y1, x0, x1 = (np.array(v, "int32") for v in ([0, 2, 3], [3, 2, 7], [1, 0, 4], [5, 4, 5]))
    both = compile_kernel(lambda *b: (mixing.box_fraction(*b, 7, 5), mixing.box_masks(*b, 7, 5)))
    frac, (rows, cols) = both(y0, y1, x0, x1)
    frac, rows, cols = to_np(frac), to_np(rows), to_np(cols)
    assert rows.shape == (3, 7) and cols.shape == (3, 5) and rows.dtype == bool
    for b in range(3):
        grid = np.zeros((7, 5), bool)
        grid[y0[b]:y1[b], x0[b]:x1[b]] = True
        np.testing.assert_array_equal(rows[b][:, None] & cols[b][None, :], grid)
        assert frac[b] == np.float32(grid.sum() / 35)


def test_dense_and_smooth_labels():
    np.testing.assert_array_equal(to_np(mixing.dense_labels(np.array([[2], [0]]), 4)),
                                  np.eye(4, dtype="float32")[[2, 0]])
    soft = np.array([[0.3, 0.7]], "float64")
    out = mixing.dense_labels(soft, None)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    smoothed = to_np(mixing.smooth_labels(np.eye(4, dtype="float32"), 0.1))
    np.testing.assert_allclose(smoothed, 0.9 * np.eye(4) + 0.1 / 4, rtol=1e-6)
    binary = to_np(mixing.smooth_labels(np.array([[1.0], [0.0]], "float32"), 0.2))
    np.testing.assert_allclose(binary, [[0.9], [0.1]], rtol=1e-6)  # K = 2, as Keras BCE


def test_dense_labels_sparse_without_num_classes_raises():
    with pytest.raises(ValueError, match="num_classes"):
        mixing.dense_labels(np.array([0, 1]), None)
