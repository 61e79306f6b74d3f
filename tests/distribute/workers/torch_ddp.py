"""Worker: torch DDP, one process per rank (gloo on 127.0.0.1), torchrun's environment.

Run as a script under ``torchrun --nproc_per_node=2`` (``launch.run_ddp``).

Each rank writes its JSON report to ``argv[1] + ".rank<R>"``.
"""

import json
import os
import sys
import time

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "torch"

import torch  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


def uneven(context) -> dict:
    """Global batches of 15 (and a last one of 4): parts of 7/8 and 2/2 rows."""
    x, y = scenarios.data(0)
    kwargs = {"batch_size": 15, "epochs": 1, "verbose": 0, "shuffle": False}
    many, one = scenarios.mlp(), scenarios.mlp()
    context.fit(many, x, y, **kwargs)
    setup("none").fit(one, x, y, **kwargs)
    return {"weights_vs_one_device": scenarios.max_difference(
        scenarios.weights(many), scenarios.weights(one))}


def mismatch(context) -> dict:
    """Each rank passes different data: every rank must raise the same clear error."""
    x, y = scenarios.data(context.process_index)
    try:
        context.fit(scenarios.mlp(), x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    except ValueError as error:
        return {"error": str(error)}
    return {"error": None}


def main(path: str) -> None:
    torch.set_num_threads(1)
    context = setup("ddp", timeout_s=120)
    report = {"kind": context.kind, "rank": context.process_index,
              "is_chief": context.is_chief, "world_size": context.num_replicas}
    models = {}
    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    for name, run in (
        ("library", lambda c: scenarios.run_library(c, logs)),
        ("augmented", lambda c: scenarios.run_augmented(c, compare_one_device=False)),
    ):
        start = time.time()
        report[name], models[name] = run(context)
        report[name]["seconds"] = time.time() - start
    report["uneven"] = uneven(context)
    report["mismatch"] = mismatch(context)
    with open(f"{path}.rank{context.process_index}", "w") as f:
        json.dump(report, f)
    context.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
