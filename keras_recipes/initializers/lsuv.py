"""`lsuv`: layer-sequential unit-variance initialization (Mishkin & Matas, 2016)."""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_recipes.initializers.probing import Extractors, layer_sites, site_output

__all__ = ["lsuv"]

_TARGETS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def _check_positive(value, name: str, kind: type) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float) if kind is float else int)
        and math.isfinite(value)
        and value > 0
    )
    if not ok:
        expected = "a float > 0" if kind is float else "an int > 0"
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. "
            f"Received: {name}={value!r}"
        )


def _orthonormal(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A random matrix with orthonormal columns (or rows), reshaped to `shape` (Saxe et al.).

    The kernel is flattened to ``(prod(shape[:-1]), shape[-1])`` as Keras's
    `Orthogonal` does; QR of a Gaussian matrix with the signs of R's diagonal
    folded in gives a uniformly (Haar) distributed orthonormal basis. Plain
    NumPy: it runs once per layer, outside any graph.
    """
    rows, cols = math.prod(shape[:-1]), shape[-1]
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def _pre_activation_variance(site, x, extractors) -> float:
    layer = site.layer
    activation = getattr(layer, "activation", None)
    if activation is not None:
        layer.activation = keras.activations.linear
    try:
        out = site_output(site, x, extractors)
    finally:
        if activation is not None:
            layer.activation = activation
    return float(np.var(out.astype("float64")))


def lsuv(
    model: keras.Model,
    x,
    *,
    tolerance: float = 0.1,
    max_iterations: int = 10,
    seed: int | None = None,
) -> list[dict]:
    """Layer-sequential unit-variance (LSUV) initialization of a model, in place.

    Mishkin & Matas (2016): (1) give every Dense/Conv kernel an orthonormal
    start (Saxe et al. 2014), then (2) from the first layer to the last, run
    the batch `x` through the model, measure the variance of the layer's output
    and divide the kernel by its square root, repeating until the variance is
    within ``1 ± tolerance`` or `max_iterations` rescalings were made. Earlier
    layers are final before a later one is measured, so each layer sees the
    signal the finished earlier layers produce.

    The variance is that of the layer's *pre-activation* output `x·W + b`,
    over every element of the batch output: the output blob of a convolution
    or inner-product layer in the paper's Caffe networks, where the
    nonlinearity is a layer of its own. A fused activation
    (``Dense(..., activation="tanh")``) is switched off while measuring and
    restored afterwards. (Measuring after the activation cannot work for
    bounded activations: a tanh output has variance < 1 for any weights.)
    Forward passes run in inference mode (dropout off, batch norm on its
    moving statistics). Biases are left as they are. Layers whose kernel is
    frozen (``trainable=False``) and layers other than Dense, EinsumDense and
    Conv/ConvTranspose are left untouched. Nested Functional/Sequential models
    are entered.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((16,)),  # lsuv sets the kernels itself
    ...     keras.layers.Dense(32, activation="tanh", kernel_initializer="zeros", name="a"),
    ...     keras.layers.Dense(32, activation="tanh", kernel_initializer="zeros", name="b")])
    >>> x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    >>> report = lsuv(model, x, tolerance=0.05, seed=0)
    >>> [(r["layer"], r["converged"]) for r in report]
    [('a', True), ('b', True)]
    >>> all(abs(r["variance"] - 1) <= 0.05 for r in report)
    True

    Args:
        model: a built Functional or Sequential ``keras.Model``.
        x: one batch of inputs (big enough for a stable variance, e.g. 256
            samples), NumPy or backend tensors.
        tolerance: stop rescaling a layer when ``|Var - 1| <= tolerance``.
        max_iterations: most rescalings per layer.
        seed: seed of the orthonormal starts (int or None; drawn with
            ``numpy.random.default_rng(seed)``, not the global NumPy state).

    Returns:
        One dict per processed layer, in order: ``layer`` (path), ``class``,
        ``variance_initial`` (pre-activation output variance after the
        orthonormal start),
        ``variance`` (final), ``iterations`` (rescalings made), ``scale`` (the
        factor the orthonormal kernel was multiplied by in total) and
        ``converged`` (``|variance - 1| <= tolerance``).

    Raises:
        ValueError: if the model is not a built Functional/Sequential model, or
            `tolerance` / `max_iterations` are not positive.

    References:
        - Mishkin & Matas, "All you need is a good init", ICLR 2016.
        - Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics
          of learning in deep linear neural networks", ICLR 2014.
    """
    _check_positive(tolerance, "tolerance", float)
    _check_positive(max_iterations, "max_iterations", int)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            f"Invalid value for argument `seed`. Expected an int or None. Received: seed={seed!r}"
        )
    sites = layer_sites(model)
    rng = np.random.default_rng(seed)
    extractors = Extractors()
    report = []
    for site in sites:
        layer = site.layer
        kernel = getattr(layer, "kernel", None)
        if not isinstance(layer, _TARGETS) or kernel is None or not layer.trainable:
            continue
        if len(kernel.shape) < 2:
            continue
        start = _orthonormal(tuple(kernel.shape), rng)
        kernel.assign(start.astype(keras.backend.standardize_dtype(kernel.dtype)))
        variance = _pre_activation_variance(site, x, extractors)
        initial, scale, iterations = variance, 1.0, 0
        while abs(variance - 1.0) > tolerance and iterations < max_iterations:
            if not math.isfinite(variance) or variance < 1e-12:  # dead or broken layer
                break
            scale /= math.sqrt(variance)
            kernel.assign((start * scale).astype(keras.backend.standardize_dtype(kernel.dtype)))
            iterations += 1
            variance = _pre_activation_variance(site, x, extractors)
        report.append(
            {
                "layer": site.path,
                "class": type(layer).__name__,
                "variance_initial": initial,
                "variance": variance,
                "iterations": iterations,
                "scale": scale,
                "converged": abs(variance - 1.0) <= tolerance,
            }
        )
    return report
