"""keras_recipes.backend.device: device kind, description, mixed-precision policy, threads."""

import os

import keras
import pytest

from keras_recipes.backend.device import (
    accelerator,
    device_description,
    mixed_precision_policy,
    set_num_threads,
)


def test_device_kind_description_and_policy_agree(keras_backend):
    kind = accelerator()
    assert kind in ("cpu", "gpu", "tpu")
    text = device_description()
    if kind == "cpu":
        assert text.startswith(f"{os.cpu_count()}-core CPU")
        assert mixed_precision_policy() == "mixed_bfloat16"
    elif kind == "gpu":
        assert "CPU" not in text
        assert mixed_precision_policy() == "mixed_float16"
    # The policy is one Keras accepts.
    assert keras.DTypePolicy(mixed_precision_policy()).variable_dtype == "float32"


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_set_num_threads_rejects_non_positive_ints(n, keras_backend):
    with pytest.raises(ValueError, match="Expected an int >= 1"):
        set_num_threads(n)


def test_set_num_threads_applies_on_torch(keras_backend):
    if keras_backend != "torch":
        pytest.skip("only torch exposes a thread count to read back at any time")
    import torch

    before = torch.get_num_threads()
    try:
        set_num_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
