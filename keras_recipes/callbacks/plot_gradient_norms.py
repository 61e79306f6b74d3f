"""plot_gradient_norms: the picture of vanishing gradients, from GradientHistogram's logs."""

from __future__ import annotations

import os

import numpy as np

from keras_recipes.callbacks.event_writer import scalar_records

__all__ = ["layer_gradient_norms", "plot_gradient_norms"]


def layer_gradient_norms(log_dir: str | os.PathLike) -> tuple[list[int], dict[str, np.ndarray]]:
    """Per-layer gradient norms by logged step, read from `GradientHistogram` events.

    A layer's norm is ``sqrt(Σ ‖g_w‖²)`` over its weights' ``gradient_norm/<path>``
    scalars (the layer is the path without its last component). Layers are
    ordered as the weights were logged (model order, input to output): by the
    logged step with the most layers, the others' layers (logged only while
    some were frozen) placed after the layer logged before them there. A head
    logged alone before its backbone was unfrozen stays last.

    Args:
        log_dir: the callback's `log_dir` (or its ``train`` subdirectory).

    Returns:
        ``(steps, norms)``: the sorted logged steps, and ``{layer: array}`` with
        one value per step (NaN where the layer was not logged, e.g. before it
        was unfrozen).

    Raises:
        ValueError: if no ``gradient_norm/...`` scalar is found.
    """
    log_dir = os.fspath(log_dir)
    train = os.path.join(log_dir, "train")
    values: dict[str, list[tuple[int, float]]] = {}  # layer -> (step, squared weight norm)
    by_step: dict[int, list[str]] = {}  # step -> its layers, in the order written
    for step, tag, value in scalar_records(train if os.path.isdir(train) else log_dir):
        if not tag.startswith("gradient_norm/") or tag == "gradient_norm/global":
            continue
        layer = tag.removeprefix("gradient_norm/").rsplit("/", 1)[0]
        values.setdefault(layer, []).append((step, value**2))
        layers = by_step.setdefault(step, [])
        if layer not in layers:
            layers.append(layer)
    if not values:
        raise ValueError(
            "Invalid value for argument `log_dir`. Expected GradientHistogram event files with "
            f"`gradient_norm/...` scalars. Received: log_dir={log_dir!r} (none found)"
        )
    steps = sorted(by_step)
    index = {step: i for i, step in enumerate(steps)}
    norms: dict[str, np.ndarray] = {}
    for layer in _model_order(list(by_step.values())):
        row = np.full(len(steps), np.nan)
        for step, square in values[layer]:
            i = index[step]
            row[i] = (0.0 if np.isnan(row[i]) else row[i]) + square
        norms[layer] = np.sqrt(row)
    return steps, norms


def _model_order(sequences: list[list[str]]) -> list[str]:
    """One order of all layers: the longest sequence (the last of equals), then each other
    sequence's missing layers inserted after their predecessor in it (or before their
    successor; last when it has neither)."""
    if not sequences:
        return []
    order = list(max(reversed(sequences), key=len))
    for sequence in sequences:
        for i, layer in enumerate(sequence):
            if layer in order:
                continue
            before = next((sequence[j] for j in range(i - 1, -1, -1)
                           if sequence[j] in order), None)
            after = next((sequence[j] for j in range(i + 1, len(sequence))
                          if sequence[j] in order), None)
            if before is not None:
                order.insert(order.index(before) + 1, layer)
            elif after is not None:
                order.insert(order.index(after), layer)
            else:  # logged with no layer of the others: no place known, last
                order.append(layer)
    return order


def plot_gradient_norms(
    log_dir: str | os.PathLike, path: str | os.PathLike, *, title: str | None = None,
    missing_ok: bool = False,
) -> str | None:
    """Writes a PNG of per-layer gradient norms by logged step (epoch).

    Left: one line per layer, norm against step on a log scale, coloured from
    the input (dark) to the output (light) layer. Right: norm against layer
    depth at the first and the last logged step. Vanishing gradients show as
    dark lines far below light ones, and a right panel that falls towards the
    input. Uses matplotlib's Agg canvas directly (no pyplot state is touched).

    Example:

    >>> import os, tempfile
    >>> from keras_recipes.callbacks.event_writer import EventWriter
    >>> log_dir = tempfile.mkdtemp()
    >>> with EventWriter(os.path.join(log_dir, "train")) as writer:
    ...     for epoch in range(3):
    ...         writer.scalar("gradient_norm/net/dense/kernel", 1e-3 * (epoch + 1), epoch)
    ...         writer.scalar("gradient_norm/net/dense_1/kernel", 1.0, epoch)
    >>> png = plot_gradient_norms(log_dir, os.path.join(log_dir, "norms.png"))
    >>> open(png, "rb").read(4) == b"\\x89PNG"
    True

    Args:
        log_dir: the `GradientHistogram` log directory.
        path: where to write the PNG.
        title: optional figure title.
        missing_ok: when `log_dir` holds no gradient-norm scalars (a short run whose
            ``MonitoringBudget`` granted no gradient log), write nothing and return
            ``None`` instead of raising.

    Returns:
        The path of the written PNG, as a string (``None``: nothing to plot, with
        ``missing_ok``).

    Raises:
        ValueError: if `log_dir` holds no gradient-norm scalars (unless `missing_ok`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        steps, norms = layer_gradient_norms(log_dir)
    except ValueError:
        if missing_ok:
            return None
        raise
    layers = list(norms)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    colors = _viridis(len(layers))
    for color, layer in zip(colors, layers, strict=True):
        left.plot(steps, norms[layer], marker="o", markersize=3, color=color, label=layer)
    left.set_yscale("log")
    left.set_xlabel("step (epoch)")
    left.set_ylabel("gradient L2 norm")
    left.set_title("per-layer gradient norm")
    if len(layers) <= 12:
        left.legend(fontsize=7)
    depth = np.arange(len(layers))
    for i, label, style in ((0, "first", "--"), (len(steps) - 1, "last", "-")):
        left_values = np.array([norms[layer][i] for layer in layers])
        right.plot(depth, left_values, style, marker="o", label=f"{label} step ({steps[i]})")
    right.set_yscale("log")
    right.set_xlabel("layer (input → output)")
    right.set_ylabel("gradient L2 norm")
    right.set_title("norm by depth")
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _viridis(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]
