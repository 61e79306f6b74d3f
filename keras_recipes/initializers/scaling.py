"""Shared math of `Xavier` and `He`: fans of a kernel shape, and drawing with a given std."""

from __future__ import annotations

import math

import keras

__all__ = ["DISTRIBUTIONS", "TRUNCATED_NORMAL_STD", "compute_fans", "draw_with_std"]

DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")

# Standard deviation of a unit normal truncated to [-2, 2] (where
# `keras.random.truncated_normal` cuts): sampling with stddev s / 0.8796...
# gives an effective std of exactly s (Keras's GlorotNormal/HeNormal do this;
# a plain `TruncatedNormal(stddev=s)` gives 0.88 s).
TRUNCATED_NORMAL_STD = 0.87962566103423978


def compute_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a Keras kernel shape.

    Keras kernels are laid out ``(*receptive_field, in, out)``: Dense
    ``(in, out)``, Conv2D ``(kh, kw, in, out)``. Then ``fan_in = in · Π(rf)``
    and ``fan_out = out · Π(rf)``. A 1-D shape has ``fan_in = fan_out = n``.
    (PyTorch stores ``(out, in, kh, kw)``; the fans are the same numbers.)

    Example:

    >>> compute_fans((3, 3, 16, 32)), compute_fans((100, 10)), compute_fans((7,))
    ((144, 288), (100, 10), (7, 7))
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of {tuple(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            f"Invalid value for argument `seed`. Expected an int or None. Received: seed={seed!r}"
        )
    return seed


def check_gain(value):
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"Invalid value for argument `gain`. Expected a float > 0. Received: gain={value!r}"
        )
    return float(value)


def draw_with_std(shape, std: float, distribution: str, seed, dtype=None):
    """Draws a tensor of `shape` with mean 0 and standard deviation `std`.

    ``"normal"``: N(0, std²). ``"truncated_normal"``: normal cut at ±2 of its
    own std, scaled by 1/0.8796 so the result's std is `std`. ``"uniform"``:
    U(-√3·std, √3·std), whose std is `std`.

    The values are drawn as a flat vector and reshaped: the same numbers, and
    on JAX one compiled sampler per element count instead of one per shape
    (compiling a threefry sampler takes seconds on CPU).
    """
    shape = tuple(int(d) for d in shape)
    flat = (math.prod(shape),)
    if distribution == "normal":
        values = keras.random.normal(flat, stddev=std, dtype=dtype, seed=seed)
    elif distribution == "truncated_normal":
        values = keras.random.truncated_normal(
            flat, stddev=std / TRUNCATED_NORMAL_STD, dtype=dtype, seed=seed
        )
    else:
        limit = math.sqrt(3.0) * std
        values = keras.random.uniform(flat, minval=-limit, maxval=limit, dtype=dtype, seed=seed)
    return keras.ops.reshape(values, shape)
