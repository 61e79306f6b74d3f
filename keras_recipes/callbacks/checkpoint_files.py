"""Array files of a checkpoint: one ``.npy`` per variable, unchanged ones hard-linked.

Small functions shared by :class:`~keras_recipes.callbacks.RunCheckpoint` (model,
optimizer and best-weight arrays) and :class:`~keras_recipes.callbacks.WeightHistogram`
(which skips weights that have not changed).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "array_file",
    "assign_arrays",
    "atomic_json",
    "link_arrays",
    "load_arrays",
    "same_values",
    "save_arrays",
]


def same_values(a: np.ndarray, b: np.ndarray | None) -> bool:
    """Whether two arrays hold the same values; a differing head is found without a full pass.

    Example:

    >>> same_values(np.arange(3), np.arange(3)), same_values(np.arange(3), np.ones(3))
    (True, False)
    """
    if b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.reshape(-1), b.reshape(-1)
    head = min(a.size, 4096)
    return bool(np.array_equal(a[:head], b[:head]) and np.array_equal(a, b))


def array_file(folder: Path, i: int) -> Path:
    """The file of array ``i`` in a checkpoint folder: ``folder/v00012.npy``."""
    return Path(folder) / f"v{i:05d}.npy"


def save_arrays(
    folder: Path, values: Iterable[tuple[np.ndarray, bool]], previous: Path | None
) -> None:
    """Writes one ``.npy`` per ``(array, changed)`` into a new `folder`.

    An array flagged unchanged is a hard link to the same-numbered file of `previous`
    (the folder of the last checkpoint) when that file exists, so a frozen backbone is
    written once, not every epoch.

    Example:

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> save_arrays(root / "a", [(np.ones(2), True), (np.zeros(3), True)], None)
    >>> save_arrays(root / "b", [(np.ones(2), False), (np.ones(3), True)], root / "a")
    >>> os.path.samefile(array_file(root / "a", 0), array_file(root / "b", 0))
    True
    >>> [a.tolist() for a in load_arrays(root / "b")]
    [[1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    folder = Path(folder)
    folder.mkdir()
    for i, (array, changed) in enumerate(values):
        path = array_file(folder, i)
        if not changed and previous is not None and array_file(previous, i).is_file():
            os.link(array_file(previous, i), path)
        else:
            with open(path, "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())  # on disk before the checkpoint is renamed complete


def link_arrays(source: Path, folder: Path) -> None:
    """A new `folder` whose array files are hard links to those of `source`."""
    folder = Path(folder)
    folder.mkdir()
    for path in sorted(Path(source).glob("v*.npy")):
        os.link(path, folder / path.name)


def load_arrays(folder: Path) -> list[np.ndarray] | None:
    """The arrays of a folder written by :func:`save_arrays`, in order; ``None`` if absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    count = len(list(folder.glob("v*.npy")))
    return [np.load(array_file(folder, i), allow_pickle=False) for i in range(count)]


def atomic_json(path: Path, obj) -> None:
    """Writes `obj` as JSON to a temporary file, then renames it over `path`.

    A reader never sees a half-written file: it finds the old content or the new; the
    content is flushed to disk before the rename.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=1, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def assign_arrays(variables: Sequence, values: Sequence[np.ndarray], what: str) -> None:
    """Assigns saved arrays to variables, checking their number and shapes first.

    Raises:
        ValueError: naming `what` and the first variable that does not match.
    """
    if len(variables) != len(values):
        raise ValueError(
            f"The checkpoint holds {len(values)} {what} variables but the model has "
            f"{len(variables)}: it was written by another model or configuration."
        )
    for v, a in zip(variables, values, strict=True):
        if tuple(v.shape) != tuple(a.shape):
            raise ValueError(
                f"The checkpoint's {what} variable for {v.path} has shape {tuple(a.shape)}, "
                f"the model's has {tuple(v.shape)}: it was written by another model."
            )
    for v, a in zip(variables, values, strict=True):
        v.assign(a)
