"""Compares the GradientHistogram events of two runs (imported by test subprocesses too)."""

from __future__ import annotations

import numpy as np

from keras_recipes.callbacks.event_writer import read_histograms, read_scalars

# The model the subprocess tests build: Sequential "m" of Dense "a" (tanh) and Dense "d".
MLP_NORM_TAGS = ["gradient_norm/global", "gradient_norm/m/a/bias", "gradient_norm/m/a/kernel",
                 "gradient_norm/m/d/bias", "gradient_norm/m/d/kernel"]


def assert_same_gradient_logs(got_train: str, want_train: str, norm_tags: list[str],
                              steps: list[int]) -> None:
    """Both folders hold exactly `norm_tags` at `steps`, with norms equal within rel 1e-5, and
    the same histograms (one per weight): edges within 1e-5, bucket counts exact."""
    got, want = read_scalars(got_train), read_scalars(want_train)
    for scalars in (got, want):
        assert sorted(t for t in scalars if t.startswith("gradient_norm/")) == norm_tags
    for tag in norm_tags:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]] == steps, tag
        np.testing.assert_allclose([v for _, v in got[tag]], [v for _, v in want[tag]],
                                   rtol=1e-5, err_msg=tag)
    got_h, want_h = read_histograms(got_train), read_histograms(want_train)
    assert sorted(got_h) == sorted(want_h) == sorted(
        t.replace("gradient_norm/", "gradients/") for t in norm_tags if t.count("/") > 1)
    for tag in want_h:
        for (_, a), (_, b) in zip(got_h[tag], want_h[tag], strict=True):
            np.testing.assert_allclose(a[:, :2], b[:, :2], rtol=1e-5, atol=1e-7, err_msg=tag)
            np.testing.assert_array_equal(a[:, 2], b[:, 2], err_msg=tag)
