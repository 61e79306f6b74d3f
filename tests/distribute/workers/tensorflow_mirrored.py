"""Worker: MirroredStrategy over 2 logical CPU devices. Writes a JSON report to argv[1]."""

import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

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

    The trained models go on with one more epoch of plain ``model.fit`` outside
    ``strategy.scope()``: batch-norm moving statistics are not aggregated, and an
    optimizer built by a callback there has unmirrored variables.
    """
    kwargs = {"batch_size": scenarios.BATCH, "epochs": 1, "verbose": 0, "shuffle": False}
    augmented = models["augmented"]
    augmented.fit(*scenarios.images(0), **kwargs)
    bn = augmented.model.get_layer("bn")
    plain = models["library"]
    plain.fit(*scenarios.data(0), callbacks=[_NewOptimizerOutsideScope()], **kwargs)
    return {
        "batch_norm_replica_difference": _spread(context, [bn.moving_mean, bn.moving_variance]),
        "new_optimizer_replica_difference": _spread(context, plain.trainable_weights),
    }


def main(path: str) -> None:
    context = setup("mirrored", devices=["/cpu:0", "/cpu:1"])
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
