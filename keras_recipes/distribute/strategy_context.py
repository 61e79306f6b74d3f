"""TensorFlow backend: ``tf.distribute`` Mirrored and MultiWorkerMirrored strategies."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from keras_recipes.distribute.distribute_context import (
    DistributeContext,
    _is_array_data,
    check_even_split,
)

__all__ = ["StrategyContext"]

_SEED_OFFSET = 1_000_003


def _is_float(variable) -> bool:
    return "float" in str(variable.dtype)


def sum_gradients_first(optimizer) -> bool:
    """Makes a Keras optimizer sum gradients over replicas as soon as it gets them.

    Under a multi-replica ``tf.distribute`` strategy, Keras 3's TensorFlow
    optimizer receives each replica's partial gradient in ``apply``, clips it
    (``clipnorm``, ``clipvalue``, ``global_clipnorm``) and only sums across
    replicas just before the update. So the clip acts on ``1 / num_replicas``
    of the gradient (measured: weights then differ from one device), and
    anything that reads the gradients ``apply`` receives (``GradientHistogram``
    capturing real steps) sees one replica's part. This makes ``apply`` (the
    inner one of a ``LossScaleOptimizer``) sum the gradients over replicas
    first, and the optimizer's own later sum a no-op: the update is the same
    sum, and clipping and readers see the global-batch gradient.

    The wrapper becomes the outermost ``apply``; applying it again (after
    another wrapper was installed on top) adds a new outermost one, and inner
    ones pass the gradients through, so they are summed exactly once.

    Returns:
        True if a wrapper was installed now (the train function must be
        retraced), False if the outermost ``apply`` already sums.
    """
    import tensorflow as tf

    target = getattr(optimizer, "inner_optimizer", optimizer)
    current = vars(target).get("apply")
    if current is not None and getattr(current, "_keras_recipes_sums", False):
        return False
    # MirroredStrategy traces each replica's step in its own thread: the flag
    # "already summed in this call chain" is per thread.
    state = vars(target).get("_keras_recipes_sum_state")
    if state is None:
        state = threading.local()
        object.__setattr__(target, "_keras_recipes_sum_state", state)
    inner = target.apply

    def apply(grads, trainable_variables=None):
        ctx = tf.distribute.get_replica_context()
        if getattr(state, "active", False) or ctx is None or ctx.num_replicas_in_sync == 1:
            return inner(grads, trainable_variables)
        grads = list(grads)
        present = [g for g in grads if g is not None]
        if present:
            summed = iter(ctx.all_reduce(tf.distribute.ReduceOp.SUM, present))
            grads = [None if g is None else next(summed) for g in grads]
        state.active = True
        try:
            return inner(grads, trainable_variables)
        finally:
            state.active = False

    apply._keras_recipes_sums = True
    object.__setattr__(target, "apply", apply)
    object.__setattr__(target, "_all_reduce_sum_gradients", lambda pairs: list(pairs))
    # Read by keras_recipes.backend.gradient_capture: capturing is then correct.
    object.__setattr__(target, "sums_replica_gradients_first", True)
    return True


class _SumGradientsFirst(keras.callbacks.Callback):
    """Keeps :func:`sum_gradients_first` outermost on the model's optimizer.

    Placed last among the callbacks, so it wraps whatever other callbacks put
    in place (a new optimizer from ``UnfreezeSchedule``, a gradient capture
    from ``GradientHistogram``) before the train function is traced again.
    """

    def _ensure(self) -> None:
        if self.model.optimizer is not None and sum_gradients_first(self.model.optimizer):
            self.model.make_train_function(force=True)

    def on_train_begin(self, logs=None):
        self._ensure()

    def on_epoch_begin(self, epoch, logs=None):
        self._ensure()  # a new optimizer from an earlier callback, before others wrap it

    def on_train_batch_begin(self, batch, logs=None):
        self._ensure()


class StrategyContext(DistributeContext):
    """Data-parallel training with a ``tf.distribute`` strategy (TensorFlow backend).

    ``kind="mirrored"``: ``tf.distribute.MirroredStrategy`` over the GPUs of one
    host (or the given ``devices``). ``kind="multi_worker"``:
    ``tf.distribute.MultiWorkerMirroredStrategy`` over several hosts, each
    started with its own ``TF_CONFIG`` (see docs/distribute.md); it must be created at
    the start of the program, before any other TensorFlow op.

    Keras's ``fit`` splits each global batch over the replicas, scales the loss
    by ``1 / num_replicas`` and sums the gradients across replicas before the
    optimizer applies them, so every replica applies the same update. What
    this context adds:

    - ``fit`` runs outside the strategy's scope, as Keras 3's own ``fit``
      does. A callback that creates a new optimizer mid-training must create
      it in ``scope_for(model)`` (the strategy's scope), as
      ``UnfreezeSchedule`` does: created outside it, its variables are not
      mirrored and the replicas silently drift apart (measured, Keras 3.15).
    - Keras 3 creates batch-norm moving statistics with ``aggregation="none"``,
      so each replica keeps its own (measured: they differ after one epoch).
      They are averaged across replicas before each validation and at each
      epoch end, which equals TF's ``MEAN`` aggregation at every step.
    - Gradients are summed across replicas as soon as the optimizer receives
      them, before it clips them (Keras clips each replica's partial gradient,
      so ``global_clipnorm`` acted on ``1 / num_replicas`` of it) and before a
      ``GradientHistogram`` capture reads them; see :func:`sum_gradients_first`.
    - Array data is checked to split evenly over the replicas.
    - Each replica's random seed states are offset by its replica index, so
      replicas draw different dropout masks and mixing partners (Keras keeps
      them replicated: every replica would draw the same numbers).
    - An unbuilt model is built from the data's specs before ``fit``: under a
      strategy Keras builds it from the replicas' batches averaged with
      ``MEAN``, which turns integer labels into floats (``AugmentedModel``'s
      loss then fails to build).

    ``max_replica_difference`` compares the replicas of this process (all of
    them for ``"mirrored"``; this worker's devices for ``"multi_worker"``).
    Under ``"multi_worker"``, two faults of Keras's ``fit`` are worked around
    (see ``_multi_worker_fixes``). Tested on CPU only: ``"mirrored"`` over 2
    logical CPU devices, ``"multi_worker"`` with 2 local worker processes
    (``TF_CONFIG`` on 127.0.0.1); not GPUs, NCCL or several hosts.

    Example:

    >>> import keras
    >>> if keras.backend.backend() == "tensorflow":
    ...     context = StrategyContext("mirrored", devices=["/cpu:0"])
    ...     print(context.num_replicas, context.is_chief)
    ... else:
    ...     print(1, True)
    1 True

    Args:
        kind: ``"mirrored"`` or ``"multi_worker"``.
        devices: for ``"mirrored"``, the devices to mirror over (default: all
            GPUs, else every logical CPU device: one, unless the program split
            the CPU with ``tf.config.set_logical_device_configuration`` before
            TensorFlow started). Not accepted by ``"multi_worker"``.
        communication: collective implementation for ``"multi_worker"``:
            ``"auto"``, ``"ring"`` or ``"nccl"``.

    Raises:
        ValueError: on the TensorFlow backend only; unknown ``kind``,
            ``communication``, or ``devices`` given to ``"multi_worker"``.
    """

    def __init__(self, kind: str = "mirrored", *, devices: Sequence[str] | None = None,
                 communication: str = "auto") -> None:
        super().__init__()
        if self.backend != "tensorflow":
            raise ValueError(
                f"`tf.distribute` strategies need the tensorflow backend. Received: "
                f"backend={self.backend!r}"
            )
        if kind not in ("mirrored", "multi_worker"):
            raise ValueError(
                "Invalid value for argument `kind`. Expected 'mirrored' or 'multi_worker'. "
                f"Received: kind={kind!r}"
            )
        if communication not in ("auto", "ring", "nccl"):
            raise ValueError(
                "Invalid value for argument `communication`. Expected one of 'auto', "
                f"'ring', 'nccl'. Received: communication={communication!r}"
            )
        import tensorflow as tf

        self.kind = kind
        if kind == "mirrored":
            if devices is None and not tf.config.list_logical_devices("GPU"):
                # No GPU: every logical CPU device (one, unless the CPU was split).
                devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            self.strategy = tf.distribute.MirroredStrategy(
                devices=list(devices) if devices is not None else None
            )
        else:
            if devices is not None:
                raise ValueError(
                    "Invalid value for argument `devices`. `multi_worker` uses every local "
                    "GPU of each worker; choose them with CUDA_VISIBLE_DEVICES. Received: "
                    f"devices={devices!r}"
                )
            implementation = {
                "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
                "ring": tf.distribute.experimental.CommunicationImplementation.RING,
                "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
            }[communication]
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=tf.distribute.experimental.CommunicationOptions(
                    implementation=implementation
                )
            )
        self._sync_functions: dict = {}
        self._offset_seeds: set = set()

    # --- topology -----------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def _task(self) -> tuple[str | None, int, dict]:
        config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
        task = config.get("task", {})
        return task.get("type"), int(task.get("index", 0)), config.get("cluster", {})

    @property
    def num_processes(self) -> int:
        if self.kind == "mirrored":
            return 1
        _, _, cluster = self._task()
        return max(1, sum(len(v) for k, v in cluster.items() if k in ("chief", "worker")))

    @property
    def process_index(self) -> int:
        if self.kind == "mirrored":
            return 0
        task_type, index, cluster = self._task()
        if task_type == "chief":
            return 0
        return index + (1 if "chief" in cluster else 0)

    def scope(self) -> contextlib.AbstractContextManager:
        return self.strategy.scope()

    def _fit_scope(self) -> contextlib.AbstractContextManager:
        # As Keras 3's fit: outside the scope (convert_to_numpy of a mirrored
        # variable fails inside it, and callbacks read weights that way).
        return contextlib.nullcontext()

    # --- training -------------------------------------------------------------
    def _build_from_spec(self, model, x, y, sample_weight) -> None:
        """Builds an unbuilt model from the data's shapes and dtypes.

        Under a strategy, Keras 3's TF trainer builds an unbuilt model (and its
        compiled loss) from the replicas' first batches averaged with
        ``strategy.reduce("MEAN")``: integer labels arrive as floats, so a loss
        that depends on the label dtype (``AugmentedModel`` one-hot encodes
        integer labels) is built for the wrong targets and fails. Building it
        first from the specs (no data is read) avoids that path.
        """
        import tensorflow as tf

        if not hasattr(model, "_symbolic_build"):
            return
        if isinstance(x, tf.data.Dataset):
            spec = x.element_spec
        elif x is not None and _is_array_data(x):
            spec = tuple(a for a in (x, y, sample_weight) if a is not None)
        else:
            return

        def symbolic(leaf):
            if leaf is None:
                return None
            shape = (None, *tuple(leaf.shape)[1:])
            return keras.KerasTensor(shape, keras.backend.standardize_dtype(leaf.dtype))

        with self.strategy.scope():
            model._symbolic_build(data_batch=keras.tree.map_structure(symbolic, spec))

    @contextlib.contextmanager
    def _multi_worker_fixes(self, model):
        """Works around two faults of Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy``.

        Installed on the model for the duration of one ``fit`` / ``evaluate``
        (``"multi_worker"`` only; both measured with Keras 3.15, TF 2.21, 2
        local workers; tensorflow/tensorflow#72388):

        - Keras reads one distributed batch and averages it with an eager
          ``strategy.reduce("MEAN", ...)`` only to build an unbuilt model; that
          fails (``ValueError: Attempt to convert a value (PerReplica:{...})``).
          The model is built from the data's specs first (``_build_from_spec``),
          so that step only builds the optimizer here.
        - Keras reduces each step's logs with ``strategy.reduce("MEAN", v,
          axis=0)`` under this strategy, which fails for the scalar logs every
          step returns (``ValueError: Invalid reduction dimension 0 for input
          with 0 dimensions``). The steps return each scalar log with shape
          ``(1,)`` instead: the reduce is then the mean over all replicas, as
          ``MirroredStrategy``'s mean of its replicas' values, and a scalar.
        """
        if self.kind != "multi_worker":
            yield
            return
        import tensorflow as tf

        built = all(layer.built for layer in model._flatten_layers()) and all(
            part is None or part.built
            for part in (getattr(model, "_compile_loss", None),
                         getattr(model, "_compile_metrics", None)))
        cls, strategy, saved = type(model), self.strategy, {}

        def maybe_symbolic_build(iterator=None, data_batch=None):
            if iterator is None or not built:
                return cls._maybe_symbolic_build(model, iterator=iterator, data_batch=data_batch)
            with strategy.scope():
                model._symbolic_build(data_batch=None)  # builds the optimizer only

        def with_vector_logs(step):
            def wrapped(data):
                return keras.tree.map_structure(
                    lambda v: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0
                    else v, step(data))
            return wrapped

        overrides = {
            "_maybe_symbolic_build": maybe_symbolic_build,
            "train_step": with_vector_logs(model.train_step),
            "test_step": with_vector_logs(model.test_step),
        }
        for name, fn in overrides.items():
            saved[name] = model.__dict__.get(name)
            object.__setattr__(model, name, fn)
        try:
            yield
        finally:
            for name, fn in saved.items():
                if fn is None:
                    object.__delattr__(model, name)
                else:
                    object.__setattr__(model, name, fn)

    def _offset_seed_states(self, model) -> None:
        """Gives each replica its own random stream (dropout masks, mixing draws).

        Keras's seed-generator states are replicated, so every replica would
        draw the same numbers for its part of the batch. Replica ``r`` adds
        ``r * 1000003`` to its seed, once per state variable.
        """
        import tensorflow as tf

        weights = {id(w) for w in model.weights}
        states = [v for v in model.variables if id(v) not in weights
                  and v.path.endswith("seed_generator_state") and id(v) not in self._offset_seeds]
        if not states or self.num_replicas == 1:
            return
        values = [v.value for v in states]

        @tf.function
        def offset():
            def per_replica():
                replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group,
                                  values[0].dtype)
                for v in values:
                    v.assign_add(tf.stack([replica * _SEED_OFFSET, tf.zeros_like(replica)]))

            self.strategy.run(per_replica)

        offset()
        self._offset_seeds.update(id(v) for v in states)

    def _fit(self, model, x, y, *, callbacks=(), **kwargs):
        check_even_split(x, kwargs.get("batch_size"), self.num_replicas)
        self._build_from_spec(model, x, y, kwargs.get("sample_weight"))
        self._offset_seed_states(model)
        if model.optimizer is not None:
            sum_gradients_first(model.optimizer)  # before callbacks look at it
        with self._multi_worker_fixes(model):
            return model.fit(x, y, callbacks=[*callbacks, _SumGradientsFirst()], **kwargs)

    def _evaluate(self, model, x, y, **kwargs):
        self._build_from_spec(model, x, y, kwargs.get("sample_weight"))
        with self._multi_worker_fixes(model):
            return model.evaluate(x, y, return_dict=True, **kwargs)

    # --- replica state ----------------------------------------------------------
    def replica_values(self, variable) -> Iterator[np.ndarray]:
        value = variable.value
        for component in getattr(value, "values", (value,)):
            yield np.asarray(component.numpy())

    def _sync_function(self, variables: list):
        import tensorflow as tf

        key = tuple(id(v) for v in variables)
        if key not in self._sync_functions:
            strategy = self.strategy

            @tf.function
            def sync():
                def per_replica():
                    ctx = tf.distribute.get_replica_context()
                    first = ctx.replica_id_in_sync_group == 0
                    values = [tf.cast(tf.identity(v), tf.float64) for v in variables]
                    # Replica 0's value, exactly (a sum with zeros), and where any differs.
                    reference = ctx.all_reduce(
                        tf.distribute.ReduceOp.SUM,
                        [tf.where(first, v, tf.zeros_like(v)) for v in values],
                    )
                    differs = ctx.all_reduce(
                        tf.distribute.ReduceOp.SUM,
                        [tf.cast(tf.not_equal(v, r), tf.float64)
                         for v, r in zip(values, reference, strict=True)],
                    )
                    means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, values)
                    count = tf.constant(0.0, tf.float64)
                    for var, v, d, m in zip(
                            variables, values, differs, means, strict=True):
                        var.assign(tf.cast(tf.where(d > 0, m, v), var.dtype))
                        count += tf.reduce_sum(tf.cast(d > 0, tf.float64))
                    return count

                return strategy.reduce(
                    tf.distribute.ReduceOp.MEAN, strategy.run(per_replica), axis=None
                )

            self._sync_functions[key] = sync
        return self._sync_functions[key]

    def sync_replica_states(self, model: keras.Model) -> int:
        variables = [w.value for w in model.non_trainable_weights if _is_float(w)]
        if not variables or self.num_replicas == 1:
            return 0
        return int(self._sync_function(variables)().numpy())
