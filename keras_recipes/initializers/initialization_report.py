"""`initialization_report`: activation std and gradient norm per layer, before training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from keras_recipes.backend import loss_and_gradients
from keras_recipes.initializers.probing import all_site_outputs, layer_sites

__all__ = ["InitializationReport", "initialization_report"]

_COLUMNS = (
    ("layer", "layer", "{}"),
    ("class", "class", "{}"),
    ("output_shape", "output", "{}"),
    ("weight_std", "weight std", "{:.4g}"),
    ("activation_std", "activation std", "{:.4g}"),
    ("grad_norm", "grad norm", "{:.4g}"),
)


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "x".join("?" if d is None else str(d) for d in value)
    return spec.format(value)


@dataclass
class InitializationReport:
    """Per-layer signal statistics of a model at initialization.

    Each row is a dict with ``layer`` (path), ``class``, ``output_shape`` (of
    the batch), ``weight_std`` (std of the layer's ``kernel``, or None),
    ``activation_std`` (std of the layer's output over the batch) and
    ``grad_norm`` (L2 norm of the loss gradient with respect to all of the
    layer's trainable weights, or None without labels / trainable weights).

    A falling ``activation_std`` from the first to the last layer shows a
    vanishing forward signal; a falling (rising) ``grad_norm`` towards the
    first layers shows vanishing (exploding) gradients.

    Example:

    >>> rows = [{"layer": "fc", "class": "Dense", "output_shape": (8, 3),
    ...          "weight_std": 0.5, "activation_std": 1.25, "grad_norm": None}]
    >>> print(InitializationReport(rows).table())
    layer  class  output  weight std  activation std  grad norm
    fc     Dense  8x3     0.5         1.25            -

    Args:
        rows: the per-layer dicts, in model order.
        loss: the loss on the batch (None without labels).
    """

    rows: list[dict] = field(default_factory=list)
    loss: float | None = None

    def table(self) -> str:
        """The rows as an aligned text table (one line per layer)."""
        cells = [[title for _, title, _ in _COLUMNS]]
        for row in self.rows:
            cells.append([_fmt(row.get(key), spec) for key, _, spec in _COLUMNS])
        widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.table()

    def save_plot(self, path: str | Path) -> Path:
        """Writes a PNG: activation std and gradient norm per layer (log scale)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        names = [row["layer"] for row in self.rows]
        index = np.arange(len(names))
        has_grads = any(row.get("grad_norm") is not None for row in self.rows)
        fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 6.5 if has_grads else 3.8))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2 if has_grads else 1, 1, sharex=True, squeeze=False)[:, 0]
        series = [("activation_std", "activation std", "tab:blue")]
        if has_grads:
            series.append(("grad_norm", "gradient norm", "tab:red"))
        for ax, (key, label, color) in zip(axes, series, strict=True):
            values = np.array(
                [np.nan if row.get(key) is None else row[key] for row in self.rows], float
            )
            ax.plot(index, values, "o-", color=color)
            ax.set_yscale("log")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_title("Signal per layer at initialization")
        axes[-1].set_xticks(index)
        axes[-1].set_xticklabels(names, rotation=60, ha="right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
        return path


def initialization_report(
    model: keras.Model,
    x,
    y=None,
    *,
    plot_path: str | Path | None = None,
) -> InitializationReport:
    """Standard deviation of activations and gradient norm per layer, at initialization.

    Shows vanishing or exploding signal before any training (course §2-3):
    runs the batch `x` through the model once in inference mode and records,
    per layer, the std of its output; with labels `y`, also the norm of the
    gradient of the compiled loss (plus regularization) with respect to the
    layer's trainable weights, computed with
    `keras_recipes.backend.loss_and_gradients` (no side effects on any
    backend). Nested Functional/Sequential models are entered.

    Example:

    >>> import keras, numpy as np
    >>> from keras_recipes.initializers import Xavier
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="sigmoid", name="h1",
    ...                        kernel_initializer=Xavier("sigmoid", seed=0)),
    ...     keras.layers.Dense(1, name="out", kernel_initializer=Xavier(seed=1))])
    >>> model.compile(loss="mse")
    >>> x = np.ones((16, 4), "float32"); y = np.zeros((16, 1), "float32")
    >>> report = initialization_report(model, x, y)
    >>> [row["layer"] for row in report.rows], report.rows[0]["grad_norm"] > 0
    (['h1', 'out'], True)

    Args:
        model: a built Functional or Sequential ``keras.Model``; compiled when
            `y` is given.
        x: one batch of inputs.
        y: optional labels of that batch, for the gradient norms.
        plot_path: optional path of a PNG plot to write (see
            `InitializationReport.save_plot`).

    Returns:
        An `InitializationReport` (``.rows``, ``.loss``, ``.table()``,
        ``.save_plot(path)``).

    Raises:
        ValueError: if the model is not a built Functional/Sequential model,
            or `y` is given and the model is not compiled.

    References:
        - Glorot & Bengio, "Understanding the difficulty of training deep
          feedforward neural networks", AISTATS 2010 (activation and
          gradient statistics per layer).
    """
    sites = layer_sites(model)
    outputs = all_site_outputs(model, x)
    grads_by_id, loss = {}, None
    if y is not None:
        variables = list(model.trainable_variables)
        loss, grads = loss_and_gradients(model, x, y)
        grads_by_id = {id(v): g for v, g in zip(variables, grads, strict=True)}
    rows = []
    for site in sites:
        out = outputs[site.path].astype("float64")
        kernel = getattr(site.layer, "kernel", None)
        weight_std = None
        if isinstance(kernel, keras.Variable):
            weight_std = float(np.std(np.asarray(keras.ops.convert_to_numpy(kernel), "float64")))
        grad_norm = None
        if y is not None:
            squares = [
                float(np.sum(np.square(grads_by_id[id(v)], dtype="float64")))
                for v in site.layer.trainable_weights
                if id(v) in grads_by_id
            ]
            grad_norm = math.sqrt(sum(squares)) if squares else None
        rows.append(
            {
                "layer": site.path,
                "class": type(site.layer).__name__,
                "output_shape": tuple(out.shape),
                "weight_std": weight_std,
                "activation_std": float(np.std(out)),
                "grad_norm": grad_norm,
            }
        )
    report = InitializationReport(rows=rows, loss=loss)
    if plot_path is not None:
        report.save_plot(plot_path)
    return report
