"""Run by every recipe script before Keras is imported: chooses the backend (house style §5).

Not a recipe: the few lines the scripts of ``recipes/`` share before their
first ``import keras``. They cannot live in ``keras_recipes.experiments``, because
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


def _saved_backend(argv: list[str], name: str) -> str | None:
    """The backend of the newest ``--out/<name>-*`` run, for ``--resume`` without ``--backend``."""
    import json

    out = "runs"
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            out = argv[i + 1]
        elif arg.startswith("--out="):
            out = arg.split("=", 1)[1]
    found = sorted(Path(out).expanduser().glob(f"{name}-*/config.json"))
    if not found:
        return None
    return json.loads(found[-1].read_text()).get("backend")


def _bad_input(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def choose_backend(argv: list[str], resume_name: str | None = None) -> str:
    """Sets ``KERAS_BACKEND`` from ``--backend`` (else ``$KERAS_BACKEND``, else torch).

    With `resume_name`, ``--resume`` without ``--backend`` takes the backend of the
    newest run folder ``--out/<resume_name>-*`` (a resumed run continues on its backend).

    Also lets ``python recipes/<name>.py`` run from a checkout that was not
    pip-installed (the repository root goes on ``sys.path``).

    Args:
        argv: the script's arguments (``sys.argv[1:]``).

    Returns:
        The backend chosen.

    Raises:
        SystemExit: status 2 (bad input, as argparse's), after a one-line message on
            stderr, for an unknown or missing backend.
    """
    backend = None
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            backend = argv[i + 1]
        elif arg.startswith("--backend="):
            backend = arg.split("=", 1)[1]
    if backend is None and resume_name and "--resume" in argv:
        backend = _saved_backend(argv, resume_name)
    backend = backend or os.environ.get("KERAS_BACKEND", "torch")
    if backend not in BACKENDS:
        _bad_input(f"--backend must be one of torch, tensorflow, jax. Received: {backend!r}")
    if importlib.util.find_spec(backend) is None:
        _bad_input(f"the {backend} backend is selected but the '{backend}' package is not "
                   f"installed. Install it (pip install {backend}) or choose another --backend.")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if importlib.util.find_spec("keras_recipes") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    return backend
