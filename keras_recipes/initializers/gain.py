"""`gain`: the standard-deviation multiplier of an activation, in two named conventions."""

from __future__ import annotations

import math

__all__ = ["gain", "CONVENTIONS"]

CONVENTIONS = ("glorot", "torch")

_LINEAR = ("linear", "identity", "none")


def check_negative_slope(negative_slope) -> float:
    if (
        isinstance(negative_slope, bool)
        or not isinstance(negative_slope, (int, float))
        or not math.isfinite(negative_slope)
        or negative_slope < 0
    ):
        raise ValueError(
            "Invalid value for argument `negative_slope`. Expected a float >= 0. "
            f"Received: negative_slope={negative_slope!r}"
        )
    return float(negative_slope)


def gain(activation: str | None, convention: str = "glorot", *,
         negative_slope: float = 0.01) -> float:
    """Standard-deviation multiplier of an activation for weight initialization.

    A layer initialized with `std = gain · sqrt(1 / fan)` (He) or
    `std = gain · sqrt(2 / (fan_in + fan_out))` (Glorot/Xavier) keeps the
    variance of its signal roughly constant from layer to layer. The value
    depends on which derivation you follow, so the convention is explicit:

    | activation | `"glorot"` | `"torch"` |
    |---|---|---|
    | linear / identity / None | 1 | 1 |
    | tanh | 1 | 5/3 |
    | sigmoid | 4 | 1 |
    | relu | √2 | √2 |
    | leaky_relu (slope a) | √(2/(1+a²)) | √(2/(1+a²)) |
    | selu | (not defined) | 3/4 |

    ``"glorot"`` is the linear-regime argument of Glorot & Bengio (2010): near
    0, tanh has slope 1, so gain 1; the logistic sigmoid has slope 1/4, so its
    weights must be 4 times larger (the factor 4 of the Glorot/Bengio
    deeplearning.net tutorial). ReLU halves the second moment (He et al. 2015),
    hence √2; leaky ReLU with slope `a` gives √(2/(1+a²)). The course table
    this library grew from gives 1 for sigmoid and 4 for tanh: those two are
    swapped. ``"torch"`` reproduces ``torch.nn.init.calculate_gain`` exactly:
    sigmoid 1, tanh 5/3 (chosen empirically for saturation, not from the slope
    at 0), selu 3/4 (also empirical, pytorch/pytorch#50664).

    Example:

    >>> gain("sigmoid"), gain("tanh"), round(gain("relu"), 4)
    (4.0, 1.0, 1.4142)
    >>> round(gain("tanh", "torch"), 4), gain("sigmoid", "torch")
    (1.6667, 1.0)
    >>> round(gain("leaky_relu", negative_slope=0.2), 4)
    1.3868

    Args:
        activation: activation name (``"linear"``, ``"tanh"``, ``"sigmoid"``,
            ``"relu"``, ``"leaky_relu"``, ``"selu"``; ``None`` means linear).
            Case-insensitive.
        convention: ``"glorot"`` (default) or ``"torch"``.
        negative_slope: slope of ``leaky_relu`` for x < 0. The default 0.01 is
            PyTorch's; Keras's ``LeakyReLU`` layer defaults to 0.3, so pass the
            slope you use.

    Returns:
        The gain, a Python float.

    Raises:
        ValueError: for an unknown activation or convention (or an activation
            the convention does not define, such as ``selu`` under
            ``"glorot"``), or a negative `negative_slope`.

    References:
        - Glorot & Bengio, "Understanding the difficulty of training deep
          feedforward neural networks", AISTATS 2010.
        - He et al., "Delving Deep into Rectifiers", ICCV 2015.
        - Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017.
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"Invalid value for argument `convention`. Expected one of {CONVENTIONS}. "
            f"Received: convention={convention!r}"
        )
    slope = check_negative_slope(negative_slope)
    name = "linear" if activation is None else str(activation).lower()
    table = {
        "glorot": {
            "tanh": 1.0,
            "sigmoid": 4.0,
            "relu": math.sqrt(2.0),
            "leaky_relu": math.sqrt(2.0 / (1.0 + slope**2)),
        },
        "torch": {
            "tanh": 5.0 / 3.0,
            "sigmoid": 1.0,
            "relu": math.sqrt(2.0),
            "leaky_relu": math.sqrt(2.0 / (1.0 + slope**2)),
            "selu": 3.0 / 4.0,
        },
    }[convention]
    for linear in _LINEAR:
        table[linear] = 1.0
    if name not in table:
        raise ValueError(
            f"Invalid value for argument `activation`. Expected one of {sorted(table)} "
            f"(convention={convention!r}). Received: activation={activation!r}"
        )
    return table[name]
