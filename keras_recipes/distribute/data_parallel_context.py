"""JAX backend: ``keras.distribution.DataParallel`` (and multi-host initialization)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from keras_recipes.distribute.distribute_context import DistributeContext, check_even_split

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
    JAX touches a device, and Keras then shards a ``tf.data`` pipeline by
    process. Array data must already be this process's part in that case.

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

    def scope(self) -> contextlib.AbstractContextManager:
        return self.distribution.scope()

    def _divisible(self, data, argument: str):
        """A ``tf.data`` pipeline whose batch sizes are multiples of the device count.

        A batch is sharded along its first axis, so its size must be a multiple
        of the device count; only a last partial batch can break that. Its
        extra rows (fewer than the device count) are skipped; a batch smaller
        than the device count has its rows repeated up to it instead (exact
        for 2 devices). A warning says so; other data pass unchanged.
        """
        if self.num_replicas == 1 or not _is_tf_dataset(data):
            return data
        import tensorflow as tf

        replicas = self.num_replicas
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

    def _fit(self, model, x, y, **kwargs):
        self._check_placed(model)
        check_even_split(x, kwargs.get("batch_size"), self.num_replicas)
        x = self._divisible(x, "x")
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            check_even_split(
                validation[0],
                kwargs.get("validation_batch_size") or kwargs.get("batch_size"),
                self.num_replicas,
                argument="validation_data",
            )
        elif validation is not None:
            kwargs["validation_data"] = self._divisible(validation, "validation_data")
        return model.fit(x, y, **kwargs)

    def _evaluate(self, model, x, y, **kwargs):
        self._check_placed(model)
        check_even_split(x, kwargs.get("batch_size"), self.num_replicas)
        return model.evaluate(self._divisible(x, "x"), y, return_dict=True, **kwargs)

    def replica_values(self, variable) -> Iterator[np.ndarray]:
        value = variable.value
        shards = getattr(value, "addressable_shards", None)
        if not shards:
            yield np.asarray(value)
            return
        for shard in shards:
            yield np.asarray(shard.data)
