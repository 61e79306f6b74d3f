"""Worker: keras.distribution.DataParallel over 2 XLA host devices. JSON report to argv[1].

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` in the environment,
as a script or through ``main`` in a process that has the 2 devices (``conftest.py``).
"""

import json
import os
import sys
import time
import warnings

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


def data_split(context) -> dict:
    """How one global batch is laid out on the devices."""
    x, _ = scenarios.data(0)
    layout = context.distribution.get_data_layout(x[: scenarios.BATCH].shape)
    sharded = jax.device_put(x[: scenarios.BATCH], layout.backend_layout)
    shards = sorted(sharded.addressable_shards, key=lambda s: s.device.id)
    return {
        "rows_per_device": [int(s.data.shape[0]) for s in shards],
        "shards_reassemble": bool(
            np.array_equal(np.concatenate([np.asarray(s.data) for s in shards]),
                           x[: scenarios.BATCH])
        ),
    }


def partial_batch(context) -> dict:
    """A tf.data pipeline of 13 rows in batches of 4: the last batch has 1 row."""
    from keras_recipes.data.pipeline import to_dataset

    x, y = scenarios.data(0, rows=13)
    with context.scope():
        many = scenarios.mlp()
    one = scenarios.mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context.fit(many, to_dataset(x, y, batch_size=4), epochs=2, verbose=0)
    setup("none").fit(one, to_dataset(x, y, batch_size=4), epochs=2, verbose=0)
    return {
        "warned": any("multiple of 2" in str(w.message) for w in caught),
        # The 1-row batch is repeated to 2 rows: same mean loss, same gradient.
        "weights_vs_one_device": scenarios.max_difference(
            scenarios.weights(many), scenarios.weights(one)),
    }


def outside_scope(context) -> dict:
    """A model created outside context.scope(): a clear error, not a jit failure."""
    x, y = scenarios.data(0)
    try:
        context.fit(scenarios.mlp(), x, y, batch_size=16, verbose=0)
    except ValueError as error:
        return {"error": str(error)}
    return {"error": None}


def main(path: str) -> None:
    context = setup("data_parallel")
    report = {"kind": context.kind, "devices": jax.device_count()}
    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    for name, run in (
        ("library", lambda c: scenarios.run_library(c, logs)),
        ("augmented", lambda c: scenarios.run_augmented(c, compare_one_device=True)),
    ):
        start = time.time()
        report[name], _ = run(context)
        report[name]["seconds"] = time.time() - start
    report["split"] = data_split(context)
    report["partial_batch"] = partial_batch(context)
    report["outside_scope"] = outside_scope(context)
    with open(path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
