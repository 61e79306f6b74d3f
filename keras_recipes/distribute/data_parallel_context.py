"""JAX backend: ``keras.distribution.DataParallel`` (and multi-host initialization)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from keras_recipes.distribute.distribute_context import (
    DistributeContext,
    _is_array_data,
    _num_rows,
    check_even_split,
)

__all__ = ["DataParallelContext"]


def _is_tf_dataset(data) -> bool:
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "element_spec")


class DataParallelContext(DistributeContext):
    """Data-parallel training with ``keras.distribution.DataParallel`` (JAX backend).

    Variables are replicated on every device of a 1-D mesh and each batch is
    sharded along its first axis; XLA compiles one program for the global
    batch, so the loss, its gradient and batch-norm statistics are those of
    the global batch (batch norm is synchronized across devices, unlike
    ``tf.distribute`` and torch DDP).

    Each global batch must split evenly over the devices: array data are
    checked (a ``ValueError`` names a batch size that works); a ``tf.data``
    pipeline's batches are cut to a multiple of the device count (only a last
    partial batch loses its extra rows, with a warning), so recipes that batch
    without ``drop_remainder`` still run.

    Several hosts: start one process per host with ``num_processes`` and
    ``process_id`` (or the ``KERAS_DISTRIBUTION_*`` environment variables);
    this calls ``keras.distribution.initialize`` (``jax.distributed``) before
    JAX touches a device. Every process passes the same global data (arrays
    or a ``tf.data`` pipeline of global batches): each process keeps its part
    of every global batch, and Keras assembles the global batch from the
    parts (other data, e.g. a ``PyDataset``, must already be the process's
    own part). Every process also runs the
    ``chief_callbacks`` that have a ``log_dir`` (JAX needs the same
    computations in every process), writing outside the chief to a temporary
    folder. Tested on CPU with 2
    local processes (gloo collectives, JAX's default on CPU).

    Example:

    >>> import keras
    >>> if keras.backend.backend() == "jax":
    ...     context = DataParallelContext(devices=keras.distribution.list_devices()[:1])
    ...     print(context.num_replicas, context.is_chief)
    ... else:
    ...     print(1, True)
    1 True

    Args:
        devices: devices of the mesh (default: every device of every process,
            ``keras.distribution.list_devices()``).
        job_addresses: coordinator address ``"host:port"`` (multi-host only).
        num_processes: number of processes (multi-host only).
        process_id: this process's index (multi-host only).

    Raises:
        ValueError: on another backend than jax.
    """

    kind = "data_parallel"

    def __init__(self, *, devices: Sequence | None = None, job_addresses: str | None = None,
                 num_processes: int | None = None, process_id: int | None = None) -> None:
        super().__init__()
        if self.backend != "jax":
            raise ValueError(
                "`keras.distribution.DataParallel` data parallelism here needs the jax "
                f"backend. Received: backend={self.backend!r}"
            )
        requested = num_processes or os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
        if requested is not None and int(requested) > 1:
            import jax

            if not jax.distributed.is_initialized():
                keras.distribution.initialize(job_addresses, num_processes, process_id)
        if devices is None:
            devices = keras.distribution.list_devices()
        self.distribution = keras.distribution.DataParallel(devices=list(devices))

    @property
    def num_replicas(self) -> int:
        return int(self.distribution.device_mesh.devices.size)

    @property
    def num_processes(self) -> int:
        import jax

        return int(jax.process_count())

    @property
    def process_index(self) -> int:
        import jax

        return int(jax.process_index())

    @property
    def predict_gathers(self) -> bool:
        # Keras's predict cannot gather outputs sharded over several processes
        # (np.concatenate of non-addressable arrays).
        return self.num_processes == 1

    def scope(self) -> contextlib.AbstractContextManager:
        return self.distribution.scope()

    def _divisible(self, data, argument: str):
        """A ``tf.data`` pipeline whose batch sizes are multiples of the device count.

        A batch is sharded along its first axis, so its size must be a multiple
        of the device count; only a last partial batch can break that. Its
        extra rows (fewer than the device count) are skipped; a batch smaller
        than the device count has its rows repeated up to it instead (exact
        for 2 devices). A warning says so; other data pass unchanged. With
        several processes, each keeps its equal part of every (global) batch.
        """
        if self.num_replicas == 1 or not _is_tf_dataset(data):
            return data
        import tensorflow as tf

        replicas, processes, process = self.num_replicas, self.num_processes, self.process_index
        warnings.warn(
            f"DataParallel over {replicas} devices: a batch of `{argument}` whose size is not "
            f"a multiple of {replicas} (a last partial batch) loses its extra rows (a batch "
            f"smaller than {replicas} repeats its rows). Use a batch size that is a multiple "
            "of the device count and `drop_remainder=True` to train on exactly the same rows "
            "as one device.",
            stacklevel=3,
        )

        def divisible(*element):
            element = element if len(element) > 1 else element[0]
            n = tf.shape(tf.nest.flatten(element)[0])[0]
            keep = n // replicas * replicas
            index = tf.cond(keep > 0, lambda: tf.range(keep),
                            lambda: tf.range(replicas) % n)
            if processes > 1:  # this process's equal part of the global batch
                part = tf.size(index) // processes
                index = index[process * part:(process + 1) * part]
            return tf.nest.map_structure(lambda t: tf.gather(t, index), element)

        return data.map(divisible)

    def _check_placed(self, model) -> None:
        """Raises unless the model's variables live on this context's devices."""
        mesh = {d.id for d in self.distribution.device_mesh.backend_mesh.devices.flat}
        for variable in model.variables:
            sharding = getattr(variable.value, "sharding", None)
            if sharding is not None and {d.id for d in sharding.device_set} != mesh:
                raise ValueError(
                    f"Invalid value for argument `model`. Expected a model created inside "
                    f"`context.scope()`, with its variables on the {self.num_replicas} devices "
                    f"of the mesh. Received: variable {variable.path!r} on devices "
                    f"{sorted(d.id for d in sharding.device_set)}."
                )

    def _process_part(self, data: tuple, batch_size: int | None) -> tuple[tuple, int | None]:
        """This process's rows of every global batch of array data, and its batch size.

        With several processes, Keras's JAX trainer assembles each global batch
        from the processes' local batches (``jax.make_array_from_process_local_data``,
        process ``p`` holding the ``p``-th part). Given the same global arrays
        everywhere, process ``p`` keeps the ``p``-th of ``num_processes`` equal
        parts of each global batch (the last partial one included), and
        batches by ``batch_size / num_processes``: the global batches are then
        those of one device. Other data (one process, data sets) pass unchanged.
        """
        processes = self.num_processes
        if processes == 1 or data[0] is None or not _is_array_data(data[0]):
            return data, batch_size
        n = _num_rows(data[0])
        size = 32 if batch_size is None else int(batch_size)
        index = np.concatenate([
            np.arange(start, min(start + size, n)).reshape(processes, -1)[self.process_index]
            for start in range(0, n, size)
        ])
        part = tuple(
            None if d is None else keras.tree.map_structure(lambda a: np.asarray(a)[index], d)
            for d in data
        )
        return part, size // processes

    @contextlib.contextmanager
    def _chief_callbacks_here(self, chief_callbacks: list) -> Iterator[list]:
        """Several processes: every process runs the chief callbacks, one writes.

        JAX runs one program over all processes' devices: every process must
        run the same computations on the model's (global) arrays, in the same
        order, or their collectives mismatch (measured: ``Gloo all-reduce
        failed ... Received data size doesn't match expected size`` when only
        the chief's ``GradientHistogram`` captured gradients in its step). So
        the other processes run the chief callbacks that have a ``log_dir``
        (``GradientHistogram``, ``keras.callbacks.TensorBoard``) too, that
        ``log_dir`` pointed at a temporary folder deleted after ``fit``: the
        chief alone writes to the real one. Chief callbacks without a
        ``log_dir`` run on the chief only, so they must not compute on the
        model's arrays (writing the logs they are given is fine).
        """
        if self.is_chief or self.num_processes == 1:
            yield chief_callbacks if self.is_chief else []
            return
        chief_callbacks = [c for c in chief_callbacks if hasattr(c, "log_dir")]
        scratch = tempfile.mkdtemp(prefix=f"keras_recipes_process{self.process_index}_")
        saved = [c.log_dir for c in chief_callbacks]
        try:
            for i, callback in enumerate(chief_callbacks):
                callback.log_dir = os.path.join(scratch, str(i))
            yield chief_callbacks
        finally:
            for callback, log_dir in zip(chief_callbacks, saved, strict=True):
                callback.log_dir = log_dir
            shutil.rmtree(scratch, ignore_errors=True)

    @contextlib.contextmanager
    def _auto_shard(self, x):
        """Several processes: the data are already cut here, Keras must not shard them.

        Arrays are cut by ``_process_part``, ``tf.data`` batches by ``_divisible``
        (Keras's own sharding of a data set needs a batch size it can read from
        the pipeline: "The batch size of the input dataset is unknown" for a
        batch inside ``flat_map``, as the recipe's per-epoch pipelines are; and
        it refuses arrays). The distribution's ``auto_shard_dataset`` is off
        during the call.
        """
        saved = self.distribution.auto_shard_dataset
        if self.num_processes > 1 and x is not None:
            self.distribution.auto_shard_dataset = False
        try:
            yield
        finally:
            self.distribution.auto_shard_dataset = saved

    def _fit(self, model, x, y, **kwargs):
        self._check_placed(model)
        global_batch = kwargs.get("batch_size")
        check_even_split(x, global_batch, self.num_replicas)
        x = self._divisible(x, "x")
        (x, y, sample_weight), batch_size = self._process_part(
            (x, y, kwargs.get("sample_weight")), global_batch)
        kwargs.update(sample_weight=sample_weight, batch_size=batch_size)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            validation_batch = kwargs.get("validation_batch_size") or global_batch
            check_even_split(validation[0], validation_batch, self.num_replicas,
                             argument="validation_data")
            kwargs["validation_data"], validation_batch = self._process_part(
                tuple(validation), validation_batch)
            if self.num_processes > 1:
                kwargs["validation_batch_size"] = validation_batch
        elif validation is not None:
            kwargs["validation_data"] = self._divisible(validation, "validation_data")
        with self._auto_shard(x):
            return model.fit(x, y, **kwargs)

    def _evaluate(self, model, x, y, **kwargs):
        self._check_placed(model)
        check_even_split(x, kwargs.get("batch_size"), self.num_replicas)
        (x, y, sample_weight), batch_size = self._process_part(
            (self._divisible(x, "x"), y, kwargs.get("sample_weight")), kwargs.get("batch_size"))
        kwargs.update(sample_weight=sample_weight, batch_size=batch_size)
        with self._auto_shard(x):
            return model.evaluate(x, y, return_dict=True, **kwargs)

    def replica_values(self, variable) -> Iterator[np.ndarray]:
        value = variable.value
        shards = getattr(value, "addressable_shards", None)
        if not shards:
            yield np.asarray(value)
            return
        for shard in shards:
            yield np.asarray(shard.data)
