"""Worker: keras.distribution.DataParallel over 2 processes (jax.distributed), one CPU each.

Started once per process with ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the
coordinator, 127.0.0.1:<port>), ``KERAS_DISTRIBUTION_NUM_PROCESSES=2`` and
``KERAS_DISTRIBUTION_PROCESS_ID``, as on two hosts; JAX's CPU collectives
between the processes are gloo (JAX's default). Each process writes its JSON
report to ``argv[1] + ".rank<process id>"``.
"""

import json
import os
import sys
import tempfile
import time

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


def process_part(context) -> dict:
    """What this process hands Keras of the global arrays (64 rows, global batch 16)."""
    x, y = scenarios.data(0)
    (x_part, y_part, _), batch_size = context._process_part((x, y, None), scenarios.BATCH)
    half, p = scenarios.BATCH // 2, context.process_index
    mine = np.concatenate([np.arange(s + p * half, s + (p + 1) * half)
                           for s in range(0, len(x), scenarios.BATCH)])
    return {"batch_size": batch_size, "rows": len(x_part),
            "its_half_of_each_global_batch": bool(
                np.array_equal(x_part, x[mine]) and np.array_equal(y_part, y[mine]))}


def dataset_part(context) -> dict:
    """This process's part of each batch of a tf.data pipeline (batched inside flat_map).

    13 rows in batches of 4: the last batch of 1 row is repeated to 2 (one per
    device); each process keeps half of every batch. Keras could not shard such
    a pipeline itself ("The batch size of the input dataset is unknown").
    """
    import tensorflow as tf

    rows = np.arange(13)
    pipeline = tf.data.Dataset.range(1).flat_map(
        lambda _: tf.data.Dataset.from_tensor_slices(rows).batch(4))
    parts = [b.numpy().tolist() for b in context._divisible(pipeline, "x")]
    return {"parts": parts}


def chief_callbacks_here(context) -> dict:
    """Which chief callbacks this process runs during a fit, and where they write."""
    import keras

    class Writer(keras.callbacks.Callback):
        log_dir = "/shared/logs"

    writer, other = Writer(), keras.callbacks.Callback()
    with context._chief_callbacks_here([writer, other]) as here:
        during = {"count": len(here), "log_dir": writer.log_dir,
                  "scratch_is_temporary": writer.log_dir.startswith(tempfile.gettempdir())}
    return {**during, "log_dir_after": writer.log_dir}


def main(path: str) -> None:
    # Before JAX touches a device: setup() initializes jax.distributed.
    context = setup("data_parallel")
    report = {"kind": context.kind, "process_index": context.process_index,
              "num_processes": context.num_processes, "is_chief": context.is_chief,
              "devices": jax.device_count(), "local_devices": jax.local_device_count(),
              "predict_gathers": context.predict_gathers}
    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    start = time.time()
    report["library"], model = scenarios.run_library(context, logs)
    report["library"]["seconds"] = time.time() - start
    # Compared across processes by the test: this process sees its own replica only.
    report["weights"] = [w.tolist() for w in scenarios.weights(model)]
    report["part"] = process_part(context)
    report["dataset_part"] = dataset_part(context)
    report["chief_callbacks"] = chief_callbacks_here(context)
    with open(f"{path}.rank{context.process_index}", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
