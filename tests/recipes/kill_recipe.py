"""Runs ``recipes/transfer_vgg19.py`` and kills it with SIGKILL at a chosen moment (tests only).

``python tests/recipes/kill_recipe.py EPOCH [recipe flags]`` runs the recipe as
``python recipes/transfer_vgg19.py [recipe flags]`` would, with one more callback in its
first ``fit`` (the transfer run): at the end of the last training batch of epoch ``EPOCH``
(0-based), once the previous epoch's checkpoint is on disk and before this epoch's
validation and checkpoint, the process kills itself with SIGKILL, as a crash or an
out-of-memory kill would. Nothing for this lives in the recipe: the callback comes in
through ``main(argv, extra_callbacks=...)``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "transfer_vgg19.py"


def main() -> int:
    kill_epoch, argv = int(sys.argv[1]), sys.argv[2:]
    sys.path.insert(0, str(ROOT / "recipes"))
    from _bootstrap import choose_backend

    # before Keras is imported, as the script does
    choose_backend(argv, resume_name="transfer_vgg19", quiet_tensorflow=True)
    import keras

    from keras_recipes.callbacks import run_checkpoint
    from keras_recipes.callbacks.event_writer import EventWriter

    class KillAt(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = None
            self.fits = 0

        def on_train_begin(self, logs=None):
            self.fits += 1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.fits == 1 and self.epoch == kill_epoch and batch + 1 == self.params["steps"]:
                for writer in list(run_checkpoint._WRITERS.values()):
                    writer.join()  # the previous epoch's checkpoint is complete
                EventWriter.wait_all()
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    spec = importlib.util.spec_from_file_location("transfer_vgg19_killed", SCRIPT)
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe  # dataclasses look their module up
    spec.loader.exec_module(recipe)
    return recipe.main(argv, extra_callbacks=[KillAt()])


if __name__ == "__main__":
    sys.exit(main())
