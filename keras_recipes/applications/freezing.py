"""Freeze and unfreeze parts of a model, keeping batch norm in inference mode.

In Keras 3 a weight is updated by ``fit`` when its layer's ``trainable`` flag is
on (setting ``layer.trainable`` sets it on every sublayer, recursively). A
``BatchNormalization`` layer with ``trainable=False`` also runs in inference
mode: it normalizes with its moving statistics and never updates them. That is
what fine-tuning needs (keras-team/keras#20285: calling the backbone with
``training=False`` does not hold once ``fit`` runs), so both functions below
keep batch-norm layers frozen by default, at any depth of nesting.

Both functions only set flags. A model compiled before the change must be
compiled again (or use ``keras_recipes.callbacks.UnfreezeSchedule`` inside
``fit``) for the change to take effect.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

import keras

__all__ = ["find_layer", "freeze", "unfreeze", "is_batch_norm", "selectable_layers"]


def _children(layer) -> list:
    # Keras 3 keeps a layer's direct sublayers in `_layers` (what its recursive
    # `trainable` setter walks); there is no public accessor for non-Model layers.
    return list(getattr(layer, "_layers", []))


def _walk(layer, seen=None) -> Iterable:
    """Pre-order (parent before children) walk over a layer and its sublayers."""
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    for child in _children(layer):
        yield from _walk(child, seen)


def _leaves(layer) -> list:
    """Sublayers (or the layer itself) that have no sublayers, in pre-order."""
    return [node for node in _walk(layer) if not _children(node)]


def find_layer(model: keras.layers.Layer, name: str) -> keras.layers.Layer:
    """The first layer named ``name`` in ``model``, searching nested models too.

    ``model.get_layer`` only looks at the top level; a backbone nested in a
    transfer model that is itself wrapped (e.g. in
    ``keras_recipes.models.AugmentedModel``) is found here.

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)], name="backbone")
    >>> outer = keras.Sequential([keras.Input((2,)), inner, keras.layers.Dense(1)])
    >>> find_layer(outer, "backbone") is inner
    True

    Args:
        model: a ``keras.Model`` or layer.
        name: the layer's name (``model`` itself counts).

    Returns:
        The layer (depth-first, parents before their sublayers).

    Raises:
        ValueError: if no layer has that name.
    """
    for node in _walk(model):
        if node.name == name:
            return node
    containers = [n.name for n in _walk(model) if _children(n)]
    raise ValueError(
        f"No layer named {name!r} in {model.name!r}, nested models included. Layers "
        f"with sublayers: {containers}"
    )


def is_batch_norm(layer) -> bool:
    """Whether ``layer`` is a batch-normalization layer (moving statistics).

    Example:

    >>> import keras
    >>> is_batch_norm(keras.layers.BatchNormalization()), is_batch_norm(keras.layers.Dense(2))
    (True, False)

    Args:
        layer: any ``keras.layers.Layer``.

    Returns:
        ``True`` for ``keras.layers.BatchNormalization`` (synchronized or not).
    """
    return isinstance(layer, keras.layers.BatchNormalization)


def selectable_layers(layer) -> list:
    """The layers that ``unfreeze(layer, layers=N)`` counts: leaves with weights.

    A leaf is a layer without sublayers; the order is the order in which the
    layer tracks its sublayers (for functional models, the order of
    ``model.layers``, depth first into nested models).

    Example:

    >>> import keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
    ...                         keras.layers.ReLU(), keras.layers.Dense(2, name="b")])
    >>> [l.name for l in selectable_layers(net)]
    ['a', 'b']

    Args:
        layer: a ``keras.layers.Layer`` or ``keras.Model``.

    Returns:
        A list of layers.
    """
    return [leaf for leaf in _leaves(layer) if leaf.weights]


def _set_trainable(root, target: dict[int, bool]) -> None:
    """Applies per-leaf trainable flags; containers get ``any`` of their leaves.

    Keras's ``trainable`` setter recurses into sublayers, so nodes are set
    parent first: each later (deeper) assignment overrides what its parent's
    recursion wrote.
    """

    def wanted(node) -> bool:
        leaves = _leaves(node)
        return any(target.get(id(leaf), leaf.trainable) for leaf in leaves)

    for node in _walk(root):
        node.trainable = target[id(node)] if id(node) in target else wanted(node)


def _match_nodes(root, patterns: Sequence[str], *, glob: bool) -> tuple[list, list[str]]:
    nodes = list(_walk(root))
    selected, unmatched = [], []
    for pattern in patterns:
        if glob:
            hits = [n for n in nodes if fnmatch.fnmatchcase(n.name, pattern)]
        else:
            hits = [n for n in nodes if n.name == pattern]
        if not hits:
            unmatched.append(pattern)
        selected.extend(hits)
    return selected, unmatched


def _select_leaves(root, layers) -> list:
    """Leaves chosen by ``layers`` ("all", int, glob pattern or list of names)."""
    if isinstance(layers, str) and layers == "all":
        return _leaves(root)
    if isinstance(layers, bool) or (not isinstance(layers, (int, str, list, tuple))):
        raise ValueError(
            "Invalid value for argument `layers`. Expected 'all', an int > 0, a glob "
            f"pattern or a list of layer names. Received: layers={layers!r}"
        )
    if isinstance(layers, int):
        if layers <= 0:
            raise ValueError(
                "Invalid value for argument `layers`. Expected 'all', an int > 0, a glob "
                f"pattern or a list of layer names. Received: layers={layers}"
            )
        return selectable_layers(root)[-layers:]
    if isinstance(layers, str):
        nodes, unmatched = _match_nodes(root, [layers], glob=True)
    else:
        if not layers or not all(isinstance(n, str) for n in layers):
            raise ValueError(
                "Invalid value for argument `layers`. Expected a non-empty list of layer "
                f"names. Received: layers={layers!r}"
            )
        nodes, unmatched = _match_nodes(root, list(layers), glob=False)
    if unmatched:
        raise ValueError(
            f"Invalid value for argument `layers`. No layer of {root.name!r} matches "
            f"{unmatched}. Received: layers={layers!r}"
        )
    out, seen = [], set()
    for node in nodes:
        for leaf in _leaves(node):
            if id(leaf) not in seen:
                seen.add(id(leaf))
                out.append(leaf)
    return out


def _check_layer(layer) -> None:
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            "Invalid value for argument `layer`. Expected a keras.layers.Layer or "
            f"keras.Model. Received: layer={layer!r}"
        )


def freeze(layer: keras.layers.Layer, *, keep_batchnorm_frozen: bool = True) -> None:
    """Makes ``layer`` and all its sublayers non-trainable.

    The PyTorch habit ``param.requires_grad = False`` for every parameter of a
    backbone. Batch-norm layers become non-trainable too, which in Keras 3 also
    puts them in inference mode (moving statistics used, never updated).

    With ``keep_batchnorm_frozen=False`` the batch-norm layers inside stay
    trainable instead (their scale/offset train and their statistics adapt to
    the new data), while every other layer freezes.

    Example:

    >>> import keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                         keras.layers.BatchNormalization()])
    >>> freeze(net)
    >>> len(net.trainable_weights), len(net.non_trainable_weights)
    (0, 6)
    >>> freeze(net, keep_batchnorm_frozen=False)  # only gamma and beta train
    >>> [w.name for w in net.trainable_weights]
    ['gamma', 'beta']

    Args:
        layer: a ``keras.layers.Layer`` or ``keras.Model`` (e.g. a backbone).
        keep_batchnorm_frozen: keep batch-norm layers non-trainable (inference
            mode). ``False`` leaves them trainable.

    Returns:
        ``None``; the flags of ``layer`` and its sublayers are changed in place.

    Raises:
        ValueError: if ``layer`` is not a Keras layer.
    """
    _check_layer(layer)
    target = {id(leaf): (not keep_batchnorm_frozen and is_batch_norm(leaf))
              for leaf in _leaves(layer)}
    _set_trainable(layer, target)


def unfreeze(
    layer: keras.layers.Layer,
    *,
    layers: str | int | Sequence[str] = "all",
    keep_batchnorm_frozen: bool = True,
) -> list:
    """Makes (part of) ``layer`` trainable again; the rest keeps its flags.

    ``layers`` picks what becomes trainable:

    - ``"all"``: every sublayer;
    - an int ``N``: the last ``N`` layers with weights (leaves, in the order of
      :func:`selectable_layers`; batch-norm layers count but stay frozen by
      default);
    - a glob pattern over layer names, e.g. ``"block5_*"``: every layer whose
      name matches, with all of its sublayers (a nested model matched by name
      unfreezes whole);
    - a list of layer names: those layers, with their sublayers.

    Layers not selected keep their current flags, so calls accumulate (e.g.
    ``"block5_*"`` then ``"block4_*"``). Batch-norm layers, at any depth, stay
    non-trainable (inference mode) unless ``keep_batchnorm_frozen=False``.

    Example:

    >>> import keras
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="block1_dense"),
    ...                         keras.layers.BatchNormalization(name="block2_bn"),
    ...                         keras.layers.Dense(2, name="block2_dense")])
    >>> freeze(net)
    >>> [l.name for l in unfreeze(net, layers="block2_*")]
    ['block2_dense']
    >>> [w.path.split("/")[-2] + "/" + w.name for w in net.trainable_weights]
    ['block2_dense/kernel', 'block2_dense/bias']

    Args:
        layer: a ``keras.layers.Layer`` or ``keras.Model`` (e.g. a backbone).
        layers: what to unfreeze (see above).
        keep_batchnorm_frozen: keep batch-norm layers among the selected ones
            non-trainable (inference mode).

    Returns:
        The layers (leaves) made trainable by this call, in order.

    Raises:
        ValueError: if ``layer`` is not a Keras layer, if ``layers`` has an
            invalid form, or if a pattern or name matches no layer.
    """
    _check_layer(layer)
    selected = _select_leaves(layer, layers)
    # A weight trains when its own flag is on and the root's flag is on (Keras's
    # `trainable_weights` filters on both); intermediate containers do not matter.
    target = {id(leaf): bool(leaf.trainable and layer.trainable) for leaf in _leaves(layer)}
    chosen = []
    for leaf in selected:
        on = not (keep_batchnorm_frozen and is_batch_norm(leaf))
        if on:
            target[id(leaf)] = True
            chosen.append(leaf)
        else:
            target[id(leaf)] = False
    _set_trainable(layer, target)
    return chosen

