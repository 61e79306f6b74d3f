"""Worker: tf.distribute.MultiWorkerMirroredStrategy, one CPU per worker process.

Started once per worker with its ``TF_CONFIG`` (a cluster of workers on
127.0.0.1, this one's task index), as on several hosts. Each worker writes its
JSON report to ``argv[1] + ".rank<task index>"``.
"""

import json
import os
import sys
import time

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


def rows_per_worker(context) -> int:
    """Training rows that reached this worker's replica in one epoch (64 rows, batch 16)."""
    x, y = scenarios.data(0)
    with context.scope():
        model = keras.Sequential([keras.Input((scenarios.FEATURES,)),
                                  scenarios.RowCounter(name="rows"),
                                  keras.layers.Dense(scenarios.CLASSES)])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
    context.fit(model, x, y, batch_size=scenarios.BATCH, epochs=1, verbose=0, shuffle=False)
    (rows,) = context.replica_values(model.get_layer("rows").rows)
    return int(rows)


def main(path: str) -> None:
    # Created before any other TensorFlow op, as MultiWorkerMirroredStrategy requires.
    context = setup("multi_worker")
    report = {"kind": context.kind, "process_index": context.process_index,
              "num_processes": context.num_processes, "is_chief": context.is_chief}
    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    start = time.time()
    report["library"], model = scenarios.run_library(context, logs)
    report["library"]["seconds"] = time.time() - start
    # Compared across workers by the test: replicas on other processes are not visible here.
    report["weights"] = [w.tolist() for w in scenarios.weights(model)]
    report["rows"] = rows_per_worker(context)
    with open(f"{path}.rank{context.process_index}", "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
