"""Run by every recipe script before Keras is imported: chooses the backend (house style §5).

Not a recipe: the few lines the scripts of ``recipes/`` share before their
first ``import keras``. They cannot live in ``keras_recipes.runs``, because
importing any part of the package imports Keras, which fixes the backend.
A script imports it as ``from _bootstrap import choose_backend`` (Python puts the
script's folder, ``recipes/``, first on ``sys.path``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

BACKENDS = ("torch", "tensorflow", "jax")


def choose_backend(argv: list[str]) -> str:
    """Sets ``KERAS_BACKEND`` from ``--backend`` (else ``$KERAS_BACKEND``, else torch).

    Also lets ``python recipes/<name>.py`` run from a checkout that was not
    pip-installed (the repository root goes on ``sys.path``).

    Args:
        argv: the script's arguments (``sys.argv[1:]``).

    Returns:
        The backend chosen.

    Raises:
        SystemExit: with a one-line message for an unknown backend.
    """
    backend = os.environ.get("KERAS_BACKEND", "torch")
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            backend = argv[i + 1]
        elif arg.startswith("--backend="):
            backend = arg.split("=", 1)[1]
    if backend not in BACKENDS:
        sys.exit(f"error: --backend must be one of torch, tensorflow, jax. Received: {backend!r}")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if importlib.util.find_spec("keras_recipes") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    return backend
