"""Two replicas inside the pytest process where the engine allows it.

Starting a framework costs 8-15 s of CPU on the shared 2-core test machine, so
the 2-replica scenarios run in this process when it can still be given two
devices: TensorFlow's CPU split into 2 logical devices, or 2 XLA host devices
for JAX, both fixed before the framework's runtime starts (which it has not,
when this folder runs in its own pytest process as ``tests/run_backends.py``
does). Otherwise (the runtime already started) each worker runs in a fresh
subprocess with the same settings. Multi-process engines (TF multi-worker, JAX
several processes, torch DDP under torchrun) run every process as a subprocess.
"""

from __future__ import annotations

import os

import keras

BACKEND = keras.backend.backend()


def _two_tensorflow_cpus() -> bool:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:  # the runtime started earlier in this process
        pass
    return len(tf.config.list_logical_devices("CPU")) == 2


def _two_jax_devices() -> bool:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    import jax

    return jax.device_count() == 2  # 1 if JAX's backend started before this file


TWO_DEVICES_HERE = {
    "tensorflow": _two_tensorflow_cpus,
    "jax": _two_jax_devices,
    "torch": lambda: False,
}[BACKEND]()
