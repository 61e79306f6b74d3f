"""Command-line configurations, run folders and result tables for the scripts in ``recipes/``.

Every recipe follows one pattern (house style §5): a dataclass of defaults,
each field declared with :func:`option` (default + help text), turned into a
command line by :func:`parse_config`, printed once, saved to ``config.json`` in
a fresh run folder from :func:`make_run_dir`; results are written with
:func:`save_json` (strict JSON: non-finite numbers become ``null``) and
summarized over seeds with :func:`mean_sd` and :func:`markdown_table`.
:class:`RecipeConfig` holds the settings every recipe shares (backend, threads,
data, seeds, output folder, ``--smoke``); :func:`start_run` and
:func:`finish_run` are a recipe's first and last steps (command line, data,
run folder; results table, metrics, the closing message).

The Keras backend must be chosen before Keras is imported, and importing this
package imports Keras, so each recipe sets ``KERAS_BACKEND`` from ``--backend``
itself, in its first lines; :func:`parse_config` then checks that the flag and
the loaded backend agree.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "RecipeConfig",
    "finish_run",
    "fingerprint",
    "format_mean_sd",
    "make_run_dir",
    "markdown_table",
    "mean_sd",
    "option",
    "parse_config",
    "predict_logits",
    "print_config",
    "pyplot",
    "save_json",
    "seeded_batches",
    "sparse_scores",
    "start_run",
    "summarize",
    "tensorboard_scalars",
    "to_jsonable",
]

BACKENDS = ("torch", "tensorflow", "jax")


def option(default: Any, help: str) -> Any:
    """Declares one recipe setting: its default and the ``--help`` text.

    Use it for every field of a recipe's defaults dataclass; tuples are given on
    the command line comma-separated (``--seeds 0,1,2``), booleans as
    ``--flag`` / ``--no-flag``.

    Example:

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Defaults:
    ...     epochs: int = option(5, "training epochs")
    ...     seeds: tuple = option((0, 1), "seeds, comma-separated")
    >>> parse_config(Defaults, ["--seeds", "3,4"], verbose=False)
    Defaults(epochs=5, seeds=(3, 4))

    Args:
        default: the default value (int, float, str, bool, or a tuple of those).
        help: one line for ``--help``.

    Returns:
        A ``dataclasses.field`` carrying the help text.
    """
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={"help": help})


def _tuple_parser(item_type: type):
    def parse(text: str) -> tuple:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        return tuple(item_type(p) for p in parts)

    return parse


def _item_type(default: tuple) -> type:
    types = {type(v) for v in default}
    if types <= {int}:
        return int
    if types <= {int, float}:
        return float
    return str


def parse_config(
    defaults: Any,
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    smoke: Mapping[str, Any] | None = None,
    verbose: bool = True,
) -> Any:
    """Builds a recipe's configuration from its defaults dataclass and the command line.

    Each field becomes ``--field-name`` (underscores as dashes) with the field's
    type and help text. When the dataclass has a ``smoke`` field and
    ``--smoke`` is given, the ``smoke`` overrides apply to every field the
    command line did not set explicitly. When it has a ``backend`` field, the
    value must name the backend Keras was imported with (the recipe sets
    ``KERAS_BACKEND`` from ``--backend`` before importing Keras).

    Example:

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Defaults:
    ...     epochs: int = option(20, "training epochs")
    ...     lr: float = option(0.01, "learning rate")
    ...     smoke: bool = option(False, "tiny run for tests")
    >>> parse_config(Defaults, ["--smoke", "--lr", "0.1"], smoke={"epochs": 1, "lr": 1.0},
    ...              verbose=False)
    Defaults(epochs=1, lr=0.1, smoke=True)

    Args:
        defaults: a dataclass (class or instance) whose fields are declared
            with :func:`option`.
        argv: the arguments (default ``sys.argv[1:]``).
        description: the ``--help`` header (usually the recipe's docstring).
        smoke: field overrides applied by ``--smoke``.
        verbose: print the resolved configuration once (as JSON).

    Returns:
        An instance of the dataclass with the resolved values.

    Raises:
        SystemExit: for an unknown flag or a value of the wrong type
            (argparse's message and exit status 2), or a ``--backend`` that
            differs from the backend Keras runs on.
    """
    cls = defaults if isinstance(defaults, type) else type(defaults)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(
            "Invalid value for argument `defaults`. Expected a dataclass. "
            f"Received: defaults={defaults!r}"
        )
    base = defaults() if isinstance(defaults, type) else defaults
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for f in dataclasses.fields(cls):
        value = getattr(base, f.name)
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if isinstance(value, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(value, tuple):
            kwargs["type"] = _tuple_parser(_item_type(value))
            value_text = ",".join(str(v) for v in value)
            kwargs["metavar"] = "A,B,..."
            text = f"{text} (default: {value_text})"
        else:
            kwargs["type"] = type(value) if value is not None else str
            if f.name == "backend":
                kwargs["choices"] = BACKENDS
        if not isinstance(value, tuple):
            text = f"{text} (default: {value})"
        parser.add_argument(flag, help=text, **kwargs)
    given = vars(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    if given.get("smoke", values.get("smoke", False)) and smoke:
        unknown = sorted(set(smoke) - set(values))
        if unknown:
            raise ValueError(
                "Invalid value for argument `smoke`. Expected overrides of existing fields. "
                f"Received unknown fields: {unknown}"
            )
        values.update(smoke)
    values.update(given)
    config = cls(**values)
    if "backend" in values:
        import keras

        running = keras.backend.backend()
        if config.backend != running:
            parser.error(
                f"--backend {config.backend} but Keras was imported with the {running} "
                "backend: set KERAS_BACKEND or --backend before Keras is imported."
            )
    if verbose:
        print_config(config)
    return config


def print_config(config: Any) -> None:
    """Prints a configuration dataclass once, as one JSON object, so a log says what ran."""
    print("config: " + json.dumps(to_jsonable(dataclasses.asdict(config)), sort_keys=True))


def make_run_dir(out: str | os.PathLike, name: str) -> Path:
    """Creates a fresh run folder ``out/<name>-<YYYYmmdd-HHMMSS>[-k]`` and returns it.

    Never reuses an existing folder: a suffix ``-1``, ``-2``, ... is added when
    two runs start within the same second.

    Example:

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> a, b = make_run_dir(root, "demo"), make_run_dir(root, "demo")
    >>> a != b, a.is_dir(), a.name.startswith("demo-")
    (True, True, True)

    Args:
        out: the parent folder (created if missing).
        name: the recipe's name.

    Returns:
        The path of the new, empty folder.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}-{stamp}"
    k = 0
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = root / f"{name}-{stamp}-{k}"


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


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as strict, indented JSON (see :func:`to_jsonable`) and returns the path."""
    path = Path(path)
    path.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
    return path


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


def seeded_batches(x: Any, y: Any, batch_size: int, seed: int):
    """Training batches whose order depends on `seed` alone, reshuffled every epoch.

    Keras's own ``shuffle=True`` draws from the backend's global random state,
    which other code also consumes (on torch, the first ``fit`` of a process
    draws differently from later ones), so two variants of a comparison could
    see different batches. This ``keras.utils.PyDataset`` uses its own NumPy
    generator: a fresh instance with the same `seed` gives the same batches,
    epoch after epoch, under every backend. Pass ``shuffle=False`` to ``fit``:
    with its default ``shuffle=True`` Keras also permutes the batch order with
    Python's global ``random``.

    Example:

    >>> x, y = np.arange(10, dtype="float32")[:, None], np.arange(10)
    >>> a, b = seeded_batches(x, y, 4, seed=1), seeded_batches(x, y, 4, seed=1)
    >>> len(a), [int(v) for v in a[2][1]], bool(np.array_equal(a[0][1], b[0][1]))
    (3, [6, 3], True)
    >>> sorted(int(v) for i in range(len(a)) for v in a[i][1]) == list(range(10))
    True

    Args:
        x: input array (or a tuple/dict of arrays with the same first dimension).
        y: target array.
        batch_size: examples per batch (the last batch may be smaller).
        seed: seed of the order.

    Returns:
        A ``keras.utils.PyDataset`` of ``(x_batch, y_batch)`` NumPy tuples.
    """
    import keras

    class _SeededBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.n = len(y)
            self.order = self.rng.permutation(self.n)

        def __len__(self) -> int:
            return -(-self.n // int(batch_size))

        def __getitem__(self, index: int):
            idx = self.order[index * batch_size : (index + 1) * batch_size]
            take = lambda a: a[idx]  # noqa: E731
            return keras.tree.map_structure(take, x), take(y)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(self.n)

    return _SeededBatches()


def tensorboard_scalars(log_dir: str | os.PathLike):
    """A callback writing each epoch's logs to TensorBoard, without TensorFlow.

    Same layout and tags as ``keras.callbacks.TensorBoard``'s epoch scalars
    (``log_dir/train/epoch_loss``, ``log_dir/validation/epoch_loss`` for
    ``val_loss``, ...), written with the package's TensorFlow-free
    ``EventWriter``, so a torch or jax run does not import TensorFlow (which
    ``keras.callbacks.TensorBoard`` does, adding seconds to every run).

    Example:

    >>> import keras, tempfile
    >>> from keras_recipes.callbacks.event_writer import read_scalars
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    >>> _ = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
    ...               callbacks=[tensorboard_scalars(log_dir)])
    >>> [step for step, _ in read_scalars(log_dir + "/validation")["epoch_loss"]]
    [0, 1]

    Args:
        log_dir: the run's TensorBoard folder.

    Returns:
        A ``keras.callbacks.Callback``.
    """
    import keras

    from keras_recipes.callbacks.event_writer import EventWriter

    class _EpochScalars(keras.callbacks.Callback):
        def __init__(self, root: str) -> None:
            super().__init__()
            self.root = root
            self.writers: dict[str, EventWriter] = {}

        def _writer(self, split: str) -> EventWriter:
            if split not in self.writers:
                self.writers[split] = EventWriter(os.path.join(self.root, split))
            return self.writers[split]

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                self._writer(split).scalar(f"epoch_{name}", value, epoch)
            for writer in self.writers.values():
                writer.flush()

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()
            self.writers = {}

    return _EpochScalars(os.fspath(log_dir))


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


def _running_backend() -> str:
    import keras

    return keras.backend.backend()


@dataclasses.dataclass
class RecipeConfig:
    """The settings every recipe shares; a recipe's defaults dataclass extends it.

    A recipe redefines a field to change its default or help text (for
    example ``seeds`` or ``data``); the field keeps its place in ``--help``.

    Example:

    >>> @dataclasses.dataclass
    ... class Defaults(RecipeConfig):
    ...     epochs: int = option(20, "training epochs")
    >>> config = parse_config(Defaults, ["--seeds", "5", "--epochs", "3"], verbose=False)
    >>> config.seeds, config.epochs, config.data, config.out, config.smoke
    ((5,), 3, 'digits', 'runs', False)

    Args:
        backend: the Keras backend (default: the one Keras runs on); set
            before Keras is imported (``recipes/_bootstrap.py``).
        threads: CPU threads of the backend (0: its default).
        data: ``"digits"`` (bundled, offline) or a folder of class sub-folders.
        seeds: the seeds; results are given as mean ± sd over them.
        out: the parent folder of the run folder.
        smoke: a tiny run for the tests (the recipe's smoke overrides apply).
    """

    backend: str = dataclasses.field(
        default_factory=_running_backend,
        metadata={"help": "Keras backend: torch, tensorflow or jax"},
    )
    threads: int = option(0, "CPU threads of the backend (0: its default)")
    data: str = option("digits", "'digits' (bundled, offline) or a folder of class sub-folders")
    seeds: tuple = option((0, 1, 2), "seeds (mean ± sd over them)")
    out: str = option("runs", "parent folder of the run folder")
    smoke: bool = option(False, "tiny run for tests (overrides fields not given)")


def start_run(
    defaults: Any,
    load_data: Any,
    argv: Sequence[str] | None = None,
    *,
    name: str,
    description: str | None = None,
    smoke: Mapping[str, Any] | None = None,
    verbose: bool = True,
) -> tuple[Any, Any, Path]:
    """A recipe's first steps: configuration, CPU threads, data, then the run folder.

    The data is loaded before the folder is created, so a bad ``--data``
    leaves nothing half-written behind. The backend is switched to the settings
    that compile fastest on a CPU (``keras_recipes.backend.prefer_fast_compilation``:
    on JAX, the non-partitionable ``threefry`` layout of random bits).

    Example:

    >>> import tempfile
    >>> from keras_recipes.backend import prefer_fast_compilation
    >>> restore = prefer_fast_compilation()  # to undo start_run's switch after the example
    >>> root = tempfile.mkdtemp()
    >>> config, data, run_dir = start_run(
    ...     RecipeConfig, lambda c: [1, 2], ["--out", root], name="demo", verbose=False)
    >>> saved = json.loads((run_dir / "config.json").read_text())
    >>> data, run_dir.name.startswith("demo-"), saved["out"] == root
    ([1, 2], True, True)
    >>> restore()

    Args:
        defaults: the recipe's defaults dataclass (a :class:`RecipeConfig`
            subclass, or any dataclass with ``data`` and ``out`` fields).
        load_data: ``config -> data``; raises ``OSError`` or ``ValueError``
            when the data cannot be read.
        argv: the arguments (default ``sys.argv[1:]``).
        name: the recipe's name (prefix of the run folder).
        description: the ``--help`` header (the recipe's docstring).
        smoke: the overrides of ``--smoke`` (see :func:`parse_config`).
        verbose: print the resolved configuration once.

    Returns:
        ``(config, data, run_dir)``; ``run_dir`` holds ``config.json``.

    Raises:
        SystemExit: with a one-line ``"error: cannot load --data ..."``
            message when `load_data` fails, or argparse's exit status 2 for a
            bad command line.
    """
    config = parse_config(defaults, argv, description=description, smoke=smoke, verbose=verbose)
    from keras_recipes.backend import prefer_fast_compilation, set_num_threads

    prefer_fast_compilation()  # JAX: a random draw compiles in ~0.5 s of CPU instead of 3-10 s
    if getattr(config, "threads", 0):
        set_num_threads(config.threads)
    try:
        data = load_data(config)
    except (OSError, ValueError) as e:  # a missing or empty folder, a failed download
        sys.exit(f"error: cannot load --data {config.data!r}: {e}")
    run_dir = make_run_dir(config.out, name)
    save_json(run_dir / "config.json", dataclasses.asdict(config))
    return config, data, run_dir


def finish_run(
    run_dir: str | os.PathLike,
    *,
    title: str,
    summary: str,
    table: str,
    metrics: Mapping[str, Any],
    outputs: Sequence[str] = (),
) -> None:
    """A recipe's last steps: ``results.md``, ``metrics.json``, the table and the folder printed.

    Example:

    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> finish_run(run_dir, title="Demo", summary="backend x.", table="| a |\\n|---|",
    ...            metrics={"acc": np.float32(0.5)}, outputs=["curves.png"])  # doctest: +ELLIPSIS
    <BLANKLINE>
    | a |
    |---|
    <BLANKLINE>
    Run folder: ... (results.md, metrics.json, curves.png)
    >>> (run_dir / "results.md").read_text().splitlines()[:3]
    ['# Demo', '', 'backend x.']
    >>> json.loads((run_dir / "metrics.json").read_text())
    {'acc': 0.5}

    Args:
        run_dir: the run folder from :func:`start_run`.
        title: the heading of ``results.md``.
        summary: the paragraph(s) above the table (backend, device, settings, times).
        table: the Markdown table (:func:`markdown_table`).
        metrics: everything measured, saved as strict JSON (:func:`save_json`).
        outputs: the other files of the run folder, named in the closing line.
    """
    run_dir = Path(run_dir)
    (run_dir / "results.md").write_text(f"# {title}\n\n{summary.strip()}\n\n{table}\n")
    save_json(run_dir / "metrics.json", metrics)
    print("\n" + table)
    files = ", ".join(["results.md", "metrics.json", *outputs])
    print(f"\nRun folder: {run_dir} ({files})")


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
