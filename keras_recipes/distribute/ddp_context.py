"""Torch backend: ``torch.nn.parallel.DistributedDataParallel`` under ``torchrun``.

Keras's ``fit`` is not DDP-aware: under ``torchrun`` each process would train
its own copy. This engine keeps Keras's ``fit`` loop (data adapters, progress
bar, ``History``, every callback, validation) and replaces only the step
functions it calls, the way the keras.io guide "Multi-GPU distributed training
with PyTorch" wraps a Keras model in ``DistributedDataParallel``.
"""

from __future__ import annotations

import datetime
import math
import os
import warnings

import keras
import numpy as np

from keras_recipes.data.pipeline import epoch_batches
from keras_recipes.distribute.distribute_context import (
    DistributeContext,
    _is_array_data,
    _num_rows,
)
from keras_recipes.distribute.global_batches import split_bounds

__all__ = ["DDPContext"]

_TORCHRUN_HELP = (
    "Launch one process per device with torchrun, e.g. on one host with 2 GPUs:\n"
    "    torchrun --standalone --nproc_per_node=2 script.py\n"
    "or on CPU for a test, over loopback:\n"
    "    GLOO_SOCKET_IFNAME=lo torchrun --nnodes=1 --nproc_per_node=2 "
    "--master_addr=127.0.0.1 --master_port=29500 script.py"
)
_SEED_OFFSET = 1_000_003


def _is_float(variable) -> bool:
    return "float" in str(variable.dtype)


def _slice(structure, start: int, stop: int):
    return keras.tree.map_structure(
        lambda t: None if t is None else t[start:stop], structure
    )


def _augmentation_of(model: keras.Model):
    """The batch augmentation of an ``AugmentedModel`` (applied per replica), else None.

    Raises a ``ValueError`` for any other override of ``train_step`` or
    ``test_step``: the DDP steps replace them and would skip their logic.
    """
    from keras_recipes.models import AugmentedModel

    cls = type(model)
    augmented = isinstance(model, AugmentedModel) and (
        cls.train_step is AugmentedModel.train_step)
    if not augmented and cls.train_step is not keras.Model.train_step:
        raise ValueError(
            f"Invalid value for argument `model`. {cls.__name__} overrides `train_step`, "
            "which the DDP engine replaces by its own step (DDP forward, gradients "
            "averaged over processes). Supported: keras.Model's step with overrides of "
            "`compute_loss` / `compute_metrics`, and keras_recipes.models.AugmentedModel. "
            "Move the logic into `compute_loss`, or use `kind='none'` (one device)."
        )
    if cls.test_step is not keras.Model.test_step:
        raise ValueError(
            f"Invalid value for argument `model`. {cls.__name__} overrides `test_step`, "
            "which the DDP engine replaces by its own step. Move the logic into "
            "`compute_loss` / `compute_metrics`."
        )
    return model.augmentation if augmented else None


class _Steps:
    """The DDP train and test functions installed on one model during a fit."""

    def __init__(self, context: DDPContext, model: keras.Model, *, wrap: bool = True):
        self.context = context
        self.model = model
        self.augmentation = _augmentation_of(model)
        self.ddp = None
        self._key = None
        self.calls = 0
        self.check_next_batch = True
        if wrap:
            self.rebuild()

    # -- DDP wrapper -------------------------------------------------------------
    def _trainable_key(self):
        return tuple(id(v) for v in self.model.trainable_variables)

    def rebuild(self) -> None:
        """(Re)wraps the model when its trainable set changed (unfreezing)."""
        key = self._trainable_key()
        if key == self._key:
            return
        import torch

        self.ddp = None  # drop the old reducer and its autograd hooks first
        if key:
            device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=device_ids,
                find_unused_parameters=self.context.find_unused_parameters,
            )
            # Wrapping broadcast rank 0's seed states too: offset them again.
            self.context._offset_seed_states(self.model)
        self._key = key

    def install(self) -> None:
        self.model.train_function = self.train_function
        self.model.test_function = self.test_function

    def uninstall(self) -> None:
        self.model.train_function = None
        self.model.test_function = None
        self.ddp = None

    # -- the steps -----------------------------------------------------------------
    def _local(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        leaves = [t for t in keras.tree.flatten(x) if t is not None]
        n_global = int(leaves[0].shape[0])
        start, stop = split_bounds(n_global, self.context.world_size, self.context.rank)
        return (
            _slice(x, start, stop), _slice(y, start, stop), _slice(sample_weight, start, stop),
            stop - start, n_global,
        )

    def _forward(self, module, x, training: bool):
        if self.model._call_has_training_arg:
            return module(x, training=training)
        return module(x)

    def train_function(self, data):
        import torch

        data = data[0]
        if self.check_next_batch:
            self.context._check_same_batch(data)
            self.check_next_batch = False
        self.rebuild()
        model = self.model
        x, y, sample_weight, n_local, n_global = self._local(data)
        if self.augmentation is not None:
            # AugmentedModel: each replica mixes its own part of the global batch.
            if y is None:
                x = self.augmentation(x, training=True)
            else:
                x, y = self.augmentation(x, y, training=True)
        before = self.context._metric_snapshot(model)
        y_pred = self._forward(self.ddp if self.ddp is not None else model, x, True)
        model.zero_grad()
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        tracker = getattr(model, "_loss_tracker", None)
        if tracker is not None:
            tracker.update_state(loss, sample_weight=n_local)
        if self.ddp is not None:
            # DDP averages gradients over replicas; weighting each replica's mean
            # loss by its share of rows makes the result the global batch mean.
            weighted = loss * (n_local * self.context.world_size / n_global)
            if model.optimizer is not None:
                weighted = model.optimizer.scale_loss(weighted)
            weighted.backward()
            trainable_weights = model.trainable_weights[:]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                model.optimizer.apply(gradients, trainable_weights)
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        self.context._sync_metrics(model, before)
        self.calls += 1
        return model.get_metrics_result()

    def test_function(self, data):
        import torch

        data = data[0]
        model = self.model
        x, y, sample_weight, n_local, _ = self._local(data)
        before = self.context._metric_snapshot(model)
        with torch.no_grad():
            y_pred = self._forward(model, x, False)
            loss = model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
            tracker = getattr(model, "_loss_tracker", None)
            if tracker is not None:
                tracker.update_state(loss, sample_weight=n_local)
            model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
            self.context._sync_metrics(model, before)
        return model.get_metrics_result()


class _Guard(keras.callbacks.Callback):
    """Keeps the DDP steps installed when a callback rebuilds the train function."""

    def __init__(self, steps: _Steps):
        super().__init__()
        self._steps = steps
        self._calls = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._steps.check_next_batch = True

    def on_train_batch_begin(self, batch, logs=None):
        self._steps.install()
        self._calls = self._steps.calls

    def on_train_batch_end(self, batch, logs=None):
        if self._steps.calls == self._calls:
            raise RuntimeError(
                "A callback replaced `model.train_function` inside a batch, so this step ran "
                "without DistributedDataParallel. Rebuild the train function in "
                "`on_epoch_begin` or `on_train_batch_begin` (this engine re-installs its "
                "step after those hooks)."
            )

    def on_test_begin(self, logs=None):
        self._steps.install()


class DDPContext(DistributeContext):
    """Data-parallel training with torch ``DistributedDataParallel`` (torch backend).

    One process per device, launched by ``torchrun`` (which sets ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``); this
    joins the process group (NCCL on GPUs, gloo on CPU) and pins the process
    to GPU ``LOCAL_RANK``. Build the model after creating the context.

    What ``fit`` / ``evaluate`` do: Keras's own loop runs in every process on
    the **same global batches** (array data is fed through
    :func:`keras_recipes.data.epoch_batches`, whose seed is shared from rank 0,
    for fit's epochs ``[initial_epoch, epochs)``; a
    ``tf.data`` pipeline or ``PyDataset`` must yield the same batches in every
    process, i.e. shuffle with a fixed seed: this is checked on the first
    batch of every epoch). The step functions are replaced:

    - train: each process takes its contiguous part of the global batch
      (sizes differ by at most one), runs the forward pass through
      ``DistributedDataParallel`` (which broadcasts rank 0's weights when it
      wraps the model and averages gradients during ``backward``), weights its
      loss by its share of rows so the averaged gradient is exactly the
      global-batch gradient, and applies ``model.optimizer`` (read at every
      step, so an optimizer replaced by a callback is used);
    - metrics and the loss tracker: each replica's metric-state increment is
      summed over processes after each step (``aggregation="sum"``; ``"mean"``
      is averaged, ``"only_first_replica"`` taken from rank 0), so logs,
      progress bars, ``History``, validation and callback decisions
      (early stopping) are global and identical in every process;
    - when the trainable set changes mid-fit (unfreezing), the model is
      re-wrapped before the next step; batch-norm moving statistics are
      averaged across processes before validation and at each epoch end;
      each process's random seed states are offset by its rank so replicas
      draw different dropout masks and mixing partners.

    Supported: ``Model.fit`` / ``evaluate`` arguments (``validation_split`` on
    arrays too), callbacks, regularization losses, mixed precision loss
    scaling, models whose loss is a batch mean (Keras's default reduction),
    overrides of ``compute_loss`` / ``compute_metrics``, and
    ``keras_recipes.models.AugmentedModel`` (each replica mixes its own part
    of the global batch, so mixing partners come from that part).
    Refused with a ``ValueError`` naming the alternative: other overrides of
    ``train_step`` / ``test_step`` (the engine replaces the steps), data
    already sharded per process (a ``DistributedSampler``: pass the global
    data), ``class_weight`` (use ``sample_weight``), an unbuilt model, a
    global batch smaller than the number of processes. ``jit_compile`` is not
    applied (the steps run eagerly, as ``torch.compile`` is not used).

    Example:

    >>> import keras
    >>> if keras.backend.backend() == "torch" and "WORLD_SIZE" not in __import__("os").environ:
    ...     try:
    ...         DDPContext()
    ...     except ValueError as e:
    ...         print(str(e).splitlines()[0][:60])
    ... else:
    ...     print("DDP needs the process-group environment that torchrun sets.")
    DDP needs the process-group environment that torchrun sets.

    Args:
        process_group_backend: ``"nccl"``, ``"gloo"`` or ``None`` (NCCL when a
            GPU is present, else gloo).
        find_unused_parameters: passed to ``DistributedDataParallel`` (needed
            when some trainable weights get no gradient in a step).
        timeout_s: process-group timeout in seconds.

    Raises:
        ValueError: on another backend, or when the torchrun environment is
            missing and no process group was initialized.
    """

    kind = "ddp"

    def __init__(self, *, process_group_backend: str | None = None,
                 find_unused_parameters: bool = False, timeout_s: float | None = None) -> None:
        super().__init__()
        if self.backend != "torch":
            raise ValueError(
                "torch DistributedDataParallel needs the torch backend. Received: "
                f"backend={self.backend!r}"
            )
        if process_group_backend not in (None, "nccl", "gloo"):
            raise ValueError(
                "Invalid value for argument `process_group_backend`. Expected 'nccl', "
                f"'gloo' or None. Received: process_group_backend={process_group_backend!r}"
            )
        import torch
        import torch.distributed as dist

        self.find_unused_parameters = bool(find_unused_parameters)
        self._owns_group = False
        if not dist.is_initialized():
            missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                       if k not in os.environ]
            if missing:
                raise ValueError(
                    "DDP needs the process-group environment that torchrun sets. Missing: "
                    f"{', '.join(missing)}.\n{_TORCHRUN_HELP}"
                )
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = process_group_backend or ("nccl" if torch.cuda.is_available() else "gloo")
            kwargs = {}
            if timeout_s is not None:
                kwargs["timeout"] = datetime.timedelta(seconds=float(timeout_s))
            dist.init_process_group(backend=backend, init_method="env://", **kwargs)
            self._owns_group = True
        self.rank = int(dist.get_rank())
        self.world_size = int(dist.get_world_size())

    # --- topology -----------------------------------------------------------
    @property
    def num_replicas(self) -> int:
        return self.world_size

    @property
    def num_processes(self) -> int:
        return self.world_size

    @property
    def process_index(self) -> int:
        return self.rank

    def shutdown(self) -> None:
        """Leaves the process group (if this context joined it)."""
        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    # --- collectives --------------------------------------------------------------
    def _device(self):
        import torch

        return torch.device("cuda", torch.cuda.current_device()) if (
            torch.cuda.is_available()) else torch.device("cpu")

    def _all_reduce(self, tensor, op: str = "sum"):
        import torch.distributed as dist

        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
        dist.all_reduce(tensor, op=ops[op])
        return tensor

    def _broadcast_int(self, value: int) -> int:
        import torch

        t = torch.tensor([int(value)], dtype=torch.int64, device=self._device())
        import torch.distributed as dist

        dist.broadcast(t, src=0)
        return int(t.item())

    def _check_same_batch(self, data) -> None:
        """Raises in every process if the processes hold different global batches."""
        import torch

        leaves = [t for t in keras.tree.flatten(data) if t is not None]
        fingerprint = torch.stack(
            [torch.as_tensor(t).detach().to(self._device(), torch.float64).sum() for t in leaves]
            + [torch.tensor(float(leaves[0].shape[0]), dtype=torch.float64,
                            device=self._device())]
        )
        both = self._all_reduce(torch.cat([fingerprint, -fingerprint]), "max")
        high, low = both[: len(fingerprint)], -both[len(fingerprint):]
        if not torch.allclose(high, low, rtol=1e-6, atol=1e-6):
            raise ValueError(
                "The processes received different global batches. Every process must see "
                "the same global data in the same order (it keeps its own part of each "
                "batch): shuffle with a fixed seed (e.g. `dataset.shuffle(n, seed=0)`), "
                "and do not shard the data per process (no DistributedSampler)."
            )

    @staticmethod
    def _metric_variables(model):
        return list(model.metrics_variables)

    def _metric_snapshot(self, model):
        import torch

        return {
            id(v): v.value.detach().to(torch.float64).reshape(-1).clone()
            for v in self._metric_variables(model)
        }

    def _sync_metrics(self, model, before) -> None:
        """Makes every process's metric state the state of the global batches."""
        import torch

        if self.world_size == 1:
            return
        variables = self._metric_variables(model)
        if not variables:
            return
        parts = []
        for v in variables:
            current = v.value.detach().to(torch.float64).reshape(-1)
            aggregation = getattr(v, "aggregation", "sum")
            if aggregation == "mean":
                parts.append(current / self.world_size)
            elif aggregation == "only_first_replica":
                parts.append(current if self.rank == 0 else torch.zeros_like(current))
            else:
                previous = before.get(id(v))
                parts.append(current - previous if previous is not None else current)
        reduced = self._all_reduce(torch.cat(parts), "sum")
        offset = 0
        for v in variables:
            size = int(np.prod(v.shape)) if len(v.shape) else 1
            value = reduced[offset : offset + size]
            offset += size
            if getattr(v, "aggregation", "sum") not in ("mean", "only_first_replica"):
                previous = before.get(id(v))
                if previous is not None:
                    value = previous + value
            v.assign(value.reshape(tuple(v.shape)).to(v.value.dtype))

    def _flat(self, variables, dtype):
        import torch

        return torch.cat([v.value.detach().reshape(-1).to(dtype) for v in variables])

    def _assign_flat(self, variables, flat) -> None:
        offset = 0
        for v in variables:
            size = int(np.prod(v.shape)) if len(v.shape) else 1
            v.assign(flat[offset : offset + size].reshape(tuple(v.shape)).to(v.value.dtype))
            offset += size

    def sync_replica_states(self, model: keras.Model) -> int:
        import torch
        import torch.distributed as dist

        variables = [w for w in model.non_trainable_weights if _is_float(w)]
        if not variables or self.world_size == 1:
            return 0
        dtype = torch.float32 if all(str(v.dtype) == "float32" for v in variables) else (
            torch.float64)
        flat = self._flat(variables, dtype)
        reference = flat.clone()
        dist.broadcast(reference, src=0)
        differs = self._all_reduce((flat != reference).to(dtype), "sum") > 0
        count = int(differs.sum().item())
        if count == 0:
            return 0
        mean = self._all_reduce(flat.clone(), "sum") / self.world_size
        self._assign_flat(variables, torch.where(differs, mean, flat))
        return count

    def max_replica_difference(self, model: keras.Model) -> float:
        import torch

        variables = [w for w in model.weights if _is_float(w)]
        if not variables:
            return 0.0
        flat = self._flat(variables, torch.float64)
        both = self._all_reduce(torch.cat([flat, -flat]), "max")
        high, low = both[: len(flat)], -both[len(flat):]
        return float((high - low).max().item())

    def _offset_seed_states(self, model) -> None:
        if self.rank == 0:
            return
        weights = {id(w) for w in model.weights}
        for v in model.variables:
            if id(v) not in weights and v.path.endswith("seed_generator_state"):
                state = keras.ops.convert_to_numpy(v.value).copy()
                state[0] += self.rank * _SEED_OFFSET
                v.assign(state)

    # --- training -------------------------------------------------------------
    def _global_feed(self, x, y, sample_weight, batch_size, shuffle, kwargs):
        if "class_weight" in kwargs and kwargs["class_weight"] is not None:
            raise ValueError(
                "`class_weight` is not supported by the DDP engine; pass per-sample "
                "weights (`sample_weight`) instead."
            )
        split = kwargs.pop("validation_split", 0.0) or 0.0
        if split:
            if not _is_array_data(x):
                raise ValueError(
                    "Invalid value for argument `validation_split`. Expected array data. "
                    "Received: a data set; pass `validation_data` instead."
                )
            cut = int(math.floor(_num_rows(x) * (1.0 - float(split))))
            head = keras.tree.map_structure(
                lambda a: None if a is None else a[:cut], (x, y, sample_weight))
            tail = keras.tree.map_structure(
                lambda a: None if a is None else a[cut:], (x, y, sample_weight))
            (x, y, sample_weight) = head
            kwargs["validation_data"] = tail if tail[2] is not None else tail[:2]
        if _is_array_data(x):
            seed = self._broadcast_int(np.random.randint(0, 2**31 - 1))
            batch_size = batch_size or 32
            # Shuffled: one feed holds every epoch, each in its seeded order, and fit
            # keeps its iterator between epochs (steps_per_epoch given). In order: one
            # pass, which fit reads again at every epoch.
            feed = epoch_batches(
                x, y, batch_size, sample_weight=sample_weight,
                seed=seed if shuffle else None, initial_epoch=kwargs.get("initial_epoch", 0),
                epochs=kwargs.get("epochs", 1), engine="numpy",
            )
            if shuffle and kwargs.get("steps_per_epoch") is None:
                kwargs["steps_per_epoch"] = math.ceil(_num_rows(x) / batch_size)
            return feed, None, None
        import torch

        sampler = getattr(x, "sampler", None)
        if isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
            raise ValueError(
                "Invalid value for argument `x`. Expected the global data; this engine splits "
                "each global batch across processes itself. Received: a DataLoader with a "
                "DistributedSampler. Use an ordinary (seeded) sampler with the global "
                "batch size."
            )
        return x, y, sample_weight

    def _fit(self, model, x, y, *, batch_size=None, shuffle=True, sample_weight=None,
             callbacks=(), **kwargs):
        if not model.built and not model.weights:
            raise ValueError(
                "Invalid value for argument `model`. Expected a built model (give it an "
                "`keras.Input` or call it on a batch) so DistributedDataParallel can "
                f"broadcast its weights. Received: model={model.name!r} (no weights yet)"
            )
        arrays = _is_array_data(x)
        x, y, sample_weight = self._global_feed(
            x, y, sample_weight, batch_size, shuffle, kwargs
        )
        fit_kwargs = dict(kwargs)
        if y is not None:
            fit_kwargs["y"] = y
        if sample_weight is not None:
            fit_kwargs["sample_weight"] = sample_weight
        if not arrays and batch_size is not None:
            fit_kwargs["batch_size"] = batch_size
        validation = fit_kwargs.get("validation_data")
        if validation is not None and kwargs.get("validation_batch_size") is None and (
                batch_size is not None):
            fit_kwargs["validation_batch_size"] = batch_size
        steps = _Steps(self, model)
        steps.install()
        try:
            # Array data are shuffled by epoch_batches with a shared seed; Keras
            # would shuffle a PyDataset's batches with each process's own state.
            return model.fit(
                x, shuffle=False, callbacks=[*callbacks, _Guard(steps)], **fit_kwargs
            )
        finally:
            steps.uninstall()

    def _evaluate(self, model, x, y, *, batch_size=None, sample_weight=None, callbacks=(),
                  **kwargs):
        steps = _Steps(self, model, wrap=False)
        steps.install()
        try:
            return model.evaluate(
                x, y, batch_size=batch_size, sample_weight=sample_weight,
                callbacks=[*callbacks, _Guard(steps)], return_dict=True, **kwargs,
            )
        finally:
            steps.uninstall()
