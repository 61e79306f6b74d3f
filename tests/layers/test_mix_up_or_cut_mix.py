"""MixUpOrCutMix: per-sample switching, prob, labels consistent with pixels."""

import keras
import numpy as np
import pytest

from keras_recipes.layers import MixUpOrCutMix
from tests.contract import run_layer_test
from tests.layers.mixing_reference import (
    assert_every_argument_round_trips,
    ks_distance,
    labelled_images,
    partner_of,
    to_np,
)


def _kinds(x_in, x_out, y_out):
    """Per sample: 'same', 'mix' (all pixels blended) or 'cut' (a box of partner pixels)."""
    partners = partner_of(y_out)
    values = x_in[:, 0, 0, 0].astype(np.float64)  # image i is constant
    kinds = []
    for i in range(len(x_in)):
        own, theirs = x_out[i] == x_in[i], x_out[i] == x_in[partners[i]]
        if partners[i] == i or np.all(own):
            kinds.append("same")
        elif np.all(own | theirs):
            kinds.append("cut")
            np.testing.assert_allclose(y_out[i, partners[i]], theirs[..., 0].mean(), atol=1e-6)
        else:
            kinds.append("mix")
            np.testing.assert_allclose(x_out[i], y_out[i] @ values, rtol=1e-5)
    return np.array(kinds)


def test_layer_contract(tmp_path):
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    y = np.array([[0], [1], [2], [1]])
    run_layer_test(
        MixUpOrCutMix, {"num_classes": 3, "seed": 1, "prob": 0.9}, (x, y),
        call_kwargs={"training": True}, expected_output_shape=[(4, 8, 8, 3), (4, 3)],
        tmp_path=tmp_path, cross_backend=False,
        mixed_precision=("mixed_float16",),  # bfloat16: in MixUp's contract (shared code)
        output_dtypes_under_policy=lambda p: [keras.DTypePolicy(p).compute_dtype, "float32"],
    )


def _draws(layer, calls, with_labels=False):
    """Kinds of `calls` x 7 samples (the shape of the other mixing tests: one compile)."""
    x, y = labelled_images(7, 5, 6)
    kinds, labels = [], []
    for _ in range(calls):
        x_out, y_out = (to_np(t) for t in layer(x, y))
        np.testing.assert_allclose(y_out.sum(axis=1), 1.0, atol=1e-6)
        kinds.append(_kinds(x, x_out, y_out))
        labels.append(y_out)
    return (np.array(kinds), np.array(labels)) if with_labels else np.array(kinds)


def test_switch_and_prob_frequencies_and_each_kind_its_own_alpha():
    layer = MixUpOrCutMix(mixup_alpha=8.0, cutmix_alpha=1.0, switch_prob=0.3, prob=0.8,
                          seed=3)
    kinds, labels = _draws(layer, 60, with_labels=True)  # 420 samples
    kinds, labels = kinds.ravel(), labels.reshape(-1, 7)
    # A sample mixed with itself (a fixed point of the permutation, 1/7) looks unmixed.
    mixed = np.mean(kinds != "same")
    assert abs(mixed - 0.8 * 6 / 7) < 0.07, mixed
    assert abs(np.mean(kinds[kinds != "same"] == "cut") - 0.3) < 0.08
    # MixUp samples draw λ ~ Beta(8, 8) (CutMix's α = 1 would be flat).
    own = labels[np.arange(len(labels)), np.tile(np.arange(7), 60)]
    lam = own[kinds == "mix"]
    ref = np.random.default_rng(0).beta(8.0, 8.0, 20000)
    assert lam.size > 150 and ks_distance(lam, ref) < 0.15


@pytest.mark.parametrize("switch_prob, kind", [(0.0, "mix"), (1.0, "cut")])
def test_switch_prob_zero_and_one(switch_prob, kind):
    layer = MixUpOrCutMix(mixup_alpha=1.0, switch_prob=switch_prob, seed=2)
    kinds = _draws(layer, 5).ravel()
    assert set(kinds) <= {kind, "same"} and np.mean(kinds == kind) > 0.6


def test_batch_mode_one_kind_for_the_batch():
    layer = MixUpOrCutMix(mixup_alpha=1.0, mode="batch", seed=4)
    per_call = [set(k) - {"same"} for k in _draws(layer, 10)]
    assert all(len(k) <= 1 for k in per_call)
    assert set().union(*per_call) == {"mix", "cut"}


@pytest.mark.parametrize("kwargs, match", [
    ({"mixup_alpha": 0}, "`mixup_alpha`"),
    ({"cutmix_alpha": -2}, "`cutmix_alpha`"),
    ({"switch_prob": 1.5}, "`switch_prob`. Expected a float in"),
    ({"prob": -0.1}, "`prob`. Expected a float in"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixUpOrCutMix(**kwargs)


def test_integer_masks_need_switch_prob_one():
    x, y = labelled_images(4, 8, 8, channels=1)
    masks = np.zeros((4, 8, 8), "int32")
    with pytest.raises(ValueError, match="integer class masks"):
        MixUpOrCutMix()({"images": x, "labels": y, "segmentation_masks": masks})
    out = MixUpOrCutMix(switch_prob=1.0, seed=0)(
        {"images": x, "labels": y, "segmentation_masks": masks})
    assert to_np(out["segmentation_masks"]).dtype == np.int32


def test_config_round_trips_every_argument():
    assert_every_argument_round_trips(
        MixUpOrCutMix, {"mixup_alpha": 0.3, "cutmix_alpha": 0.8, "switch_prob": 0.3, "prob": 0.9,
         "mode": "batch", "num_classes": {"a": 3, "b": 4}, "label_smoothing": 0.1, "seed": 5,
         "data_format": "channels_first"})
