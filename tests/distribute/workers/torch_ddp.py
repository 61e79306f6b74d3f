"""Worker: torch DDP, one process per rank (gloo on 127.0.0.1), launched by torchrun.

Each rank writes its JSON report to ``argv[1] + ".rank<R>"``.
"""

import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import torch  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


def main(path: str) -> None:
    torch.set_num_threads(1)
    context = setup("ddp", timeout_s=120)
    report = {"kind": context.kind, "rank": context.process_index,
              "is_chief": context.is_chief, "world_size": context.num_replicas}
    models = {}
    for name, run in (
        ("match", scenarios.run_match),
        ("batch_norm", scenarios.run_batch_norm),
        ("augmented", lambda c: scenarios.run_augmented(c, compare_one_device=False)),
    ):
        start = time.time()
        report[name], models[name] = run(context)
        report[name]["seconds"] = time.time() - start
    dropout = models["batch_norm"].get_layer("dropout")
    report["dropout_seed_state"] = [
        int(v) for v in keras.ops.convert_to_numpy(dropout.seed_generator.state.value)
    ]
    with open(f"{path}.rank{context.process_index}", "w") as f:
        json.dump(report, f)
    context.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
