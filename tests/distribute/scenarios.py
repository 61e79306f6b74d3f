"""Training scenarios shared by the distributed workers (any backend).

Each scenario trains tiny models from fixed initial weights with a
data-parallel context and with one device, and returns plain numbers that the
tests in this folder assert on. Imported by the worker processes only.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_recipes.distribute import setup

ROWS, FEATURES, CLASSES, BATCH, EPOCHS = 64, 6, 3, 16, 2
# Cheapest settings for these few steps on CPU: JAX compiles its steps (its eager
# op dispatch compiles every op), TensorFlow traces without XLA, torch runs eagerly;
# the TensorFlow one-device references run eagerly (tracing costs more).
JIT = keras.backend.backend() == "jax"
EAGER_REFERENCE = keras.backend.backend() == "tensorflow"


# Every model below overwrites its initial weights from a NumPy generator: no random
# initializer (on JAX each new shape would compile a threefry program).
def _hidden() -> keras.layers.Dense:
    return keras.layers.Dense(8, activation="tanh", name="hidden", kernel_initializer="zeros")


def _head() -> keras.layers.Dense:
    return keras.layers.Dense(CLASSES, name="head", kernel_initializer="zeros")


def data(seed: int = 0, rows: int = ROWS):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, rows).astype("int32")
    return x, y


class RowCounter(keras.layers.Layer):
    """Identity that counts, per replica, the training rows that reached it."""

    def build(self, input_shape):
        self.rows = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="rows"
        )

    def call(self, x, training=False):
        if training:
            self.rows.assign(self.rows + keras.ops.cast(keras.ops.shape(x)[0], "int32"))
        return x


def mlp(*, run_eagerly: bool = False) -> keras.Model:
    model = keras.Sequential([
        keras.Input((FEATURES,)), _hidden(),
        _head(),
    ], name="mlp")
    rng = np.random.default_rng(42)
    for w in model.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=tuple(w.shape)).astype("float32"))
    model.compile(
        # Gradient norms are 0.5-0.7 here: the global clip acts on most steps.
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, global_clipnorm=0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=JIT,
        run_eagerly=run_eagerly,
    )
    return model


def images(seed: int = 0, rows: int = ROWS):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, size=(rows, 4, 4, 1)).astype("float32"),
            rng.integers(0, CLASSES, rows).astype("int32"))


def augmented(*, run_eagerly: bool = False) -> keras.Model:
    """AugmentedModel(MixUp) around a net with a row counter, batch norm and dropout."""
    from keras_recipes.layers import MixUp
    from keras_recipes.models import AugmentedModel

    net = keras.Sequential([
        keras.Input((4, 4, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
        RowCounter(name="rows"), _hidden(),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dropout(0.25, seed=3, name="dropout"),
        _head(),
    ], name="net")
    rng = np.random.default_rng(42)
    for w in net.trainable_weights:
        w.assign(rng.normal(scale=0.5, size=tuple(w.shape)).astype("float32"))
    model = AugmentedModel(net, MixUp(alpha=0.4, num_classes=CLASSES, seed=5))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=JIT, run_eagerly=run_eagerly)
    return model


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(w.value), dtype=np.float64)
            for w in model.weights if "float" in str(w.dtype)]


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b, strict=True))


def transfer_model(*, run_eagerly: bool = False) -> keras.Model:
    """A tiny "transfer" model: a frozen nested ``backbone`` and a new head."""
    from keras_recipes.applications import freeze

    backbone = keras.Sequential([
        keras.Input((FEATURES,)), _hidden(),
    ], name="backbone")
    model = keras.Sequential([keras.Input((FEATURES,)), backbone,
                              _head()], name="transfer")
    rng = np.random.default_rng(42)
    for w in model.weights:
        w.assign(rng.normal(scale=0.5, size=tuple(w.shape)).astype("float32"))
    freeze(backbone)
    model.compile(
        # Gradient norms are 0.5-0.7 here: the global clip acts on most steps.
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, global_clipnorm=0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=JIT, run_eagerly=run_eagerly,
    )
    return model


def library_callbacks(log_dir: str):
    """(every process, chief only): the course's fine-tuning callbacks."""
    from keras_recipes.callbacks import EarlyStopping, GradientHistogram, UnfreezeSchedule

    return (
        [
            UnfreezeSchedule("backbone", {1: "all"}, learning_rate=0.05, verbose=0),
            # No improvement of 10 is possible: stops after the second epoch (of 3).
            # (Training loss: validation under each engine is run_augmented's.)
            EarlyStopping(monitor="loss", min_delta=10.0, patience=1),
        ],
        [GradientHistogram(log_dir, verbose=0)],  # gradients captured from the steps
    )


def run_library(context, log_root: str) -> tuple[dict, keras.Model]:
    """2 replicas vs 1 device with the library's callbacks, from the same weights.

    UnfreezeSchedule unfreezes the backbone at epoch 1 with a new optimizer,
    EarlyStopping stops after epoch 1, GradientHistogram (chief only) logs the
    captured gradients; ``global_clipnorm`` is active. Same global batches.
    """
    from keras_recipes.callbacks.event_writer import read_histograms, read_scalars

    x, y = data(0)
    kwargs = {"batch_size": BATCH, "epochs": 3, "verbose": 0, "shuffle": False}
    runs = {}
    # Under torchrun every rank also trains the one-device reference: its own folder.
    one_dir = f"one-{context.process_index}" if context.num_processes > 1 else "one"
    for name, ctx, eager in (("many", context, False), ("one", setup("none"), EAGER_REFERENCE)):
        log_dir = os.path.join(log_root, "many" if name == "many" else one_dir)
        callbacks, chief = library_callbacks(log_dir)
        with ctx.scope():
            model = transfer_model(run_eagerly=eager)
        history = ctx.fit(model, x, y, callbacks=callbacks, chief_callbacks=chief, **kwargs)
        runs[name] = (model, history.history, log_dir)
    many, logs_many, dir_many = runs["many"]
    one, logs_one, dir_one = runs["one"]
    report = {
        "num_replicas": context.num_replicas,
        "epochs_run": {"many": len(logs_many["loss"]), "one": len(logs_one["loss"])},
        "weights_vs_one_device": max_difference(weights(many), weights(one)),
        "logs_vs_one_device": max(
            abs(a - b) for k in logs_one for a, b in zip(logs_many[k], logs_one[k], strict=True)
        ),
        "replica_difference": context.max_replica_difference(many),
        "backbone_trained": max_difference(
            [np.asarray(keras.ops.convert_to_numpy(
                many.get_layer("backbone").get_layer("hidden").kernel.value))],
            [np.asarray(keras.ops.convert_to_numpy(
                transfer_model().get_layer("backbone").get_layer("hidden").kernel.value))],
        ) > 0,
        "logs": {k: [float(v) for v in vals] for k, vals in logs_many.items()},
    }
    if context.is_chief:
        dirs = {"many": os.path.join(dir_many, "train"), "one": os.path.join(dir_one, "train")}
        # Every gradient_norm/* scalar (global and per weight) and every gradients/*
        # histogram (buckets: left edge, right edge, count), as {tag: [(step, value)]}.
        report["gradient_norms"] = {
            name: {tag: sorted(values) for tag, values in read_scalars(d).items()
                   if tag.startswith("gradient_norm/")} for name, d in dirs.items()}
        report["gradient_histograms"] = {
            name: {tag: sorted((step, buckets.tolist()) for step, buckets in values)
                   for tag, values in read_histograms(d).items()
                   if tag.startswith("gradients/")} for name, d in dirs.items()}
        report["event_files"] = sorted(
            os.path.relpath(root, log_root)
            for root, _, files in os.walk(os.path.join(log_root, "many"))
            for f in files if "tfevents" in f
        )
    return report, many


def run_augmented(context, *, compare_one_device: bool) -> tuple[dict, keras.Model]:
    """AugmentedModel(MixUp) over a net with batch norm and dropout, with validation.

    Every replica must end with the same weights and batch-norm statistics, each
    replica must have trained on its equal part of every global batch (the row
    counter), and the random streams (MixUp, dropout) of the replicas differ.
    """
    x, y = images(0)
    xv, yv = images(1, rows=32)
    kwargs = {"batch_size": BATCH, "epochs": EPOCHS, "verbose": 0, "shuffle": False,
              "validation_data": (xv, yv)}
    with context.scope():
        model = augmented()
    history = context.fit(model, x, y, **kwargs)
    net = model.model
    report = {
        "replica_difference": context.max_replica_difference(model),
        "rows_per_replica": [int(v) for v in context.replica_values(net.get_layer("rows").rows)],
        "logs": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "mixup_seed_states": [np.asarray(v).tolist() for v in context.replica_values(
            model.augmentation.generator.state)],
        "dropout_seed_states": [np.asarray(v).tolist() for v in context.replica_values(
            net.get_layer("dropout").seed_generator.state)],
    }
    if compare_one_device:
        one = augmented(run_eagerly=EAGER_REFERENCE)
        setup("none").fit(one, x, y, **kwargs)
        report["weights_vs_one_device"] = max_difference(weights(model), weights(one))
    return report, model
