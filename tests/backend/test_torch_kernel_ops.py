"""The mixing kernel's torch op namespace gives exactly what keras.ops gives."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_recipes.backend import augmentation
from keras_recipes.layers import base_mixing_layer as bml

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the torch namespace exists on torch only (other backends use keras.ops or XLA)",
)

BASE = bml._MixSpec(has_mix=True, has_cut=False, mode="elem", use_prob=False, inside=False,
                    data_format="channels_last", compute_dtype="float32", classes=(None,))
SPECS = {
    "mixup": BASE,
    "cutmix": dataclasses.replace(BASE, has_mix=False, has_cut=True),
    "both_prob_inside": dataclasses.replace(BASE, has_cut=True, use_prob=True, inside=True),
    "batch_mode": dataclasses.replace(BASE, has_cut=True, mode="batch"),
    "channels_first_sparse": dataclasses.replace(
        BASE, has_cut=True, data_format="channels_first", classes=(5,)),
    "float16": dataclasses.replace(BASE, has_cut=True, compute_dtype="float16"),
}


def _inputs(name, dtype, rng):
    spec = SPECS[name]
    shape = (9, 3, 7, 5) if spec.data_format == "channels_first" else (9, 7, 5, 3)
    images = rng.random(shape)
    images = (images * 255).astype("uint8") if dtype == "uint8" else images.astype(dtype)
    if spec.classes == (5,):
        labels = rng.integers(0, 5, (9,)).astype("int32")
    else:
        labels = np.eye(5, dtype="float32")[rng.integers(0, 5, 9)]
    masks = rng.integers(0, 4, shape[:3] if spec.data_format == "channels_last"
                         else (9,) + shape[2:]).astype("int32")
    u = rng.random((9, bml._N_UNIFORMS)).astype("float32")
    u[2:, 0] = 0.0  # a uniform of exactly 0 (the Gamma sampler's clamp) ...
    u[1, :] = np.nextafter(np.float32(1), np.float32(0))  # ... and the largest below 1
    params = np.array([0.3, 1.0, 0.5, 0.7, 0.2, 0.6, 0.1], "float32")
    return images, labels, masks, u, params


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_kernel_on_torch_ops_equals_kernel_on_keras_ops(name, dtype):
    ops = augmentation.kernel_ops()
    assert isinstance(ops, augmentation._TorchKernelOps)
    rng = np.random.default_rng(sorted(SPECS).index(name))
    changed = 0
    for _ in range(3):
        images, labels, masks, u, params = _inputs(name, dtype, rng)
        args = [keras.ops.convert_to_tensor(a) for a in (images, labels, masks, u, params)]
        got = bml._kernel(SPECS[name], args[0], [args[1]], args[2], args[3], args[4], ops=ops)
        want = bml._kernel(SPECS[name], args[0], [args[1]], args[2], args[3], args[4],
                           ops=augmentation.KERNEL_OPS)
        for g, w in zip(keras.tree.flatten(got), keras.tree.flatten(want), strict=True):
            assert g.dtype == w.dtype and tuple(g.shape) == tuple(w.shape)
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(g),
                                          keras.ops.convert_to_numpy(w))
        changed += not np.array_equal(keras.ops.convert_to_numpy(got[0]), images)
    assert changed  # the kernel did mix something (a tiny weight may round away in uint8)


def test_ops_outside_the_fast_path_go_through_keras_ops():
    ops = augmentation.kernel_ops()
    a = np.array([0.5, -1.0, 2.0], "float32")  # NumPy, not a torch tensor
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ops.maximum(a, 0.0)),
                                  np.maximum(a, 0.0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ops.clip(a, -0.5, 1.0)),
                                  np.clip(a, -0.5, 1.0))
    t = keras.ops.convert_to_tensor(a)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ops.minimum(t, 0.25)),
                                  np.minimum(a, 0.25))
    assert ops.argsort(t).dtype == keras.ops.argsort(t).dtype
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ops.argsort(t)), np.argsort(a))
