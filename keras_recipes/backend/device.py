"""Which device a backend computes on, and how many CPU threads it uses.

Recipes report the device in their summaries and pick the mixed-precision
policy from it (``mixed_float16`` on GPUs, ``mixed_bfloat16`` on CPUs and TPUs);
benchmarks pin thread counts. Each backend answers this differently, so the
answers are dispatched here through ``{"torch": ..., "tensorflow": ..., "jax": ...}``
tables.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

from keras_recipes.backend.dispatch import for_backend

__all__ = [
    "accelerator", "device_description", "mixed_precision_policy", "set_num_threads", "to_host",
]


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _cpu() -> tuple[str, str]:
    return "cpu", f"{os.cpu_count()}-core CPU ({_cpu_name()})"


def _torch_device() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        return "gpu", f"{n}x {name}" if n > 1 else name
    return _cpu()


def _tensorflow_device() -> tuple[str, str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        except (RuntimeError, ValueError):
            name = "GPU"
        return "gpu", f"{len(gpus)}x {name}" if len(gpus) > 1 else name
    return _cpu()


def _jax_device() -> tuple[str, str]:
    import jax

    devices = jax.devices()
    kind = devices[0].platform
    if kind == "cpu":
        return _cpu()
    name = getattr(devices[0], "device_kind", kind)
    label = "tpu" if kind == "tpu" else "gpu"
    return label, f"{len(devices)}x {name}" if len(devices) > 1 else name


_DEVICE: dict[str, Callable[[], tuple[str, str]]] = {
    "torch": _torch_device,
    "tensorflow": _tensorflow_device,
    "jax": _jax_device,
}


def _torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _tensorflow_threads(n: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # TF already initialized its thread pools
        pass


def _jax_threads(n: int) -> None:
    # XLA reads its CPU thread settings once, when JAX starts its backend; it has a
    # switch between one thread and all cores, not a count.
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_THREADS: dict[str, Callable[[int], None]] = {
    "torch": _torch_threads,
    "tensorflow": _tensorflow_threads,
    "jax": _jax_threads,
}


def accelerator() -> str:
    """The kind of device the current backend computes on: ``"gpu"``, ``"tpu"`` or ``"cpu"``.

    Example:

    >>> accelerator() in ("cpu", "gpu", "tpu")
    True
    """
    return for_backend(_DEVICE)()[0]


def device_description() -> str:
    """A one-line description of the device, for run summaries.

    For example ``"NVIDIA H100 80GB HBM3"`` or ``"2-core CPU (AMD EPYC)"``.

    Example:

    >>> isinstance(device_description(), str)
    True
    """
    return for_backend(_DEVICE)()[1]


def mixed_precision_policy() -> str:
    """The mixed-precision policy for the current device.

    ``"mixed_float16"`` on GPUs (tensor cores, with loss scaling), and
    ``"mixed_bfloat16"`` on CPUs and TPUs (no loss scaling needed; float16
    arithmetic is slow or unsupported there).

    Example:

    >>> mixed_precision_policy() in ("mixed_float16", "mixed_bfloat16")
    True
    """
    return "mixed_float16" if accelerator() == "gpu" else "mixed_bfloat16"


def set_num_threads(n: int) -> None:
    """Sets the number of CPU compute threads of the current backend (``n >= 1``).

    torch and TensorFlow apply it at once (TensorFlow only before its first
    operation). JAX can only be switched to one thread, through ``XLA_FLAGS``
    before its first computation; other counts leave it on all cores.

    Args:
        n: number of threads.

    Raises:
        ValueError: if ``n`` is not an int >= 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(
            f"Invalid value for argument `n`. Expected an int >= 1. Received: n={n!r}"
        )
    for_backend(_THREADS)(n)


def to_host(value):
    """A NumPy copy of a tensor (or variable value) that no later in-place update reaches.

    ``keras.ops.convert_to_numpy`` already copies on torch and jax; where it
    returns a view of a framework buffer, the view is copied. One copy either way.

    Example:

    >>> import keras
    >>> v = keras.Variable([1.0, 2.0])
    >>> snapshot = to_host(v.value)
    >>> _ = v.assign([5.0, 6.0])  # in place on torch
    >>> snapshot.tolist()
    [1.0, 2.0]
    """
    import keras
    import numpy as np

    array = keras.ops.convert_to_numpy(value)
    return array if array.flags.owndata else np.array(array)
