"""Worker: MirroredStrategy over 2 logical CPU devices. Writes a JSON report to argv[1].

Run as a script (a fresh process: it splits the CPU before TensorFlow starts)
or through ``main`` in a process whose CPU is already split (``conftest.py``).
"""

import json
import os
import sys
import time

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402

from keras_recipes.distribute import setup  # noqa: E402
from tests.distribute import scenarios  # noqa: E402


class _NewOptimizerOutsideScope(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
        self.model.optimizer.build(self.model.trainable_variables)
        self.model.make_train_function(force=True)


def _spread(context, variables) -> float:
    worst = 0.0
    for variable in variables:
        values = list(context.replica_values(variable))
        worst = max(worst, *(float(abs(v - values[0]).max()) for v in values))
    return worst


def keras_alone(context, models) -> dict:
    """What Keras 3 does by itself under the strategy (the faults this engine fixes).

    The trained ``AugmentedModel`` goes on with one more epoch of plain
    ``model.fit`` outside ``strategy.scope()``, with a callback that gives it a new
    optimizer there: batch-norm moving statistics are not aggregated, and the
    optimizer's variables are not mirrored (the replicas' weights drift apart).
    """
    kwargs = {"batch_size": scenarios.BATCH, "epochs": 1, "verbose": 0, "shuffle": False}
    augmented = models["augmented"]
    augmented.fit(*scenarios.images(0), callbacks=[_NewOptimizerOutsideScope()], **kwargs)
    bn = augmented.model.get_layer("bn")
    return {
        "batch_norm_replica_difference": _spread(context, [bn.moving_mean, bn.moving_variance]),
        "new_optimizer_replica_difference": _spread(
            context, [augmented.model.get_layer("head").kernel]),
    }


def main(path: str) -> None:
    context = setup("mirrored")  # no GPU: every logical CPU device (2: split above / conftest)
    report, models = {"kind": context.kind}, {}

    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    for name, run in (
        ("library", lambda c: scenarios.run_library(c, logs)),
        ("augmented", lambda c: scenarios.run_augmented(c, compare_one_device=False)),
    ):
        start = time.time()
        report[name], models[name] = run(context)
        report[name]["seconds"] = time.time() - start
    report["keras_alone"] = keras_alone(context, models)
    with open(path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
