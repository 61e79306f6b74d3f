"""A small resumable training run for the RunCheckpoint tests, in process or as a subprocess.

``python tests/callbacks/checkpoint_worker.py DIR KIND KILL`` trains the run below with
``KIND`` = ``ours`` (``RunCheckpoint``) or ``keras`` (``keras.callbacks.BackupAndRestore``)
and kills itself with SIGKILL at ``KILL``: ``E:B`` (epoch E, before batch B: mid-epoch,
the previous epoch's checkpoint on disk) or ``write:E`` (while epoch E's checkpoint is
being written: its arrays are on disk, its ``state.json`` is not).

The run: a nested "backbone" (Dense → BatchNormalization → Dropout) frozen for epochs 0-2
and unfrozen at epoch 3 by ``UnfreezeSchedule`` (a new momentum-SGD optimizer), a
GaussianNoise layer, and ``EarlyStopping(patience=3)`` on a scripted ``val_score`` whose
best epoch is 2: an uninterrupted run stops after epoch 5.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 9
ENGINE = os.environ.get("CHECKPOINT_WORKER_ENGINE", "auto")
SCORES = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0]  # best at epoch 2: stop after epoch 5


def _kill_now():
    from keras_recipes.callbacks.event_writer import EventWriter

    EventWriter.wait_all()
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def train(directory: str, kind: str = "ours", kill: str | None = None) -> dict:
    """Trains the run; returns its final weights, loss history and stop epoch."""
    import keras
    import numpy as np

    from keras_recipes.callbacks import EarlyStopping, RunCheckpoint, UnfreezeSchedule
    from keras_recipes.callbacks import run_checkpoint as rc
    from keras_recipes.data import epoch_batches

    class Scripted(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = SCORES[epoch]

    class KillAt(keras.callbacks.Callback):
        def __init__(self, epoch, batch):
            super().__init__()
            self.at, self.epoch = (epoch, batch), None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            if (self.epoch, batch) == self.at:
                for writer in list(rc._WRITERS.values()):  # the last checkpoint is complete
                    writer.join()
                _kill_now()

    class KillingCheckpoint(RunCheckpoint):
        def __init__(self, *args, kill_epoch, **kwargs):
            super().__init__(*args, **kwargs)
            self.kill_epoch = kill_epoch

        def _write_state(self, folder, state):
            if state["epoch"] == self.kill_epoch:
                _kill_now()
            super()._write_state(folder, state)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    backbone = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8),
                                 keras.layers.BatchNormalization(), keras.layers.Dropout(0.3)],
                                name="backbone")
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(1)(keras.layers.GaussianNoise(0.1)(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    backbone.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")

    stopper = EarlyStopping(monitor="val_score", patience=3, mode="min", verbose=0)
    callbacks = [Scripted(), UnfreezeSchedule("backbone", {3: "all"}, learning_rate=0.02,
                                              verbose=0), stopper]
    if kind == "ours":
        if kill and kill.startswith("write:"):
            checkpoint = KillingCheckpoint(directory, monitor="val_score", verbose=0,
                                           kill_epoch=int(kill.split(":")[1]))
        else:
            checkpoint = RunCheckpoint(directory, monitor="val_score", verbose=0)
        start = checkpoint.initial_epoch
        callbacks.append(checkpoint)
    else:
        checkpoint = keras.callbacks.BackupAndRestore(directory, delete_checkpoint=False)
        meta = Path(directory) / "training_metadata.json"
        start = json.loads(meta.read_text())["epoch"] if meta.is_file() else 0
        callbacks.append(checkpoint)
    if kill and not kill.startswith("write:"):
        epoch, batch = kill.split(":")
        callbacks.append(KillAt(int(epoch), int(batch)))
    feed = epoch_batches(x, y, 8, seed=0, initial_epoch=start, epochs=EPOCHS, engine=ENGINE)
    history = model.fit(feed, epochs=EPOCHS, initial_epoch=start, steps_per_epoch=4,
                        shuffle=False, verbose=0, callbacks=callbacks)
    full = checkpoint.history if kind == "ours" else None
    return {
        "weights": [keras.ops.convert_to_numpy(v.value) for v in model.variables],
        "optimizer": [keras.ops.convert_to_numpy(v.value) for v in model.optimizer.variables],
        "loss": [h["loss"] for h in full] if full is not None else history.history["loss"],
        "stopped_epoch": stopper.stopped_epoch,
        "best_epoch": stopper.best_epoch,
        "epochs_run": len(full) if full is not None else None,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    train(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
