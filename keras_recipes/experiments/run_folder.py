"""A recipe's run folder: created fresh, ``config.json`` first, ``metrics.json`` last."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keras_recipes.experiments.command_line import parse_config
from keras_recipes.experiments.results import to_jsonable

__all__ = ["finish_run", "make_run_dir", "newest_run", "save_json", "start_run"]


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




def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` as strict, indented JSON (see :func:`to_jsonable`) and returns the path."""
    path = Path(path)
    path.write_text(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
    return path


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
    >>> from keras_recipes.experiments import RecipeConfig
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
    >>> import numpy as np
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


def newest_run(out: str | os.PathLike, name: str) -> Path | None:
    """The newest run folder ``out/<name>-*`` holding a ``config.json``, or None.

    Example:

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> newest_run(root, "demo") is None
    True
    >>> run = make_run_dir(root, "demo"); _ = save_json(run / "config.json", {})
    >>> newest_run(root, "demo") == run
    True
    """
    root = Path(out)
    if not root.is_dir():
        return None
    found = [p for p in root.glob(f"{name}-*") if (p / "config.json").is_file()]
    return max(found, key=lambda p: (p.name, p.stat().st_mtime)) if found else None
