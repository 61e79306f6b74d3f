"""AugmentedModel: mixing inside each backend's compiled train step, fresh every step."""

import keras
import numpy as np
import pytest

from keras_recipes.layers import MixUp
from keras_recipes.models import AugmentedModel

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(0)
X = RNG.random((8, 6, 6, 1)).astype("float32")
Y = np.arange(8) % 4


def _net():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="softmax")])


class _StepLosses(keras.callbacks.Callback):
    """Per-step losses, recovered from the running means Keras logs after each batch."""

    def on_train_begin(self, logs=None):
        self.means = []

    def on_train_batch_end(self, batch, logs=None):
        self.means.append(float(logs["loss"]))


def test_fresh_mixing_every_compiled_step_and_the_wrapped_model_elsewhere(tmp_path):
    net = _net()
    model = AugmentedModel(net, MixUp(alpha=1.0, num_classes=4, seed=0))
    # SGD with lr 0: the network never changes, so different losses mean different batches.
    # One batch per epoch: each logged running mean is that step's loss.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy",
                  jit_compile=BACKEND != "torch")  # jax.jit / XLA; torch's trainer is eager
    record = _StepLosses()
    model.fit(X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[record])
    losses = np.array(record.means)
    plain = model.evaluate(X, Y, verbose=0)  # sparse labels made one-hot, not mixed
    assert len(set(np.round(losses, 6))) == 3, losses  # a new draw each step
    assert np.all(np.abs(losses - plain) > 1e-4)  # and the labels were mixed
    state = keras.ops.convert_to_numpy(model.augmentation.generator.state.value)
    assert state[1] == 3  # one draw per step, written back (JAX: through the step's state)

    # evaluate / predict are the wrapped model's; save keeps wrapper and model.
    net.compile(loss="categorical_crossentropy")
    assert plain == pytest.approx(net.evaluate(X, np.eye(4)[Y], verbose=0), rel=1e-6)
    want = net.predict(X, verbose=0)
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-6, atol=1e-7)
    assert model.model is net
    path = tmp_path / "augmented.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is AugmentedModel and type(reloaded.augmentation) is MixUp
    np.testing.assert_allclose(reloaded.predict(X, verbose=0), want, rtol=1e-6, atol=1e-7)


def test_invalid_model_raises():
    with pytest.raises(ValueError, match="`model`"):
        AugmentedModel(keras.layers.Dense(2), MixUp())


def test_invalid_augmentation_raises():
    with pytest.raises(ValueError, match="`augmentation`"):
        AugmentedModel(_net(), lambda x, y: (x, y))


def test_sample_weight_stays_with_the_anchor_sample():
    """`fit`/`train_on_batch` with `sample_weight=w`: mixed sample i keeps its own weight,
    loss = mean_i w_i·CE(y_mix_i, f(x_mix_i)), against a NumPy reference built from an
    eager call of a layer with the same seed (the step's first draw)."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(8, activation="softmax")])
    labels = np.arange(8)  # distinct classes: row i of the mixed labels is λ_i·e_i + ...
    weights = np.array([1.0, 0.0, 3.0, 0.5, 2.0, 0.0, 1.0, 4.0], "float32")
    model = AugmentedModel(net, MixUp(alpha=1.0, num_classes=8, seed=3))
    # jax.jit on JAX; a tf.function graph on TF (XLA draws another Philox stream than the
    # eager reference below); eager on torch.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy",
                  jit_compile=BACKEND == "jax")
    loss = model.train_on_batch(X, labels, sample_weight=weights, return_dict=True)["loss"]

    x_mix, y_mix = (keras.ops.convert_to_numpy(t)
                    for t in MixUp(alpha=1.0, num_classes=8, seed=3)(X, labels))
    probs = keras.ops.convert_to_numpy(net(x_mix)).astype("float64")
    probs = np.clip(probs / probs.sum(axis=1, keepdims=True), 1e-7, 1 - 1e-7)
    cross_entropy = -(y_mix * np.log(probs)).sum(axis=1)
    assert loss == pytest.approx(np.mean(weights * cross_entropy), rel=1e-5)
    # Not the other convention, a weight mixed like the labels: λ_i·w_i + (1-λ_i)·w_p(i).
    mixed_weights = y_mix @ weights
    assert abs(np.mean(mixed_weights * cross_entropy) - loss) > 1e-3
