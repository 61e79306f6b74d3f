"""RecipeError and run_recipe: a recipe's bad input as one paragraph and an exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keras_recipes.experiments.command_line import parse_config

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "RecipeError", "run_recipe"]

#: Exit status of a bad command line or bad input (argparse's own).
EXIT_BAD_INPUT = 2
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


class RecipeError(Exception):
    """A bad input to a recipe: :func:`run_recipe` prints it as one paragraph and exits.

    Example:

    >>> err = RecipeError("--data 'x': no such folder.")
    >>> str(err), err.code
    ("--data 'x': no such folder.", 2)

    Args:
        message: what is wrong and what is expected, naming the flag.
        code: the exit status (default ``EXIT_BAD_INPUT``).
    """

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = int(code)


def run_recipe(
    run: Callable[[Any, list[str]], int | None],
    defaults: Any,
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
    smoke: Mapping[str, Any] | None = None,
    check: Callable[[Any], None] | None = None,
    interrupted: str = "",
) -> int:
    """Parses the command line, checks it, runs the recipe; returns the exit status.

    ``run(config, command)`` gets the parsed configuration and the full command (the
    interpreter, the script and the arguments, to record in the run folder) and returns
    its exit status (``None``: 0). A :class:`RecipeError` raised by `check` or `run` is
    printed as ``error: <message>`` on stderr, without a traceback, and its ``code`` is
    returned; a bad flag returns argparse's status 2 (its message printed), ``--help`` 0,
    and Ctrl-C ``EXIT_INTERRUPTED`` after printing ``interrupted`` and the `interrupted`
    hint. Any other exception propagates with its traceback: it is a bug, not an input.

    Example:

    >>> import dataclasses
    >>> from keras_recipes.experiments import option
    >>> @dataclasses.dataclass
    ... class Defaults:
    ...     epochs: int = option(3, "training epochs")
    >>> def run(config, command):
    ...     if config.epochs > 10:
    ...         raise RecipeError(f"--epochs {config.epochs}: at most 10 here.")
    ...     return 0
    >>> run_recipe(run, Defaults, ["--epochs", "5"])
    0
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     code = run_recipe(run, Defaults, ["--epochs", "50"])
    >>> code, err.getvalue().strip()
    (2, 'error: --epochs 50: at most 10 here.')

    Args:
        run: ``run(config, command) -> exit status``.
        defaults: the recipe's defaults dataclass (see :func:`parse_config`).
        argv: the arguments (default ``sys.argv[1:]``).
        description: the ``--help`` header.
        smoke: the overrides of ``--smoke``.
        check: ``check(config)``, raising :class:`RecipeError` for settings that cannot
            run, before anything is loaded or written.
        interrupted: a hint printed after Ctrl-C (e.g. ``": continue with --resume"``).

    Returns:
        The exit status, for ``sys.exit``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = parse_config(defaults, argv, description=description, smoke=smoke,
                              verbose=False)
        if check is not None:
            check(config)
        return int(run(config, [sys.executable, *sys.argv[:1], *argv]) or 0)
    except RecipeError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return err.code
    except SystemExit as err:  # argparse has printed its message (or the help)
        return err.code if isinstance(err.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\ninterrupted{interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
