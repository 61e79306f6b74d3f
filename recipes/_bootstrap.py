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


# TensorFlow's start-up notices, printed by its C++ logging before Python's logging exists
# (TF_CPP_MIN_LOG_LEVEL does not hide them): dropped when TensorFlow only feeds the data.
_TF_NOTICES = ("All log messages before absl::InitializeLog()", "oneDNN custom operations",
               "Could not find cuda drivers", "cpu_feature_guard", "To enable the following "
               "instructions", "failed call to cuInit", "Unable to register cu")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and starts its runtime with its start-up notices left out.

    The C++ notices go to file descriptor 2 directly, so it is pointed at a temporary file
    for the import and the first operation; every other line written there meanwhile (an
    error) is passed on to stderr.
    """
    import tempfile

    if importlib.util.find_spec("tensorflow") is None or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.constant(0)  # the runtime's device notices come with the first operation
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        for line in caught.read().decode(errors="replace").splitlines():
            if line.strip() and not any(n in line for n in _TF_NOTICES):
                print(line, file=sys.stderr)


def choose_backend(argv: list[str], resume_name: str | None = None,
                   quiet_tensorflow: bool = False) -> str:
    """Sets ``KERAS_BACKEND`` from ``--backend`` (else ``$KERAS_BACKEND``, else torch).

    With `resume_name`, ``--resume`` without ``--backend`` takes the backend of the
    newest run folder ``--out/<resume_name>-*`` (a resumed run continues on its backend).

    Also lets ``python recipes/<name>.py`` run from a checkout that was not
    pip-installed (the repository root goes on ``sys.path``).

    Args:
        argv: the script's arguments (``sys.argv[1:]``).
        resume_name: the run folders' prefix, for ``--resume`` (see above).
        quiet_tensorflow: under torch or jax, import TensorFlow (which feeds the data)
            now, without its start-up notices (:func:`import_tensorflow_quietly`).

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
    if quiet_tensorflow and backend != "tensorflow":
        import_tensorflow_quietly()
    if importlib.util.find_spec("keras_recipes") is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    return backend
