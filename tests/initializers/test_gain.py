"""gain(): both conventions, number by number (docs/techniques.md §3), and the errors."""

import math

import pytest

from keras_recipes.initializers import gain

GLOROT = {"linear": 1.0, "tanh": 1.0, "sigmoid": 4.0, "relu": math.sqrt(2.0)}
TORCH = {"linear": 1.0, "tanh": 5.0 / 3.0, "sigmoid": 1.0, "relu": math.sqrt(2.0), "selu": 0.75}


@pytest.mark.parametrize("activation, expected", sorted(GLOROT.items()))
def test_glorot_convention(activation, expected):
    assert gain(activation) == pytest.approx(expected, rel=1e-12)
    assert gain(activation.upper(), "glorot") == pytest.approx(expected, rel=1e-12)


def test_course_table_sigmoid_tanh_swap_is_corrected():
    """The course table gives tanh 4 and sigmoid 1; Glorot's slope argument gives the reverse."""
    assert (gain("tanh"), gain("sigmoid")) == (1.0, 4.0)


@pytest.mark.parametrize("activation, expected", sorted(TORCH.items()))
def test_torch_convention(activation, expected):
    assert gain(activation, "torch") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("convention", ["glorot", "torch"])
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 0.3])
def test_leaky_relu_is_sqrt_2_over_1_plus_a_squared(convention, slope):
    assert gain("leaky_relu", convention, negative_slope=slope) == pytest.approx(
        math.sqrt(2.0 / (1.0 + slope**2)), rel=1e-12
    )


def test_none_and_identity_are_linear():
    assert gain(None) == gain("identity") == gain("linear", "torch") == 1.0


def test_matches_torch_calculate_gain(keras_backend):
    if keras_backend != "torch":
        pytest.skip("torch reference checked in the torch-backend run (importing torch into a "
                    f"{keras_backend} process costs ~10 s)")
    import torch

    for name in ["linear", "sigmoid", "tanh", "relu", "selu"]:
        assert gain(name, "torch") == pytest.approx(torch.nn.init.calculate_gain(name))
    for slope in [0.01, 0.2]:
        assert gain("leaky_relu", "torch", negative_slope=slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope)
        )


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="argument `activation`. Expected one of"):
        gain("swish")


def test_selu_not_defined_in_glorot_convention_raises():
    with pytest.raises(ValueError, match=r"argument `activation`.*convention='glorot'"):
        gain("selu")


def test_unknown_convention_raises():
    with pytest.raises(ValueError, match="argument `convention`. Expected one of"):
        gain("relu", "kaiming")


@pytest.mark.parametrize("slope", [-0.1, float("nan"), "0.2"])
def test_invalid_negative_slope_raises(slope):
    with pytest.raises(ValueError, match="argument `negative_slope`. Expected a float >= 0"):
        gain("leaky_relu", negative_slope=slope)
