"""VirtualAdversarialModel: the VAT term against NumPy inside fit's step, clean batch-norm
statistics, a fresh draw every (compiled) step, semi-supervised rows, composition with
UnfreezeSchedule and AugmentedModel, round trip and argument checks."""

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import UnfreezeSchedule
from keras_recipes.layers import MixUp
from keras_recipes.models import AugmentedModel, VirtualAdversarialModel
from keras_recipes.regularizers import virtual_adversarial_perturbation
from tests.contract import assert_config_round_trip

BACKEND = keras.backend.backend()
RNG = np.random.default_rng(2)
D, K, N = 6, 4, 8
X = RNG.normal(size=(N, D)).astype("float32")
Y = np.arange(N) % K
W = RNG.normal(size=(D, K)).astype("float32")
B = RNG.normal(size=K).astype("float32")

# jit_compile=True on torch is torch.compile: minutes on a CPU. TF (XLA) and JAX (jax.jit) run it.
JIT = [
    pytest.param(False, id="eager"),
    pytest.param(True, id="jit", marks=pytest.mark.skipif(
        BACKEND == "torch", reason="torch jit_compile is torch.compile: minutes per test on CPU")),
]
# The composition tests run in the backend's usual mode only: compiled on TF and JAX, eager torch.
COMPILED = BACKEND != "torch"


def _numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _linear():
    """logits = x W + b."""
    net = keras.Sequential([keras.Input((D,)), keras.layers.Dense(K)])
    net.layers[0].kernel.assign(W)
    net.layers[0].bias.assign(B)
    return net


def _batchnorm_net():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(5),
                             keras.layers.BatchNormalization(momentum=0.5),
                             keras.layers.Dense(K, activation="softmax")])


class _StepLogs(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})


def test_the_step_adds_alpha_times_the_numpy_kl_and_weights_out_unlabelled_rows():
    """One train step, SGD(0): logged vat_loss = mean_i KL(p_i ‖ q_i) at r_adv (drawn as the
    public function draws with the same seed); loss = CE over the labelled rows + α·vat."""
    net = _linear()
    model = VirtualAdversarialModel(net, epsilon=1.5, alpha=0.7, xi=1e-3, power_iterations=2,
                                    from_logits=True, seed=5)
    # jax.jit on JAX; on TF a tf.function graph (XLA draws another random stream than eager).
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=BACKEND == "jax",
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True, reduction="mean_with_sample_weight"))
    weight = np.array([1, 1, 1, 1, 1, 0, 0, 0], "float32")
    logs = model.train_on_batch(X, Y, sample_weight=weight, return_dict=True)

    r = _numpy(virtual_adversarial_perturbation(net, X, epsilon=1.5, xi=1e-3, power_iterations=2,
                                                seed=5, from_logits=True, training=True))
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.5, rtol=1e-5)
    p = _softmax(X.astype("float64") @ W + B)
    q = _softmax((X + r).astype("float64") @ W + B)
    vat = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1))
    cross_entropy = -np.log(p[np.arange(N), Y])
    supervised = np.sum(weight * cross_entropy) / weight.sum()
    assert logs["vat_loss"] == pytest.approx(vat, rel=1e-4)
    assert logs["loss"] == pytest.approx(supervised + 0.7 * vat, rel=1e-4)
    assert vat > 1e-2


@pytest.mark.parametrize("jit", JIT)
def test_fresh_draw_every_step_and_the_wrapped_model_elsewhere(jit, tmp_path):
    net = _linear()
    model = VirtualAdversarialModel(net, epsilon=1.0, from_logits=True, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=jit,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    record = _StepLogs()
    history = model.fit(X, Y, batch_size=N, epochs=3, shuffle=False, verbose=0,
                        callbacks=[record])
    vat = [step["vat_loss"] for step in record.logs]  # one step per epoch: the step's value
    assert len(set(np.round(vat, 7))) == 3, vat  # SGD(0): a new random start in every step
    assert _numpy(model.seed_generator.state.value)[1] == 3  # JAX: through the step's state
    assert sorted(history.history) == ["loss", "vat_loss"]

    # save keeps wrapper and model; evaluate / predict are the wrapped model's.
    path = tmp_path / "vat.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded) is VirtualAdversarialModel
    config = {k: v for k, v in model.get_config().items() if k != "model"}
    assert {k: v for k, v in reloaded.get_config().items() if k != "model"} == config
    assert reloaded.model.name == net.name
    want = net.predict(X, verbose=0)
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reloaded.predict(X, verbose=0), want, rtol=1e-6, atol=1e-6)
    plain = model.evaluate(X, Y, verbose=0)  # a scalar: no vat_loss in evaluate
    net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert plain == pytest.approx(net.evaluate(X, Y, verbose=0), rel=1e-6)


@pytest.mark.parametrize("jit", JIT)
def test_batchnorm_statistics_are_those_of_the_clean_batch(jit):
    plain = _batchnorm_net()
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    plain.train_on_batch(X, Y)
    net = _batchnorm_net()
    model = VirtualAdversarialModel(net, epsilon=3.0, alpha=5.0, xi=1e-3, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    model.train_on_batch(X, Y)
    bn, bn_plain = net.layers[1], plain.layers[1]
    for name in ("moving_mean", "moving_variance"):
        got, want = _numpy(getattr(bn, name).value), _numpy(getattr(bn_plain, name).value)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
    # By hand: momentum 0.5 from (0, 1), with the clean batch's statistics of Dense(5)'s output.
    kernel0 = _numpy(_batchnorm_net().layers[0].kernel.value)
    h = X.astype("float64") @ kernel0  # bias starts at 0
    np.testing.assert_allclose(_numpy(bn.moving_mean.value), 0.5 * h.mean(axis=0), rtol=1e-4,
                               atol=1e-6)
    # The VAT term did act on the weights (the last layer's kernel differs from the plain step).
    assert np.abs(_numpy(net.layers[2].kernel.value)
                  - _numpy(plain.layers[2].kernel.value)).max() > 1e-4


def test_semi_supervised_labels_of_unlabelled_rows_do_not_matter_their_inputs_do():
    weight = np.array([1, 1, 1, 1, 0, 0, 0, 0], "float32")

    def trained(x, y):
        net = _batchnorm_net()
        model = VirtualAdversarialModel(net, epsilon=2.0, alpha=3.0, xi=1e-3, seed=1)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                      jit_compile=COMPILED)
        model.fit(x, y, sample_weight=weight, batch_size=N, epochs=1, verbose=0, shuffle=False)
        return [_numpy(v.value) for v in net.trainable_variables]

    base = trained(X, Y)
    other_labels = Y.copy()
    other_labels[4:] = (Y[4:] + 1) % K
    for a, b in zip(base, trained(X, other_labels), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    other_inputs = X.copy()
    other_inputs[6] = -other_inputs[6]  # an unlabelled row: only the VAT term sees it
    assert max(np.abs(a - b).max() for a, b in zip(base, trained(other_inputs, Y),
                                                     strict=True)) > 1e-4


def test_composes_with_unfreeze_schedule():
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((D,)), keras.layers.Dense(5, activation="tanh")],
                                name="backbone")
    backbone.trainable = False
    inputs = keras.Input((D,))
    net = keras.Model(inputs, keras.layers.Dense(K)(backbone(inputs)))
    model = VirtualAdversarialModel(net, epsilon=1.0, from_logits=True, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=COMPILED,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel = backbone.layers[0].kernel
    seen = []
    watch = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(_numpy(kernel.value).copy()))
    start = _numpy(kernel.value).copy()
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0, callbacks=[
        UnfreezeSchedule("backbone", {1: "all"}, learning_rate=0.05, verbose=0), watch])
    np.testing.assert_array_equal(seen[0], start)  # frozen in epoch 0
    assert np.abs(seen[1] - start).max() > 1e-5  # trained (with the VAT term) in epoch 1
    assert all(v > 0 for v in history.history["vat_loss"])
    assert _numpy(model.seed_generator.state.value)[1] == 4


def test_composes_with_augmented_model_mixing():
    keras.utils.set_random_seed(0)
    images = RNG.random((N, 4, 4, 1)).astype("float32")
    net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(K, activation="softmax")])
    inner = AugmentedModel(net, MixUp(alpha=1.0, num_classes=K, seed=0))
    model = VirtualAdversarialModel(inner, epsilon=1.0, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy",
                  jit_compile=COMPILED)
    record = _StepLogs()
    model.fit(images, Y, batch_size=N, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    assert _numpy(inner.augmentation.generator.state.value)[1] == 2  # mixed in each step
    assert _numpy(model.seed_generator.state.value)[1] == 2
    plain = model.evaluate(images, Y, verbose=0)  # sparse labels made one-hot, not mixed
    net.compile(loss="categorical_crossentropy")
    assert plain == pytest.approx(net.evaluate(images, np.eye(K)[Y], verbose=0), rel=1e-6)
    # The step's supervised part is on mixed labels: it differs from the clean loss.
    for step in record.logs:
        assert abs(step["loss"] - step["vat_loss"] - plain) > 1e-4


def test_config_round_trip():
    model = VirtualAdversarialModel(_linear(), epsilon=0.5, alpha=2.0, xi=1e-5,
                                    power_iterations=3, from_logits=True, seed=9)
    config = assert_config_round_trip(model)
    assert {k: config[k] for k in ("epsilon", "alpha", "xi", "power_iterations", "from_logits",
                                   "seed")} == {"epsilon": 0.5, "alpha": 2.0, "xi": 1e-5,
                                                "power_iterations": 3, "from_logits": True,
                                                "seed": 9}


@pytest.mark.parametrize(
    "name, value, message",
    [("epsilon", -1, "Invalid value for argument `epsilon`. Expected a float > 0. "
                     "Received: epsilon=-1"),
     ("epsilon", float("inf"), "argument `epsilon`. Expected a float > 0"),
     ("alpha", -0.5, "Invalid value for argument `alpha`. Expected a float >= 0. "
                     "Received: alpha=-0.5"),
     ("xi", 0, "Invalid value for argument `xi`. Expected a float > 0. Received: xi=0"),
     ("power_iterations", 0, "Invalid value for argument `power_iterations`. Expected an int "
                             ">= 1. Received: power_iterations=0"),
     ("seed", "a", "Invalid value for argument `seed`")],
)
def test_invalid_arguments_raise(name, value, message):
    kwargs = {"epsilon": 1.0, name: value}
    with pytest.raises(ValueError) as info:
        VirtualAdversarialModel(_linear(), **kwargs)
    assert message in str(info.value)


def test_invalid_model_raises():
    with pytest.raises(ValueError, match="Invalid value for argument `model`"):
        VirtualAdversarialModel(keras.layers.Dense(2), epsilon=1.0)
