"""`Xavier`: Glorot initialization with an explicit activation gain."""

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

__all__ = ["Xavier"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class Xavier(keras.initializers.Initializer):
    """Glorot/Xavier initializer: `std = gain · sqrt(2 / (fan_in + fan_out))`.

    Glorot & Bengio (2010) keep both the forward activations and the backward
    gradients at constant variance by taking the average of the two fans. The
    derivation assumes an activation with slope 1 at 0 (tanh), so tanh has gain
    1; the logistic sigmoid, with slope 1/4, needs gain **4** (`gain()` states
    both conventions; the course table swaps sigmoid and tanh, giving tanh 4
    and sigmoid 1, which is wrong). Keras's `GlorotNormal`/`GlorotUniform` are
    the gain-1 case and have no gain argument.

    The empirical standard deviation of the drawn weights equals the formula
    for every distribution: ``"normal"`` draws N(0, std²); ``"truncated_normal"``
    cuts at ±2σ and rescales by 1/0.8796 (as Keras's `GlorotNormal` does);
    ``"uniform"`` draws U(-limit, limit) with `limit = √3 · std`, i.e.
    `gain · sqrt(6 / (fan_in + fan_out))`. Fans follow Keras's kernel layout
    (see `compute_fans`).

    Randomness comes from a `keras.random.SeedGenerator` built from `seed`:
    the same seed gives the same sequence of draws, and successive calls give
    new values (two layers sharing one instance get different kernels).

    Example:

    >>> import keras
    >>> init = Xavier("sigmoid", seed=1)
    >>> round(init.stddev((300, 100)), 4)  # 4 * sqrt(2 / 400)
    0.2828
    >>> layer = keras.layers.Dense(100, activation="sigmoid", kernel_initializer=init)

    Args:
        activation: activation that follows the layer, looked up with
            `gain(activation, convention)`. Default (neither `activation` nor
            `gain` given): tanh, gain 1, Glorot's own setting.
        gain: the multiplier itself (float > 0), instead of `activation`.
        distribution: ``"normal"`` (default), ``"truncated_normal"`` or
            ``"uniform"``.
        convention: ``"glorot"`` (default) or ``"torch"``; see `gain`.
        negative_slope: slope of ``leaky_relu`` (default 0.01).
        seed: int or None.

    Call arguments:
        shape: the kernel shape, ``(*receptive_field, in, out)``.
        dtype: a float dtype (default: Keras's float type).

    Returns:
        A tensor of `shape`.

    Raises:
        ValueError: for both `activation` and `gain`, an unknown activation,
            distribution or convention, `gain <= 0`, or a non-int seed.

    References:
        - Glorot & Bengio, "Understanding the difficulty of training deep
          feedforward neural networks", AISTATS 2010.
    """

    def __init__(
        self,
        activation: str | None = None,
        *,
        gain: float | None = None,
        distribution: str = "normal",
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
        self.convention = check_choice(convention, "convention", CONVENTIONS)
        self.negative_slope = check_negative_slope(negative_slope)
        self.seed = check_seed(seed)
        if self.gain is not None:
            self._gain = self.gain
        else:
            self._gain = activation_gain(
                activation or "tanh", convention, negative_slope=self.negative_slope
            )
        self._generator = keras.random.SeedGenerator(seed)

    def stddev(self, shape) -> float:
        """The target standard deviation for a kernel of `shape`."""
        fan_in, fan_out = compute_fans(shape)
        return self._gain * math.sqrt(2.0 / max(1, fan_in + fan_out))

    def __call__(self, shape, dtype=None):
        return draw_with_std(shape, self.stddev(shape), self.distribution, self._generator, dtype)

    def get_config(self) -> dict:
        return {
            "activation": self.activation,
            "gain": self.gain,
            "distribution": self.distribution,
            "convention": self.convention,
            "negative_slope": self.negative_slope,
            "seed": self.seed,
        }
