"""Virtual adversarial training (VAT): the perturbation and the loss, on every backend.

For an input ``x`` and the model's prediction ``p(y|x)``, the virtual adversarial
perturbation is the ``r`` of norm ``ε`` that changes the prediction most in KL
divergence, ``r_adv = argmax_{‖r‖≤ε} KL(p(y|x) ‖ p(y|x + r))``, found by power
iteration (Miyato et al., 2019): from a random unit vector ``d``, take
``g = ∇_r KL(p(y|x) ‖ p(y|x + r))`` at ``r = ξ·d`` with ``p(y|x)`` held constant and
set ``d = g / ‖g‖``, once or more; then ``r_adv = ε·d``. The VAT loss is
``KL(p(y|x) ‖ p(y|x + r_adv))``; it needs no labels.

The extra forward passes run with ``model.stateless_call`` on the current weights,
so batch-norm moving statistics and seed states of the model are left as they were
(the paper's practice), and the process-wide random generators (torch's, which an
unseeded torch Dropout draws from, NumPy's and Python's) are restored afterwards.
The gradient with respect to ``r`` is ``keras_recipes.backend.input_gradient``, the
only per-backend part.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_recipes.backend.input_gradient import input_gradient
from keras_recipes.backend.random_state import get_random_state, set_random_state

__all__ = ["virtual_adversarial_perturbation"]

_PROBABILITY_FLOOR = 1e-7  # the clipping of Keras's cross-entropy on probabilities
# The power iteration's step ξ is raised, per sample, to at least this many units in the last
# place of the sample's largest input (spread over its entries: ξ·d has norm ξ, so an entry
# is about ξ/sqrt(n)) in the model's compute dtype, so that x + ξ·d still differs from x
# where the model computes.
STEP_ULPS = 128
# Machine epsilon of the float dtypes a model computes in (NumPy has no bfloat16).
_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


# ---------------------------------------------------------------- argument checks
def check_float(value, name: str, *, allow_zero: bool = False) -> float:
    """`value` as a float > 0 (>= 0 with `allow_zero`), or a ValueError naming `name`."""
    ok = (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and (float(value) >= 0 if allow_zero else float(value) > 0)
    )
    if not ok:
        expected = "a float >= 0" if allow_zero else "a float > 0"
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
        )
    return float(value)


def check_power_iterations(value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(
            "Invalid value for argument `power_iterations`. Expected an int >= 1. "
            f"Received: power_iterations={value!r}"
        )
    return int(value)


def _check_seed(seed):
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return keras.random.SeedGenerator(int(seed))
    raise ValueError(
        "Invalid value for argument `seed`. Expected None, an int or a "
        f"keras.random.SeedGenerator. Received: seed={seed!r}"
    )


# ---------------------------------------------------------------- the computation
def _log_probabilities(y, from_logits: bool):
    y = keras.ops.cast(y, "float32")
    if from_logits:
        return keras.ops.log_softmax(y, axis=-1)
    return keras.ops.log(keras.ops.clip(y, _PROBABILITY_FLOOR, 1.0))


def kl_per_sample(log_p, y, from_logits: bool):
    """``KL(p ‖ q)`` per sample: summed over the last axis, averaged over other non-batch axes.

    ``log_p`` is the (constant) log of the clean prediction; ``q`` comes from the
    model output ``y`` (logits when ``from_logits``, else probabilities).
    """
    log_q = _log_probabilities(y, from_logits)
    kl = keras.ops.sum(keras.ops.exp(log_p) * (log_p - log_q), axis=-1)
    if len(kl.shape) > 1:
        kl = keras.ops.mean(kl, axis=tuple(range(1, len(kl.shape))))
    return kl


def _unit(d):
    """``d / ‖d‖`` per sample (over all non-batch axes); a zero sample stays zero."""
    axes = tuple(range(1, len(d.shape)))
    # Scale by the largest entry first: the raw gradient is O(ξ) and its square would
    # underflow in low precision.
    d = d / (1e-12 + keras.ops.max(keras.ops.abs(d), axis=axes, keepdims=True))
    norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(d), axis=axes, keepdims=True))
    return d / keras.ops.maximum(norm, 1e-12)


def _forward(model, trainable, non_trainable, x, training):
    kwargs = {"training": training} if model._call_has_training_arg else {}
    y, _ = model.stateless_call(trainable, non_trainable, x, **kwargs)
    return y


def _as_float_input(x):
    x = keras.ops.convert_to_tensor(x)
    if not keras.backend.is_float_dtype(x.dtype):
        x = keras.ops.cast(x, keras.backend.floatx())
    return x


def resolvable_step(model, x, xi: float):
    """The power iteration's step per sample: ``max(ξ, STEP_ULPS·eps·max|x_i|·sqrt(n))``.

    ``eps`` is the machine epsilon of the coarser of the model's compute dtype and the
    inputs' dtype, ``n`` the number of entries of a sample. Below that floor ``x + ξ·d``
    rounds (mostly or wholly) back to ``x`` where the model computes: the paper's
    ``ξ = 1e-6`` leaves a nearly random direction in float32 on unit-scale inputs and an
    exactly zero one under ``mixed_float16``. Above it, ``ξ`` is used as given.

    Returns:
        A float32 tensor of shape ``(N, 1, ..., 1)`` (the rank of ``x``).
    """
    dtypes = {keras.backend.standardize_dtype(x.dtype),
              keras.backend.standardize_dtype(getattr(model, "compute_dtype", None)
                                              or keras.backend.floatx())}
    eps = max(_EPS.get(d, _EPS["float32"]) for d in dtypes)
    axes = tuple(range(1, len(x.shape)))
    scale = keras.ops.max(keras.ops.abs(keras.ops.cast(x, "float32")), axis=axes,
                          keepdims=True)
    entries = keras.ops.cast(keras.ops.size(x) // keras.ops.shape(x)[0], "float32")
    return keras.ops.maximum(keras.ops.cast(xi, "float32"),
                             STEP_ULPS * eps * keras.ops.sqrt(entries) * scale)


def perturbation(model, x, log_p, seed, *, epsilon, xi, power_iterations, from_logits, training):
    """``r_adv`` for inputs ``x`` and the constant clean log-prediction ``log_p``.

    No state of the model changes; the weights enter as constants.
    """
    trainable = [keras.ops.stop_gradient(v.value) for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    log_p = keras.ops.stop_gradient(log_p)
    random_state = get_random_state()

    def divergence(r):
        # Every pass sees the same network: the seed states are the same values each
        # time, and torch's unseeded Dropout draws the same masks from its global RNG.
        set_random_state(random_state)
        y = _forward(model, trainable, non_trainable, x + keras.ops.cast(r, x.dtype), training)
        # Summed over the batch: each sample's gradient is its own, whatever the batch size.
        return keras.ops.sum(kl_per_sample(log_p, y, from_logits))

    d = keras.random.normal(keras.ops.shape(x), seed=seed, dtype="float32")
    step = resolvable_step(model, x, xi)
    for _ in range(power_iterations):
        d = input_gradient(divergence, step * _unit(d))
    return keras.ops.stop_gradient(epsilon * _unit(d))


def virtual_adversarial_loss(model, x, y_pred, seed, *, epsilon, xi, power_iterations,
                             from_logits, training):
    """``mean_i KL(p(y|x_i) ‖ p(y|x_i + r_adv,i))`` with the gradient of the second term.

    ``y_pred`` is the model's (clean) output on ``x``, held constant. The perturbed
    forward pass runs on the current weights (differentiable, also inside a stateless
    JAX step) but keeps no state update (batch-norm statistics).
    """
    x = _as_float_input(x)
    log_p = keras.ops.stop_gradient(_log_probabilities(y_pred, from_logits))
    random_state = get_random_state()
    try:
        r_adv = perturbation(model, x, log_p, seed, epsilon=epsilon, xi=xi,
                             power_iterations=power_iterations, from_logits=from_logits,
                             training=training)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        set_random_state(random_state)  # the masks of the power iteration's passes
        y_adv = _forward(model, trainable, non_trainable, x + keras.ops.cast(r_adv, x.dtype),
                         training)
        loss = keras.ops.mean(kl_per_sample(log_p, y_adv, from_logits))
    finally:
        set_random_state(random_state)
    return loss


# ---------------------------------------------------------------- public API
def virtual_adversarial_perturbation(
    model: keras.Model,
    x,
    *,
    epsilon: float,
    xi: float = 1e-6,
    power_iterations: int = 1,
    seed=None,
    from_logits: bool = False,
    training: bool = False,
):
    """The virtual adversarial perturbation ``r_adv`` of each sample of ``x``.

    ``r_adv`` is the direction, scaled to L2 norm ``epsilon`` per sample (over
    all non-batch axes), in which the model's prediction changes most in KL
    divergence: the dominant eigenvector of the Hessian of
    ``r ↦ KL(p(y|x) ‖ p(y|x + r))`` at ``r = 0``, approximated by
    ``power_iterations`` steps of power iteration from a random unit vector
    ``d``: ``d ← normalize(∇_r KL(p(y|x) ‖ p(y|x + r)))`` at ``r = ξ·d``, with
    ``p(y|x)`` held constant. It needs no labels. For a linear softmax model
    (logits ``xW + b``) the Hessian is ``W (diag(p) − p pᵀ) Wᵀ``.

    Nothing in the model changes: the forward passes run with
    ``model.stateless_call`` (batch-norm moving statistics and dropout seed
    states stay as they were, also with ``training=True``), and the global
    random generators (torch's, NumPy's, Python's) are restored afterwards.
    For the training loss ``α·KL(p(y|x) ‖ p(y|x + r_adv))`` inside ``fit``,
    use :class:`keras_recipes.models.VirtualAdversarialModel`.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    >>> r = virtual_adversarial_perturbation(model, x, epsilon=0.5, seed=0, from_logits=True)
    >>> np.linalg.norm(keras.ops.convert_to_numpy(r), axis=1).round(4).tolist()
    [0.5, 0.5, 0.5, 0.5, 0.5]

    Args:
        model: a built ``keras.Model`` with one output (probabilities, or
            logits with ``from_logits=True``) and one input tensor.
        x: a batch of inputs (NumPy array or tensor; integer images are cast
            to floats).
        epsilon: the L2 norm of each sample's perturbation (float > 0).
        xi: the finite-difference step ``ξ`` of the power iteration (float > 0),
            in the units of `x`; the paper's 1e-6 by default. Each sample's step
            is at least ``STEP_ULPS`` (128) units in the last place of its largest
            input, spread over its entries, in the model's compute dtype
            (``resolvable_step``): below that ``x + ξ·d`` rounds back to (nearly)
            ``x`` where the model computes; 1e-6 alone gives a direction as far as
            0.45 (cosine) from the exact one in float32 on unit-scale inputs, and a
            zero perturbation under ``mixed_float16``. 1e-3 suits images in [0, 1]
            (the exact direction of a smooth model).
        power_iterations: power-iteration steps (int >= 1); the paper finds 1
            enough.
        seed: where the random start ``d`` comes from: a
            ``keras.random.SeedGenerator`` (advanced by each call, the way to
            use it in a custom training step), an int (a fresh generator with
            that seed: the same start every call) or ``None`` (Keras's global
            generator, set by ``keras.utils.set_random_seed``; eager only).
        from_logits: whether the model outputs logits rather than probabilities.
        training: run the forward passes in training mode (dropout, batch norm
            on batch statistics); still no state is updated.

    Returns:
        A float32 tensor of ``x``'s shape: ``ε`` times the unit direction, per
        sample. A sample whose gradient is exactly zero gets a zero perturbation.

    Raises:
        ValueError: for a bad ``epsilon``, ``xi``, ``power_iterations`` or ``seed``.

    References:
        - Miyato, Maeda, Koyama, Ishii, "Virtual Adversarial Training: A
          Regularization Method for Supervised and Semi-Supervised Learning",
          IEEE TPAMI 2019. https://arxiv.org/abs/1704.03976
    """
    epsilon = check_float(epsilon, "epsilon")
    xi = check_float(xi, "xi")
    power_iterations = check_power_iterations(power_iterations)
    seed = _check_seed(seed)
    x = _as_float_input(x)
    random_state = get_random_state()
    try:
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        y = _forward(model, trainable, non_trainable, x, bool(training))
        log_p = keras.ops.stop_gradient(_log_probabilities(y, from_logits))
        set_random_state(random_state)  # the perturbed passes draw the clean pass's masks
        return perturbation(model, x, log_p, seed, epsilon=epsilon, xi=xi,
                            power_iterations=power_iterations, from_logits=bool(from_logits),
                            training=bool(training))
    finally:
        set_random_state(random_state)
