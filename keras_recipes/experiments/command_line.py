"""A recipe's command line: a dataclass of defaults turned into flags (house style §5).

Every recipe declares its settings as a dataclass whose fields are made with
:func:`option` (default + help text); :func:`parse_config` turns it into a command
line (``--smoke`` overrides, ``--backend`` checked against the loaded Keras) and
:class:`RecipeConfig` holds the settings every recipe shares.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from keras_recipes.experiments.results import to_jsonable

__all__ = [
    "BACKENDS",
    "RecipeConfig",
    "check_config",
    "option",
    "parse_config",
    "print_config",
]

BACKENDS = ("torch", "tensorflow", "jax")


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Any:
    """Declares one recipe setting: its default, the ``--help`` text and the values allowed.

    Use it for every field of a recipe's defaults dataclass; tuples are given on
    the command line comma-separated (``--seeds 0,1,2``), booleans as
    ``--flag`` / ``--no-flag``. :func:`check_config` (called by
    :func:`parse_config`) refuses a value outside `choices` or the bounds, and a
    bounded float that is NaN or infinite.

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
        choices: the values allowed, or ``None`` for any.
        minimum: the smallest value allowed (inclusive), or ``None``.
        above: a value the setting must exceed (exclusive), or ``None``.
        below: a value the setting must stay under (exclusive), or ``None``.

    Returns:
        A ``dataclasses.field`` carrying the help text and the checks.
    """
    if isinstance(default, list):
        default = tuple(default)
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    bounds = {k: v for k, v in (("minimum", minimum), ("above", above), ("below", below))
              if v is not None}
    if bounds:
        metadata["bounds"] = bounds
    return dataclasses.field(default=default, metadata=metadata)


def _expected(value: Any, bounds: Mapping[str, float]) -> str:
    kind = "an int" if isinstance(value, int) else "a float"
    low, above, below = bounds.get("minimum"), bounds.get("above"), bounds.get("below")
    if low is not None and below is not None:
        return f"{kind} in [{low:g}, {below:g})"
    parts = [f">= {low:g}" if low is not None else "", f"> {above:g}" if above is not None
             else "", f"< {below:g}" if below is not None else ""]
    return f"{kind} " + " and ".join(p for p in parts if p)


def check_config(config: Any) -> None:
    """Checks every field declared with `choices` or bounds in :func:`option`.

    Example:

    >>> @dataclasses.dataclass
    ... class Defaults:
    ...     momentum: float = option(0.9, "SGD momentum", minimum=0, below=1)
    >>> check_config(Defaults(momentum=1.5))
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for --momentum: 1.5. Expected a float in [0, 1).

    Args:
        config: an instance of a dataclass whose fields are made with :func:`option`.

    Raises:
        ValueError: naming the first flag whose value is not allowed, the value and
            what is expected.
    """
    import math

    for f in dataclasses.fields(config):
        value, flag = getattr(config, f.name), "--" + f.name.replace("_", "-")
        choices, bounds = f.metadata.get("choices"), f.metadata.get("bounds")
        if choices is not None and value not in choices:
            expected = " | ".join(map(str, choices))
        elif bounds and (
            isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or ("minimum" in bounds and value < bounds["minimum"])
            or ("above" in bounds and value <= bounds["above"])
            or ("below" in bounds and value >= bounds["below"])
        ):
            expected = _expected(value, bounds)
        else:
            continue
        raise ValueError(f"Invalid value for {flag}: {value!r}. Expected {expected}.")


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
        SystemExit: for an unknown flag, a value of the wrong type or one that
            :func:`check_config` refuses (argparse's message and exit status 2), or a
            ``--backend`` that
            differs from the backend Keras runs on.
    """
    cls = defaults if isinstance(defaults, type) else type(defaults)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(
            "Invalid value for argument `defaults`. Expected a dataclass. "
            f"Received: defaults={defaults!r}"
        )
    base = defaults() if isinstance(defaults, type) else defaults
    # One usage line: every flag is listed below it with its default, not in a synopsis.
    parser = argparse.ArgumentParser(
        usage="%(prog)s [options]", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    try:
        check_config(config)
    except ValueError as err:
        parser.error(str(err))
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
