"""Monitoring never changes training: with or without our callbacks, the same trajectory.

A model holding every kind of randomness and state Keras has (RandomFlip, Dropout,
GaussianNoise, our MixUp through AugmentedModel, BatchNormalization), with its random
layers created without a seed (as most users write them) and with one, is trained twice
from the same start: once bare, once with GradientHistogram (probe batch, or capturing the
real steps), WeightHistogram, EpochScalars, EarlyStopping and RunCheckpoint. The weights
(batch-norm statistics and seed-generator states included), the per-epoch losses and the
optimizer's iteration count must be equal, array for array.
"""

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import (
    EarlyStopping,
    EpochScalars,
    GradientHistogram,
    RunCheckpoint,
    WeightHistogram,
)
from keras_recipes.layers import MixUp
from keras_recipes.models import AugmentedModel
from tests.conftest import BACKEND

RNG = np.random.default_rng(0)
X = RNG.random((48, 6, 6, 1)).astype("float32")
Y = RNG.integers(0, 3, size=48)


def _model(seeded: bool, jit: bool):
    keras.utils.set_random_seed(0)
    seed = (lambda k: k) if seeded else (lambda k: None)
    net = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.RandomFlip("horizontal", seed=seed(1)),
        keras.layers.Flatten(),
        keras.layers.Dense(16),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.3, seed=seed(2)),
        keras.layers.GaussianNoise(0.1, seed=seed(3)),
        keras.layers.Dense(3),
    ])
    model = AugmentedModel(net, MixUp(0.4, num_classes=3, seed=seed(4)))
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=jit)
    return model


def _train(seeded, jit, callbacks):
    model = _model(seeded, jit)
    history = model.fit(X, Y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        callbacks=callbacks)
    weights = [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.variables]
    return history.history["loss"], weights, int(keras.ops.convert_to_numpy(
        model.optimizer.iterations))


def _monitors(tmp_path):
    return [
        # gradients of the real training steps
        GradientHistogram(str(tmp_path / "captured"), every=2),
        # an extra forward and backward pass on a held-out batch, in training mode
        GradientHistogram(str(tmp_path / "probe"), every=2, data=(X[:16], Y[:16])),
        WeightHistogram(tmp_path / "weights"),
        EpochScalars(tmp_path / "logs"),
        EarlyStopping(monitor="loss", patience=10),
        RunCheckpoint(tmp_path / "state", monitor="loss"),
    ]



@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("seeded", [False, True], ids=["no_seed", "seed"])
def test_monitors_leave_the_trajectory_unchanged(keras_backend, tmp_path, seeded, jit):
    if jit and BACKEND == "torch":
        pytest.skip("jit_compile=True is torch.compile, minutes per fit on this CPU")
    losses, weights, steps = _train(seeded, jit, [])
    got_losses, got_weights, got_steps = _train(seeded, jit, _monitors(tmp_path))
    assert got_steps == steps == 9
    assert got_losses == losses  # exactly: same floats
    assert len(got_weights) == len(weights)
    for a, b in zip(got_weights, weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for folder in ("captured", "probe"):  # the monitors did run
        assert list((tmp_path / folder / "train").glob("events.out.tfevents.*"))


def test_torch_probe_used_to_move_unseeded_dropout_masks(keras_backend, tmp_path):
    """The fault as found on torch: a probe pass drew from torch's global generator.

    Dense(16) -> BatchNormalization -> Dropout(0.3) -> Dense(1), Adam 1e-2, MSE, 64 samples,
    batch 16, 3 epochs: before the fix the last epoch's loss was 1.5833 without the callback
    and 1.7729 with GradientHistogram(every=2, data=...) (this data); now both are 1.5833.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")

    def last_loss(callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                                  keras.layers.BatchNormalization(), keras.layers.Dropout(0.3),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        return model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                         callbacks=callbacks).history["loss"][-1]

    bare = last_loss([])
    probed = last_loss([GradientHistogram(str(tmp_path), every=2, data=(x[:16], y[:16]))])
    assert probed == bare
    if BACKEND == "torch":
        assert round(bare, 4) == 1.5833
