"""`He`: Kaiming initialization for rectifiers, fan-in by default."""

from __future__ import annotations

import math

import keras

from keras_recipes.initializers.gain import CONVENTIONS, check_negative_slope
from keras_recipes.initializers.gain import gain as activation_gain
from keras_recipes.initializers.scaling import (
    DISTRIBUTIONS,
    check_choice,
    check_gain,
    check_seed,
    compute_fans,
    draw_with_std,
)

__all__ = ["He"]

MODES = ("fan_in", "fan_out")


@keras.saving.register_keras_serializable(package="keras_recipes")
class He(keras.initializers.Initializer):
    """He/Kaiming initializer: `std = gain / sqrt(fan)`, `fan = fan_in` by default.

    He et al. (2015) derive, for ReLU, `Var(w) = 2 / n_in`: the **fan-in**,
    not Glorot's fan average (a common mix-up). ``mode="fan_in"`` preserves the
    variance of the activations in the forward pass, ``mode="fan_out"`` that of
    the gradients in the backward pass. For ReLU the gain is √2, for leaky ReLU
    with slope `a` it is √(2/(1+a²)); ``activation="linear"`` (gain 1) gives
    LeCun initialization. Other activations are looked up with
    `gain(activation, convention)`.

    Keras's `HeNormal` draws from a normal truncated at ±2σ and divides by
    0.8796 so the effective std equals `sqrt(2 / fan_in)`; here
    ``"normal"`` draws an untruncated normal, ``"truncated_normal"`` does what
    Keras does, ``"uniform"`` draws U(-√3·std, √3·std). In all three the
    empirical standard deviation equals the formula.

    Example:

    >>> init = He(seed=0)
    >>> round(init.stddev((3, 3, 64, 128)), 4)  # sqrt(2 / (3 * 3 * 64))
    0.0589
    >>> round(He("leaky_relu", negative_slope=0.2, mode="fan_out").stddev((50, 200)), 4)
    0.0981

    Args:
        activation: activation that follows the layer. Default (neither
            `activation` nor `gain` given): relu, gain √2.
        gain: the multiplier itself (float > 0), instead of `activation`.
        distribution: ``"normal"`` (default), ``"truncated_normal"`` or
            ``"uniform"``.
        mode: ``"fan_in"`` (default) or ``"fan_out"``.
        convention: ``"glorot"`` (default) or ``"torch"``; see `gain` (they
            agree on linear, relu and leaky_relu).
        negative_slope: slope of ``leaky_relu`` (default 0.01).
        seed: int or None.

    Call arguments:
        shape: the kernel shape, ``(*receptive_field, in, out)``.
        dtype: a float dtype (default: Keras's float type).

    Returns:
        A tensor of `shape`.

    Raises:
        ValueError: for both `activation` and `gain`, an unknown activation,
            distribution, mode or convention, `gain <= 0`, or a non-int seed.

    References:
        - He, Zhang, Ren, Sun, "Delving Deep into Rectifiers: Surpassing
          Human-Level Performance on ImageNet Classification", ICCV 2015.
    """

    def __init__(
        self,
        activation: str | None = None,
        *,
        gain: float | None = None,
        distribution: str = "normal",
        mode: str = "fan_in",
        convention: str = "glorot",
        negative_slope: float = 0.01,
        seed: int | None = None,
    ):
        if activation is not None and gain is not None:
            raise ValueError(
                "Invalid value for arguments `activation` and `gain`. Expected one of them. "
                f"Received: activation={activation!r}, gain={gain!r}"
            )
        self.activation = activation
        self.gain = check_gain(gain)
        self.distribution = check_choice(distribution, "distribution", DISTRIBUTIONS)
        self.mode = check_choice(mode, "mode", MODES)
        self.convention = check_choice(convention, "convention", CONVENTIONS)
        self.negative_slope = check_negative_slope(negative_slope)
        self.seed = check_seed(seed)
        if self.gain is not None:
            self._gain = self.gain
        else:
            self._gain = activation_gain(
                activation or "relu", convention, negative_slope=self.negative_slope
            )
        self._generator = keras.random.SeedGenerator(seed)

    def stddev(self, shape) -> float:
        """The target standard deviation for a kernel of `shape`."""
        fan_in, fan_out = compute_fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        return self._gain / math.sqrt(max(1, fan))

    def __call__(self, shape, dtype=None):
        return draw_with_std(shape, self.stddev(shape), self.distribution, self._generator, dtype)

    def get_config(self) -> dict:
        return {
            "activation": self.activation,
            "gain": self.gain,
            "distribution": self.distribution,
            "mode": self.mode,
            "convention": self.convention,
            "negative_slope": self.negative_slope,
            "seed": self.seed,
        }
