"""JAX backend: ``keras.distribution.DataParallel`` (and multi-host initialization)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from keras_recipes.distribute.distribute_context import DistributeContext, check_even_split

__all__ = ["DataParallelContext"]


class DataParallelContext(DistributeContext):
    """Data-parallel training with ``keras.distribution.DataParallel`` (JAX backend).

    Variables are replicated on every device of a 1-D mesh and each batch is
    sharded along its first axis; XLA compiles one program for the global
    batch, so the loss, its gradient and batch-norm statistics are those of
    the global batch (batch norm is synchronized across devices, unlike
    ``tf.distribute`` and torch DDP).

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

    def _fit(self, model, x, y, **kwargs):
        check_even_split(x, kwargs.get("batch_size"), self.num_replicas)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            check_even_split(
                validation[0],
                kwargs.get("validation_batch_size") or kwargs.get("batch_size"),
                self.num_replicas,
                argument="validation_data",
            )
        return model.fit(x, y, **kwargs)

    def replica_values(self, variable) -> Iterator[np.ndarray]:
        value = variable.value
        shards = getattr(value, "addressable_shards", None)
        if not shards:
            yield np.asarray(value)
            return
        for shard in shards:
            yield np.asarray(shard.data)
