"""The one dispatch table from (Keras backend, kind) to a data-parallel engine."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import keras

from keras_recipes.distribute.distribute_context import DistributeContext

__all__ = ["ENGINES", "KINDS", "scope_for", "setup"]


def _tensorflow_kinds():
    from keras_recipes.distribute.strategy_context import StrategyContext

    return {
        "mirrored": lambda **kw: StrategyContext("mirrored", **kw),
        "multi_worker": lambda **kw: StrategyContext("multi_worker", **kw),
    }


def _jax_kinds():
    from keras_recipes.distribute.data_parallel_context import DataParallelContext

    return {"data_parallel": DataParallelContext}


def _torch_kinds():
    from keras_recipes.distribute.ddp_context import DDPContext

    return {"ddp": DDPContext}


def _auto_tensorflow(options: dict) -> str:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("cluster", {})
    if sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")) > 1:
        return "multi_worker"
    if options.get("devices") is not None:
        return "mirrored"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "none"


def _auto_jax(options: dict) -> str:
    requested = options.get("num_processes") or os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    if requested is not None and int(requested) > 1:
        return "data_parallel"
    if options.get("devices") is not None:
        return "data_parallel"
    import jax

    return "data_parallel" if jax.device_count() > 1 else "none"


def _auto_torch(options: dict) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "ddp"
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        warnings.warn(
            f"{torch.cuda.device_count()} GPUs are visible but this process was not started "
            "by torchrun, so it trains on one. To use them all: torchrun --standalone "
            f"--nproc_per_node={torch.cuda.device_count()} <script> ...",
            stacklevel=3,
        )
    return "none"


def _tensorflow_scope(model):
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _jax_scope(model):
    distribution = keras.distribution.distribution()
    return distribution.scope() if distribution is not None else contextlib.nullcontext()


def _no_scope(model):
    return contextlib.nullcontext()


@dataclass(frozen=True)
class _Backend:
    kinds: Callable[[], dict]
    auto: Callable[[dict], str]
    scope_for: Callable
    options: dict = field(default_factory=dict)


ENGINES: dict[str, _Backend] = {
    "tensorflow": _Backend(
        _tensorflow_kinds, _auto_tensorflow, _tensorflow_scope,
        {"mirrored": ("devices",), "multi_worker": ("communication",)},
    ),
    "jax": _Backend(
        _jax_kinds, _auto_jax, _jax_scope,
        {"data_parallel": ("devices", "job_addresses", "num_processes", "process_id")},
    ),
    "torch": _Backend(
        _torch_kinds, _auto_torch, _no_scope,
        {"ddp": ("process_group_backend", "find_unused_parameters", "timeout_s")},
    ),
}
"""Per Keras backend: its engines (``kind`` -> factory), the ``"auto"`` rule,
the variable-creation scope of a model, and the options each kind accepts."""

KINDS: dict[str, tuple[str, ...]] = {
    backend: ("auto", "none", *entry.options) for backend, entry in ENGINES.items()
}
"""The ``kind`` values accepted by :func:`setup` under each backend."""


def setup(kind: str = "auto", **options) -> DistributeContext:
    """Picks the data-parallel engine of the current Keras backend.

    One call for every backend: the recipe code after it is the same
    (``with context.scope(): build; context.fit(...)``).

    | backend | ``kind`` | engine |
    |---|---|---|
    | tensorflow | ``"mirrored"`` | ``tf.distribute.MirroredStrategy`` (one host) |
    | tensorflow | ``"multi_worker"`` | ``tf.distribute.MultiWorkerMirroredStrategy`` |
    | jax | ``"data_parallel"`` | ``keras.distribution.DataParallel`` |
    | torch | ``"ddp"`` | ``DistributedDataParallel`` under ``torchrun`` |
    | any | ``"none"`` | one device, plain ``Model.fit`` |

    ``"auto"`` picks: tensorflow -> ``multi_worker`` when ``TF_CONFIG`` names
    several workers, ``mirrored`` with several GPUs, else ``none``; jax ->
    ``data_parallel`` for several processes or devices, else ``none``; torch ->
    ``ddp`` under ``torchrun`` with ``WORLD_SIZE > 1``, else ``none`` (with a
    warning when several GPUs are visible).

    Example:

    >>> context = setup("none")
    >>> context.kind, context.num_replicas, context.is_chief
    ('none', 1, True)
    >>> setup("no-such-engine")
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for argument `kind`. ...

    Args:
        kind: the engine (see the table), ``"auto"`` or ``"none"``.
        **options: engine options: ``devices`` (mirrored, data_parallel),
            ``communication`` (multi_worker), ``job_addresses``,
            ``num_processes``, ``process_id`` (data_parallel, several hosts),
            ``process_group_backend``, ``find_unused_parameters``,
            ``timeout_s`` (ddp).

    Returns:
        A :class:`DistributeContext`.

    Raises:
        ValueError: for a kind unknown or belonging to another backend (the
            message lists what this backend supports), an option the engine
            does not take, or an engine whose launch environment is missing
            (torch DDP outside ``torchrun``).
    """
    backend = keras.backend.backend()
    if backend not in ENGINES:
        raise ValueError(
            f"Unsupported Keras backend {backend!r} for data parallelism. Supported: "
            f"{sorted(ENGINES)}."
        )
    entry = ENGINES[backend]
    if kind not in KINDS[backend]:
        other = [b for b, kinds in KINDS.items() if kind in kinds]
        hint = f" ({kind!r} is the {other[0]} backend's engine.)" if other else ""
        raise ValueError(
            f"Invalid value for argument `kind`. Expected one of {list(KINDS[backend])} "
            f"under the {backend} backend. Received: kind={kind!r}.{hint}"
        )
    requested = kind
    if kind == "auto":
        kind = entry.auto(options)
    known = sorted({name for names in entry.options.values() for name in names})
    unknown = sorted(set(options) - set(known))
    if kind == "none":
        if requested == "none":
            unknown = sorted(k for k, v in options.items() if v is not None)
            known = []
    else:
        unknown = sorted(set(options) - set(entry.options[kind]))
        known = list(entry.options[kind])
    if unknown:
        raise ValueError(
            f"Invalid option(s) {unknown} for kind={kind!r} under the {backend} backend. "
            f"Expected some of {known}."
        )
    if kind == "none":
        return DistributeContext()
    return entry.kinds()[kind](**{k: v for k, v in options.items() if v is not None})


def scope_for(model: keras.Model) -> contextlib.AbstractContextManager:
    """The context in which new variables for ``model`` must be created.

    A callback that builds a new optimizer while ``fit`` runs (unfreezing)
    creates it inside this context: the model's ``tf.distribute`` strategy
    scope on tensorflow (its variables are then mirrored), the active
    ``keras.distribution`` on jax, nothing on torch. Without a distribution it
    is a no-op, so library code can use it unconditionally.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> with scope_for(model):
    ...     optimizer = keras.optimizers.SGD(0.1)
    ...     optimizer.build(model.trainable_variables)
    >>> len(optimizer.variables) > 0
    True

    Args:
        model: a ``keras.Model``.

    Returns:
        A context manager.
    """
    backend = keras.backend.backend()
    if backend not in ENGINES:
        return contextlib.nullcontext()
    return ENGINES[backend].scope_for(model)
