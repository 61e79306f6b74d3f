"""Worker: keras.distribution.DataParallel over 2 XLA host devices. JSON report to argv[1].

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` in the environment.
"""

import json
import os
import sys
import time

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
    with open(path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
