"""check_weights_file: a weights file that exists and reads as HDF5, or a clear error."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_weights_file"]


def check_weights_file(path: str | os.PathLike) -> Path:
    """Checks that `path` is a readable HDF5 weights file (``.h5`` / ``.weights.h5``).

    Run it before anything is trained or written, so that a wrong ``--weights`` fails in
    one line instead of deep inside model building.

    Example:

    >>> import keras, tempfile
    >>> path = tempfile.mkdtemp() + "/tiny.weights.h5"
    >>> keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(path)
    >>> check_weights_file(path).name
    'tiny.weights.h5'

    Args:
        path: the file (``~`` is expanded).

    Returns:
        The expanded path.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not readable as HDF5.
    """
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}. Expected an .h5 or .weights.h5 "
                                "weights file.")
    try:
        h5py.File(path, "r").close()
    except OSError as err:
        raise ValueError(f"{str(path)!r} is not a readable HDF5 weights file ({err}). "
                         "Expected an .h5 or .weights.h5 weights file.") from None
    return path
