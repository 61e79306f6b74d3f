"""Add (and remove) an L1/L2 weight penalty on a model that is already built.

The Keras fault this fixes: assigning ``layer.kernel_regularizer = L2(...)`` to
a built layer is silently ignored, because a layer hands its regularizer to the
variable once, in ``build()`` (``add_weight(regularizer=...)``), and
``layer.losses`` only reads ``variable.regularizer``. Setting the variable's
regularizer works, but is lost on ``.keras`` save/reload (the layer config still
says ``kernel_regularizer=None``), and on TensorFlow and JAX a model that has
already trained keeps its compiled train function, which does not see the new
loss term. ``add_weight_penalty`` does all three: the variable, the layer config
and the compiled functions.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Sequence

import keras

from keras_recipes.regularizers.weight_penalty import WeightPenalty, _check_factor

__all__ = ["add_weight_penalty", "remove_weight_penalty"]

_REGISTERED_NAME = "keras_recipes>WeightPenalty"
_BIAS = re.compile(r"(^|_)bias$")
_RESERVED_NAMES = ("bias", "beta", "gamma")


# ---------------------------------------------------------------- model walk
def _sublayers(layer) -> list:
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _config_lists_layers(layer) -> bool:
    """True when the layer's config holds its sublayers' own configs (Functional, Sequential)."""
    try:
        config = layer.get_config()
    except Exception:  # a subclassed model without a usable config
        return False
    return isinstance(config, dict) and isinstance(config.get("layers"), list)


def _walk(model):
    """Yields (layer, owner) for the model and every nested layer.

    ``owner`` is the object whose config must carry the layer's regularizer for
    it to be saved: the layer itself when a Functional/Sequential container lists
    it, else the nearest such ancestor (an RNN for its cell, a
    MultiHeadAttention for its projections, the model itself if subclassed).
    """
    seen = set()
    stack = [(model, model)]
    while stack:
        layer, owner = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer, owner
        children = _sublayers(layer)
        if not children:
            continue
        lists = _config_lists_layers(layer)
        stack[0:0] = [(child, child if lists else owner) for child in children]


def _own_parameters(layer) -> list:
    """The layer's own trainable parameters, frozen or not (not its sublayers', not state)."""
    return list(getattr(layer, "_trainable_variables", []))


def _is_normalization(layer) -> bool:
    return type(layer).__name__.endswith("Normalization")


def _config_attribute(layer, variable, params) -> str | None:
    """Name of the layer attribute (and config key) that holds `variable`'s regularizer.

    By name: ``kernel -> kernel_regularizer``, ``embeddings ->
    embeddings_regularizer``, ``depthwise_kernel -> depthwise_regularizer``.
    Otherwise, when exactly one parameter and one ``*_regularizer`` key are left
    unmatched (``DepthwiseConv2D.kernel -> depthwise_regularizer``), those two;
    ``bias_regularizer`` / ``beta_regularizer`` / ``gamma_regularizer`` only
    ever belong to a variable of that name (a layer built with
    ``use_bias=False`` still has the key).
    """
    try:
        keys = [
            k for k in layer.get_config()
            if k.endswith("_regularizer") and k != "activity_regularizer" and hasattr(layer, k)
        ]
    except Exception:  # a layer without get_config
        return None

    def by_name(name):
        for key in (f"{name}_regularizer", f"{name.removesuffix('_kernel')}_regularizer"):
            if key in keys:
                return key
        return None

    direct = by_name(variable.name)
    if direct:
        return direct
    reserved = {f"{name}_regularizer" for name in _RESERVED_NAMES}
    unmatched_keys = set(keys) - {by_name(p.name) for p in params} - reserved
    unmatched_params = [p for p in params if by_name(p.name) is None]
    if len(unmatched_keys) == 1 and len(unmatched_params) == 1:
        return unmatched_keys.pop()
    return None


def _count_penalties(owner) -> int:
    try:
        config = owner.get_config()
    except Exception:  # not serializable: nothing persists
        return -1
    return json.dumps(config, default=str).count(_REGISTERED_NAME)


def _selector(include) -> Callable:
    if include is None:
        return lambda variable: True
    if callable(include):
        return include
    patterns = [include] if isinstance(include, str) else include
    if (
        not isinstance(patterns, (list, tuple))
        or not patterns
        or not all(isinstance(p, str) for p in patterns)
    ):
        raise ValueError(
            "Invalid value for argument `include`. Expected None, a regex string, a list of "
            f"regex strings or a callable(variable) -> bool. Received: include={include!r}"
        )
    compiled = [re.compile(p) for p in patterns]
    return lambda variable: any(c.search(variable.path) for c in compiled)


def _reset_compiled_functions(model) -> None:
    """Makes the next fit/evaluate trace a fresh step that sees the new loss terms.

    TensorFlow (tf.function) and JAX (jax.jit) trace the train step once and
    keep it; Keras's own ``compile()`` clears the same attributes.
    """
    if getattr(model, "compiled", False):
        model.train_function = None
        model.test_function = None


def _check_model(model) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "Invalid value for argument `model`. Expected a keras.Model. "
            f"Received: model={model!r}"
        )
    if not model.built:
        raise ValueError(
            "Invalid value for argument `model`. Expected a built model (call it on data "
            f"or `model.build(input_shape)` first). Received: model={model.name!r} (not built)"
        )


# ---------------------------------------------------------------- public API
def add_weight_penalty(
    model: keras.Model,
    *,
    l1: float = 0.0,
    l2: float = 0.0,
    include: str | Sequence[str] | Callable[[keras.Variable], bool] | None = None,
    exclude_bias: bool = True,
    exclude_normalization: bool = True,
) -> list[str]:
    """Adds `l1·Σ|W| + l2·ΣW²` for every matching weight of a built model.

    Use it on pretrained models (``keras.applications``, loaded ``.keras``
    files), where the regularizer arguments of the layers are out of reach:
    setting ``layer.kernel_regularizer`` on a built layer is silently ignored
    by Keras (keras-team/keras#7688, #8413, #9106, #12053). This function

    1. sets ``variable.regularizer`` (what ``layer.losses`` and hence ``fit``
       read) to a `WeightPenalty`,
    2. sets the matching layer attribute (``kernel_regularizer``,
       ``depthwise_regularizer``, ``embeddings_regularizer``, ...) so the layer
       config carries the penalty through ``.keras`` save/reload, and checks
       that it does (a `UserWarning` names the weights whose penalty will not
       be saved, e.g. inside a ``MultiHeadAttention`` or a subclassed model),
    3. on a compiled model, clears the compiled train/test functions so the
       next ``fit`` traces a step that includes the penalty (TensorFlow and
       JAX otherwise keep training without it).

    Penalties apply to weights, not biases (course §4): by default variables
    named ``bias`` (or ``*_bias``) and every variable of a ``*Normalization``
    layer are left out. Non-trainable state (batch-norm moving statistics) is
    never penalized. A frozen layer's weights carry the penalty, but Keras
    counts it only while the layer is trainable (``Layer.losses`` sums
    ``trainable_weights``), so a frozen backbone adds nothing until unfrozen.
    Calling the function again replaces this function's penalty (it does not
    add a second one).

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(1, name="fc")], name="net")
    >>> _ = model.layers[0].kernel.assign(np.array([[1.0], [-2.0]]))
    >>> add_weight_penalty(model, l2=0.1)  # the bias is left out; 0.1 * (1 + 4) = 0.5
    ['net/fc/kernel']
    >>> [round(float(keras.ops.convert_to_numpy(loss)), 4) for loss in model.losses]
    [0.5]

    Args:
        model: a built ``keras.Model`` (nested models and layers included).
        l1: factor of the L1 term (float >= 0).
        l2: factor of the L2 term (float >= 0). One of `l1`, `l2` must be > 0.
        include: which weights to penalize: ``None`` (all weights), a regular
            expression or a list of them searched in ``variable.path``, or a
            callable ``(variable) -> bool``. Applied before the exclusions.
        exclude_bias: leave out variables named ``bias`` / ``*_bias``.
        exclude_normalization: leave out all variables of layers whose class
            name ends in ``Normalization`` (batch, layer, group norm, ...).

    Returns:
        The paths (``variable.path``) of the weights that now carry the penalty,
        in model order.

    Raises:
        ValueError: if `l1`/`l2` are invalid or both 0, `include` is invalid,
            the model is not built, or a selected weight already carries a
            regularizer that is not a `WeightPenalty` (leave it out with
            `include`, or remove that regularizer first).

    References:
        - Krogh & Hertz, "A Simple Weight Decay Can Improve Generalization",
          NIPS 1991.
    """
    l1 = _check_factor(l1, "l1")
    l2 = _check_factor(l2, "l2")
    if l1 == 0.0 and l2 == 0.0:
        raise ValueError(
            "Invalid value for arguments `l1` and `l2`. Expected l1 > 0 or l2 > 0. "
            f"Received: l1={l1}, l2={l2}"
        )
    selected = _selector(include)
    _check_model(model)

    plan = []  # (layer, owner, variable, attribute)
    seen = set()
    foreign = []
    for layer, owner in _walk(model):
        params = _own_parameters(layer)
        if exclude_normalization and _is_normalization(layer):
            continue
        for variable in params:
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            if exclude_bias and _BIAS.search(variable.name):
                continue
            if not selected(variable):
                continue
            current = variable.regularizer
            if current is not None and not isinstance(current, WeightPenalty):
                foreign.append(f"{variable.path} ({current!r})")
                continue
            plan.append((layer, owner, variable, _config_attribute(layer, variable, params)))
    if foreign:
        raise ValueError(
            "Invalid value for argument `include`. Expected weights without a regularizer of "
            "their own (leave these out with `include`, or set their regularizer to None "
            f"first). Received: weights that already have one: {', '.join(foreign)}"
        )

    penalty = WeightPenalty(l1=l1, l2=l2)
    not_saved = []
    for layer, owner, variable, attribute in plan:
        variable.regularizer = penalty
        if attribute is None:
            not_saved.append(variable.path)
            continue
        try:
            setattr(layer, attribute, None)
        except AttributeError:  # a read-only property: the config cannot carry it
            not_saved.append(variable.path)
            continue
        before = _count_penalties(owner)
        setattr(layer, attribute, penalty)
        if before < 0 or _count_penalties(owner) <= before:
            not_saved.append(variable.path)
    if not_saved:
        warnings.warn(
            "add_weight_penalty: the penalty on these weights works now but is not part of "
            "any layer config, so a .keras save/reload drops it (call add_weight_penalty "
            f"again after loading): {not_saved}",
            UserWarning,
            stacklevel=2,
        )
    _reset_compiled_functions(model)
    return [variable.path for _, _, variable, _ in plan]


def remove_weight_penalty(model: keras.Model) -> list[str]:
    """Removes every `WeightPenalty` from a model's weights and layer configs.

    Undoes `add_weight_penalty` (also on a reloaded model, whose layer configs
    brought the penalty back). Other regularizers are left alone. On a compiled
    model the compiled train/test functions are cleared, so the next ``fit`` or
    ``evaluate`` no longer adds the penalty.

    Example:

    >>> import keras
    >>> model = keras.Sequential(
    ...     [keras.Input((2,)), keras.layers.Dense(1, name="fc")], name="net")
    >>> _ = add_weight_penalty(model, l1=0.01)
    >>> remove_weight_penalty(model), model.losses
    (['net/fc/kernel'], [])

    Args:
        model: a built ``keras.Model``.

    Returns:
        The paths of the weights whose penalty was removed.

    Raises:
        ValueError: if the model is not built.
    """
    _check_model(model)
    removed = []
    seen = set()
    for layer, _ in _walk(model):
        for variable in _own_parameters(layer):
            if id(variable) in seen:
                continue
            seen.add(id(variable))
            if isinstance(variable.regularizer, WeightPenalty):
                variable.regularizer = None
                removed.append(variable.path)
        try:
            keys = [k for k in layer.get_config() if k.endswith("_regularizer")]
        except Exception:  # a layer without get_config
            keys = []
        for key in keys:
            if isinstance(getattr(layer, key, None), WeightPenalty):
                try:
                    setattr(layer, key, None)
                except AttributeError:  # a read-only view (LSTM shows its cell's)
                    pass
    _reset_compiled_functions(model)
    return removed
