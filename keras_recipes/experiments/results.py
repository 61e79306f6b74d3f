"""A recipe's results: per-seed summaries, Markdown tables, CSV history and curve plots."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "fingerprint",
    "format_mean_sd",
    "markdown_table",
    "mean_sd",
    "phase_summaries",
    "plot_curves",
    "predict_logits",
    "pyplot",
    "sparse_scores",
    "summarize",
    "to_jsonable",
    "write_csv",
]


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value).

    Example:

    >>> mean_sd([0.9, 0.8, 1.0])
    (0.9, 0.1)
    """
    arr = np.asarray(list(values), dtype="float64")
    if arr.size == 0:
        return float("nan"), float("nan")
    sd = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return round(float(np.mean(arr)), 12), round(sd, 12)


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """``{"values": [...], "mean": m, "sd": s}`` of per-seed results, for ``metrics.json``.

    Example:

    >>> summarize([1.0, 3.0])
    {'values': [1.0, 3.0], 'mean': 2.0, 'sd': 1.414213562373}
    """
    values = [float(v) for v in values]
    mean, sd = mean_sd(values)
    return {"values": values, "mean": mean, "sd": sd}


def format_mean_sd(summary: Mapping[str, Any], digits: int = 3, scale: float = 1.0) -> str:
    """``"m ± s"`` of a :func:`summarize` result (``"nan"`` when non-finite).

    Example:

    >>> format_mean_sd(summarize([0.91, 0.93]), digits=1, scale=100)
    '92.0 ± 1.4'
    """
    mean, sd = summary["mean"], summary["sd"]
    if mean is None or not math.isfinite(mean):
        return "nan"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (one header row) from column names and rows of cells.

    Example:

    >>> print(markdown_table(["variant", "acc"], [["none", "0.91"], ["l2", "0.93"]]))
    | variant | acc |
    |---|---|
    | none | 0.91 |
    | l2 | 0.93 |
    """
    lines = ["| " + " | ".join(str(c) for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(
                f"Invalid row for a table of {len(columns)} columns. Received: {list(row)!r}"
            )
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def fingerprint(weights: Iterable[Any]) -> str:
    """A short hash of a list of weight arrays (their float32 bytes and shapes).

    Recipes record it per variant to show that a controlled comparison started
    every variant from exactly the same initial weights.

    Example:

    >>> a = [np.ones((2, 2)), -np.ones(3)]
    >>> fingerprint(a) == fingerprint([w.copy() for w in a]), fingerprint(a) == fingerprint(a[::-1])
    (True, False)
    >>> len(fingerprint(a))
    16
    """
    digest = hashlib.sha256()
    for w in weights:
        arr = np.ascontiguousarray(np.asarray(w, dtype="float32"))
        digest.update(str(arr.shape).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (no display needed), imported on use.

    Example:

    >>> pyplot().get_backend().lower()
    'agg'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def predict_logits(model: Any, x: Any, batch_size: int = 512) -> np.ndarray:
    """The model's outputs on `x` in inference mode, by direct calls, as one NumPy array.

    ``model.predict`` and ``model.evaluate`` first compile a function for the
    model (a ``tf.function`` trace on TensorFlow, a jit on JAX), which costs
    more than the call itself when a recipe scores a small held-out set once
    per trained model; here every batch is a plain ``model(x, training=False)``.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    >>> model.set_weights([np.array([[1.0], [2.0]], "float32")])
    >>> predict_logits(model, np.array([[1, 1], [3, 0], [0, 1]], "float32"), batch_size=2)[:, 0]
    array([3., 3., 2.], dtype=float32)

    Args:
        model: a built ``keras.Model``.
        x: a NumPy array (batched along the first axis).
        batch_size: examples per call.

    Returns:
        The concatenated outputs, a NumPy array.
    """
    import keras

    outputs = [
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def sparse_scores(logits: np.ndarray, labels: Any) -> tuple[float, float]:
    """Mean cross-entropy (from logits) and accuracy of integer `labels`, in float64 NumPy.

    Example:

    >>> loss, acc = sparse_scores(np.array([[2.0, 0.0], [0.0, 0.0]]), [0, 1])
    >>> round(loss, 4), acc
    (0.41, 0.5)

    Args:
        logits: ``(N, classes)`` scores.
        labels: ``(N,)`` integer classes.

    Returns:
        ``(loss, accuracy)`` as floats.
    """
    logits = np.asarray(logits, dtype="float64")
    labels = np.asarray(labels).astype(int).reshape(-1)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = float(np.mean(log_z - logits[np.arange(len(labels)), labels]))
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    return loss, accuracy


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Writes rows of dicts as CSV, the columns in order of first appearance; returns the path.

    Example:

    >>> import tempfile
    >>> path = write_csv(Path(tempfile.mkdtemp()) / "h.csv", [{"a": 1}, {"a": 2, "b": 3}])
    >>> path.read_text().splitlines()
    ['a,b', '1,', '2,3']
    """
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def phase_summaries(
    history: Sequence[Mapping[str, Any]],
    phase_ends: Mapping[str, int],
    keys: Sequence[str] = ("val_loss", "val_top1"),
) -> list[dict[str, Any]]:
    """The logs of each training phase's last epoch (e.g. warm-up, then fine-tuning).

    Example:

    >>> h = [{"epoch": e, "val_top1": 0.1 * e} for e in range(5)]  # epochs 0-4 done
    >>> phase_summaries(h, {"head": 2, "fine-tune": 6}, keys=("val_top1",))
    [{'phase': 'head', 'epochs': '1-2', 'val_top1': 0.1}, {'phase': 'fine-tune', 'epochs': '3-5', \
'val_top1': 0.4}]

    Args:
        history: per-epoch records with a 0-based ``"epoch"`` (``RunCheckpoint.history``).
        phase_ends: ``{phase name: one past its last epoch}``, in order; each phase starts
            where the previous one ends (the first at epoch 0).
        keys: the logs to keep of each phase's last epoch (``None`` where missing).

    Returns:
        One record per phase with at least one epoch done: ``"phase"``, ``"epochs"``
        (1-based, first-last done) and `keys`.
    """
    rows, first = [], 0
    for phase, end in phase_ends.items():
        done = [h for h in history if first <= h["epoch"] < end]
        if done:
            last = done[-1]
            rows.append({"phase": phase, "epochs": f"{first + 1}-{last['epoch'] + 1}",
                         **{k: last.get(k) for k in keys}})
        first = end
    return rows


def plot_curves(
    path: str | os.PathLike,
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[tuple[str, str]] = (("loss", "loss"), ("top1", "top-1 accuracy")),
    marks: Mapping[str, float] | None = None,
) -> Path:
    """Training and validation curves of several runs side by side, one panel per metric.

    Example:

    >>> import tempfile
    >>> h = {"a": [{"epoch": 1, "loss": 1.0, "val_loss": 1.2, "top1": 0.5, "val_top1": 0.4},
    ...            {"epoch": 2, "loss": 0.8, "val_loss": 1.0, "top1": 0.6, "val_top1": 0.5}]}
    >>> out = plot_curves(Path(tempfile.mkdtemp()) / "c.png", h, marks={"unfreeze": 1.5})
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True

    Args:
        path: the PNG to write.
        histories: ``{run name: [per-epoch record with "epoch", key, "val_" + key]}``.
        metrics: ``(key, title)`` of each panel.
        marks: ``{label: x}`` vertical dotted lines (an unfreeze epoch, a stop).

    Returns:
        The path written.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for k, (name, records) in enumerate(histories.items()):
        epochs = [r["epoch"] for r in records]
        for ax, (key, _) in zip(axes[0], metrics, strict=True):
            style = styles[k % len(styles)]
            ax.plot(epochs, [r.get(key) for r in records], style, color="tab:blue",
                    label=f"{name} train")
            ax.plot(epochs, [r.get("val_" + key) for r in records], style,
                    color="tab:orange", label=f"{name} val")
    for ax, (_, title) in zip(axes[0], metrics, strict=True):
        for label, x in (marks or {}).items():
            ax.axvline(x, color="gray", linestyle=":", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Converts NumPy scalars/arrays, tuples and paths to plain JSON values.

    Non-finite floats become ``None`` (strict JSON has no NaN); record
    divergence in a separate field.

    Example:

    >>> to_jsonable({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": float("nan")})
    {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
