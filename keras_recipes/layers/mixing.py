"""Pure math shared by MixUp, CutMix and MixUpOrCutMix.

Small functions of tensors, no state, no randomness of their own: every random
quantity is computed from uniforms in ``[0, 1)`` that the caller draws once
(one ``keras.random.uniform`` call per batch). They compile everywhere
(``jax.jit``, ``tf.function(jit_compile=True)``, ``tf.data``) because they
use only elementwise math, comparisons, ``argmax``/``argsort``, ``one_hot`` and
``take``. Each takes ``ops=keras.ops``; the layers pass a TensorFlow namespace
instead inside a ``tf.data`` pipeline under another backend.

- ``sample_beta``: ``λ ~ Beta(α, α)`` for any ``α > 0``, as
  ``sigmoid(log G1 - log G2)`` with ``G ~ Gamma(α)`` sampled in log space
  (Marsaglia-Tsang with a fixed number of proposals, and the ``α < 1`` boost
  ``G(α) = G(α + 1)·U^(1/α)``). ``keras.random.beta`` returns exactly 0.5 for
  small ``α`` and has no XLA kernel on TensorFlow; this has neither problem.
- ``sample_box``: an integer box of a target area fraction; ``box_fraction``:
  the exact fraction of pixels it covers; ``box_masks``: its row and column
  masks (the image mask is their broadcast product, never a full array).
- ``dense_labels`` / ``smooth_labels`` / ``mix_targets``: sparse to one-hot,
  label smoothing, and the label mix ``y + w·(y[partner] - y)``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = [
    "BETA_UNIFORMS",
    "GAMMA_PROPOSALS",
    "box_fraction",
    "box_masks",
    "dense_labels",
    "is_sparse_labels",
    "mix_targets",
    "sample_beta",
    "sample_box",
    "sample_log_gamma",
    "smooth_labels",
]

#: Marsaglia-Tsang proposals per Gamma draw. The acceptance rate is >= 0.95
#: for the boosted shape ``α + 1 >= 1``, so all 6 fail with probability < 2e-8
#: (then the mode ``d`` is returned).
GAMMA_PROPOSALS = 6
#: Uniforms consumed by one ``sample_log_gamma`` draw.
GAMMA_UNIFORMS = 2 * GAMMA_PROPOSALS + 1
#: Uniforms consumed by one ``sample_beta`` draw (two Gamma draws).
BETA_UNIFORMS = 2 * GAMMA_UNIFORMS

_TINY = 1e-30


def sample_log_gamma(u, alpha: float, ops=keras.ops):
    """``log G`` with ``G ~ Gamma(alpha, 1)``, computed from uniforms.

    Marsaglia & Tsang (2000) for the shape ``a = alpha + 1`` (Box-Muller
    normals, ``GAMMA_PROPOSALS`` proposals evaluated at once, the first
    accepted one kept), then the boost ``log G(α) = log G(α+1) + log(U)/α``,
    which is exact for every ``α > 0`` and never underflows in log space.

    Example:

    >>> import numpy as np
    >>> u = np.random.default_rng(0).random((20000, GAMMA_UNIFORMS)).astype("float32")
    >>> g = np.exp(keras.ops.convert_to_numpy(sample_log_gamma(u, 2.0)))
    >>> round(float(g.mean()), 1)  # E[Gamma(2)] = 2
    2.0

    Args:
        u: float32 tensor of shape ``(..., GAMMA_UNIFORMS)``, uniforms in ``[0, 1)``.
        alpha: the shape parameter > 0: a float, or a float32 tensor that
            broadcasts against ``u.shape[:-1]``.
        ops: the op namespace (``keras.ops``).

    Returns:
        float32 tensor of shape ``u.shape[:-1]``.
    """
    k = GAMMA_PROPOSALS
    half = k // 2
    u = ops.maximum(1.0 - ops.convert_to_tensor(u, "float32"), _TINY)  # (0, 1]: logs stay finite
    alpha = ops.convert_to_tensor(alpha, "float32")
    d = alpha + 2.0 / 3.0
    dk = ops.expand_dims(d, -1)  # broadcasts against the proposals axis
    radius = ops.sqrt(-2.0 * ops.log(u[..., :half]))
    angle = (2.0 * math.pi) * u[..., half:k]
    z = ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)], axis=-1)
    one_plus = 1.0 + z / ops.sqrt(9.0 * dk)
    log_v = 3.0 * ops.log(ops.maximum(one_plus, _TINY))
    v = ops.exp(log_v)
    accept = ops.logical_and(
        ops.greater(one_plus, 0.0),
        ops.less(ops.log(u[..., k : 2 * k]), 0.5 * z * z + dk - dk * v + dk * log_v),
    )
    # The first accepted proposal: scores k, k-1, ..., 1 where accepted, 0 elsewhere.
    rank = ops.convert_to_tensor(np.arange(k, 0, -1, dtype="float32"))
    score = ops.where(accept, rank, 0.0)
    first = ops.one_hot(ops.argmax(score, axis=-1), k, dtype="float32")
    chosen = ops.sum(first * log_v, axis=-1)
    chosen = ops.where(ops.greater(ops.max(score, axis=-1), 0.0), chosen, 0.0)
    return ops.log(d) + chosen + ops.log(u[..., 2 * k]) / alpha


def sample_beta(u, alpha: float, ops=keras.ops):
    """``(λ, 1 - λ)`` with ``λ ~ Beta(alpha, alpha)``, computed from uniforms.

    ``λ = sigmoid(log G1 - log G2)`` and ``1 - λ = sigmoid(log G2 - log G1)``,
    both computed directly (so tiny values of either keep full precision).

    Example:

    >>> import numpy as np
    >>> u = np.random.default_rng(0).random((20000, BETA_UNIFORMS)).astype("float32")
    >>> lam, rest = (keras.ops.convert_to_numpy(t) for t in sample_beta(u, 1.0))
    >>> round(float(lam.mean()), 2), round(float(lam.var()), 3)  # Beta(1,1): 1/2, 1/12
    (0.5, 0.083)
    >>> bool(np.allclose(lam + rest, 1.0))
    True

    Args:
        u: float32 tensor of shape ``(..., BETA_UNIFORMS)``, uniforms in ``[0, 1)``.
        alpha: the concentration ``α > 0``: a float, or a float32 tensor that
            broadcasts against ``u.shape[:-1]`` (one ``α`` per column, say).
        ops: the op namespace (``keras.ops``).

    Returns:
        Two float32 tensors of shape ``u.shape[:-1]``: ``λ`` and ``1 - λ``.
    """
    u = ops.convert_to_tensor(u, "float32")
    lead = tuple(-1 if d is None else d for d in u.shape[:-1])  # a dynamic batch: -1
    u = ops.reshape(u, lead + (2, GAMMA_UNIFORMS))  # both Gammas at once
    alpha = ops.expand_dims(ops.convert_to_tensor(alpha, "float32"), -1)
    log_g = sample_log_gamma(u, alpha, ops)
    t = log_g[..., 0] - log_g[..., 1]
    return ops.sigmoid(t), ops.sigmoid(-t)


def sample_box(area, u_y, u_x, height: int, width: int, *, inside: bool = False,
               ops=keras.ops):
    """An integer box ``[y0, y1) × [x0, x1)`` of about ``area·H·W`` pixels.

    Sides ``h = round(H·sqrt(area))``, ``w = round(W·sqrt(area))``. By default
    (the CutMix paper) the centre pixel is uniform over the image and the box
    is clipped to it, so the pasted area can be smaller than asked: use
    ``box_fraction`` for the area actually covered. With ``inside=True`` the
    box is placed uniformly among the positions where it fits whole.

    Example:

    >>> import numpy as np
    >>> area, u = np.array([0.25], "float32"), np.array([0.0], "float32")
    >>> [int(t[0]) for t in sample_box(area, u, u, 8, 8)]  # centre (0, 0): clipped
    [0, 2, 0, 2]
    >>> [int(t[0]) for t in sample_box(area, u, u, 8, 8, inside=True)]
    [0, 4, 0, 4]

    Args:
        area: float32 tensor of target area fractions in ``[0, 1]``.
        u_y, u_x: float32 uniforms in ``[0, 1)``, same shape as ``area``.
        height, width: image size in pixels (Python ints).
        inside: keep the box inside the image instead of clipping it.
        ops: the op namespace (``keras.ops``).

    Returns:
        ``(y0, y1, x0, x1)``: int32 tensors shaped like ``area``, with
        ``0 <= y0 <= y1 <= height`` and ``0 <= x0 <= x1 <= width``.
    """
    area, u_y, u_x = (ops.convert_to_tensor(t, "float32") for t in (area, u_y, u_x))
    ratio = ops.sqrt(ops.clip(area, 0.0, 1.0))
    h = ops.round(ratio * float(height))
    w = ops.round(ratio * float(width))
    if inside:
        y0 = ops.minimum(ops.floor(u_y * (float(height) + 1.0 - h)), float(height) - h)
        x0 = ops.minimum(ops.floor(u_x * (float(width) + 1.0 - w)), float(width) - w)
        y1, x1 = y0 + h, x0 + w
    else:
        cy = ops.minimum(ops.floor(u_y * float(height)), float(height - 1))
        cx = ops.minimum(ops.floor(u_x * float(width)), float(width - 1))
        y0, x0 = cy - ops.floor(h / 2.0), cx - ops.floor(w / 2.0)
        y1, x1 = y0 + h, x0 + w
        y0, y1 = ops.clip(y0, 0.0, float(height)), ops.clip(y1, 0.0, float(height))
        x0, x1 = ops.clip(x0, 0.0, float(width)), ops.clip(x1, 0.0, float(width))
    return tuple(ops.cast(t, "int32") for t in (y0, y1, x0, x1))


def box_fraction(y0, y1, x0, x1, height: int, width: int, ops=keras.ops):
    """The exact fraction of the ``height × width`` pixels inside each box (float32).

    Example:

    >>> float(box_fraction(1, 4, 0, 5, 6, 10))  # 3·5 of 60 pixels
    0.25
    """
    count = (ops.convert_to_tensor(y1) - y0) * (ops.convert_to_tensor(x1) - x0)
    return ops.cast(count, "float32") / float(height * width)


def box_masks(y0, y1, x0, x1, height: int, width: int, ops=keras.ops):
    """Row and column masks of boxes: ``rows[b, i] = y0[b] <= i < y1[b]``.

    A pixel ``(i, j)`` of image ``b`` is inside its box iff
    ``rows[b, i] and cols[b, j]``; broadcasting the two gives the image mask
    without ever building a ``(B, H, W, C)`` array.

    Example:

    >>> rows, cols = box_masks([1], [3], [0], [1], 4, 2)
    >>> keras.ops.convert_to_numpy(rows).astype(int).tolist()
    [[0, 1, 1, 0]]

    Returns:
        ``(rows, cols)``: bool tensors of shapes ``(B, height)`` and ``(B, width)``.
    """
    def mask(lo, hi, n):
        lo = ops.expand_dims(ops.convert_to_tensor(lo, "int32"), -1)
        hi = ops.expand_dims(ops.convert_to_tensor(hi, "int32"), -1)
        grid = ops.expand_dims(ops.arange(n, dtype="int32"), 0)
        return ops.logical_and(ops.logical_not(ops.less(grid, lo)), ops.less(grid, hi))

    return mask(y0, y1, height), mask(x0, x1, width)


def mix_targets(targets, partner, weight, ops=keras.ops):
    """``y + w·(y[partner] - y)``: each row moves a share ``w`` toward its partner's.

    Example:

    >>> y = np.eye(3, dtype="float32")
    >>> out = mix_targets(y, np.array([1, 0, 2]), np.array([0.25, 0.5, 0.9], "float32"))
    >>> keras.ops.convert_to_numpy(out).tolist()
    [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]

    Args:
        targets: float32 tensor ``(B, ...)``.
        partner: int tensor ``(B,)``, the partner index of each row.
        weight: float32 tensor ``(B,)`` (or ``(1,)``), the partner's share.
        ops: the op namespace (``keras.ops``).
    """
    targets = ops.convert_to_tensor(targets, "float32")
    w = ops.reshape(ops.convert_to_tensor(weight, "float32"),
                    (-1,) + (1,) * (len(targets.shape) - 1))
    return targets + w * (ops.take(targets, partner, axis=0) - targets)


def is_sparse_labels(shape, dtype, num_classes: int | None = None) -> bool:
    """True for class ids: labels of shape ``(N,)`` or ``(N, 1)``.

    Integer (or bool) labels of that shape are class ids. Float ones are too when
    `num_classes` is more than 1: one-hot or soft targets of K > 1 classes have K
    columns, and a float ``(N,)`` tensor of ids is what a Keras image layer before this
    one in a ``tf.data`` map leaves (Keras's ``DataLayer`` casts every input to float).
    Without `num_classes` (or with 1) float labels of that shape are targets (binary or
    regression), mixed as they are.

    Example:

    >>> is_sparse_labels((4,), "int64"), is_sparse_labels((4,), "float32")
    (True, False)
    >>> is_sparse_labels((4,), "float32", num_classes=10)
    True
    """
    if not (len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)):
        return False
    dtype = keras.backend.standardize_dtype(dtype)
    if "int" in dtype or dtype == "bool":
        return True
    return num_classes is not None and int(num_classes) > 1


def dense_labels(labels, num_classes: int | None, ops=keras.ops):
    """float32 targets: one-hot for sparse class ids, a float32 cast otherwise.

    Example:

    >>> keras.ops.convert_to_numpy(dense_labels(np.array([2, 0]), 3)).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]

    Args:
        labels: class ids of shape ``(N,)`` or ``(N, 1)`` (an integer dtype, or a float
            one holding whole numbers when `num_classes` > 1: see
            :func:`is_sparse_labels`), or one-hot / soft targets of any float shape.
        num_classes: number of classes; required for sparse labels.
        ops: the op namespace (``keras.ops``).

    Raises:
        ValueError: for sparse labels without ``num_classes``.
    """
    shape = tuple(labels.shape) if hasattr(labels, "shape") else np.shape(labels)
    dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    if is_sparse_labels(shape, dtype, num_classes):
        if num_classes is None:
            raise ValueError(
                "Invalid value for argument `num_classes`. Sparse integer labels of shape "
                f"{tuple(shape)} need the number of classes to become one-hot targets "
                "(pass `num_classes=K`, or one-hot labels). Received: num_classes=None"
            )
        ids = ops.reshape(labels, (-1,)) if len(shape) == 2 else labels
        if "float" in keras.backend.standardize_dtype(dtype):  # whole numbers, as ids
            ids = ops.round(ids)
        return ops.one_hot(ops.cast(ids, "int32"), int(num_classes), dtype="float32")
    return ops.cast(labels, "float32")


def smooth_labels(labels, label_smoothing: float, ops=keras.ops):
    """``(1 - ε)·y + ε/K`` (Müller et al. 2019), with ``K`` the last dimension.

    Targets with a last dimension of 1 (or rank 1) are binary, ``K = 2``, as in
    ``keras.losses.BinaryCrossentropy(label_smoothing=ε)``. ``label_smoothing``
    is a float or a float32 scalar tensor.

    Example:

    >>> out = smooth_labels(np.eye(2, dtype="float32"), 0.2)
    >>> np.round(keras.ops.convert_to_numpy(out).astype("float64"), 4).tolist()
    [[0.9, 0.1], [0.1, 0.9]]
    """
    if isinstance(label_smoothing, (int, float)) and not label_smoothing:
        return labels
    labels = ops.convert_to_tensor(labels, "float32")
    shape = tuple(labels.shape)
    k = shape[-1] if len(shape) >= 2 and shape[-1] not in (None, 1) else 2
    eps = ops.convert_to_tensor(label_smoothing, "float32")
    return labels * (1.0 - eps) + eps / float(k)
