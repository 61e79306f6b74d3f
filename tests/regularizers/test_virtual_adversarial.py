"""virtual_adversarial_perturbation against NumPy: the Hessian's dominant eigenvector, one
power-iteration step, the KL of the VAT loss, ‖r_adv‖ = ε per sample, and no state change."""

import keras
import numpy as np
import pytest

from keras_recipes.backend import get_random_state
from keras_recipes.regularizers import virtual_adversarial_perturbation
from keras_recipes.regularizers.virtual_adversarial import (
    resolvable_step,
    virtual_adversarial_loss,
)

RNG = np.random.default_rng(1)
D, K, N = 6, 4, 5
W = RNG.normal(size=(D, K)).astype("float32")
B = RNG.normal(size=K).astype("float32")
X = RNG.normal(size=(N, D)).astype("float32")


def _numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def _linear_softmax(from_logits):
    """logits = x W + b (probabilities when not `from_logits`)."""
    model = keras.Sequential([keras.Input((D,)),
                              keras.layers.Dense(K, activation=None if from_logits else "softmax")])
    model.layers[0].kernel.assign(W)
    model.layers[0].bias.assign(B)
    return model


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _hessian(x):
    """Hessian of r -> KL(p(y|x) || p(y|x + r)) at r = 0 for logits x W + b."""
    p = _softmax(x.astype("float64") @ W + B)
    return W.astype("float64") @ (np.diag(p) - np.outer(p, p)) @ W.T.astype("float64")


def _unit_rows(a):
    a = a.reshape(len(a), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
def test_many_power_iterations_give_the_dominant_eigenvector(from_logits):
    r = _numpy(virtual_adversarial_perturbation(
        _linear_softmax(from_logits), X, epsilon=2.0, xi=1e-3, power_iterations=30, seed=3,
        from_logits=from_logits))
    assert r.shape == X.shape
    for i in range(N):
        values, vectors = np.linalg.eigh(_hessian(X[i]))
        assert values[-1] > 1.5 * values[-2]  # a clear dominant direction
        cosine = abs(r[i] @ vectors[:, -1]) / np.linalg.norm(r[i])
        assert cosine == pytest.approx(1.0, abs=1e-5), (i, cosine)


def test_one_power_iteration_is_the_hessian_times_the_random_start():
    """d0 from the same seed; r_adv ∝ H·d0/‖d0‖ (the finite difference at ξ = 1e-3)."""
    r = _numpy(virtual_adversarial_perturbation(
        _linear_softmax(True), X, epsilon=1.0, xi=1e-3, seed=7, from_logits=True))
    d0 = _numpy(keras.random.normal((N, D), seed=keras.random.SeedGenerator(7)))
    want = _unit_rows(np.stack([_hessian(X[i]) @ d0[i] for i in range(N)]))
    np.testing.assert_allclose(r, want, atol=5e-3)  # float32 finite differences


def test_the_default_xi_points_the_same_way_up_to_float32_noise():
    r = _numpy(virtual_adversarial_perturbation(
        _linear_softmax(True), X, epsilon=1.0, power_iterations=20, seed=3, from_logits=True))
    for i in range(N):
        vector = np.linalg.eigh(_hessian(X[i]))[1][:, -1]
        assert abs(r[i] @ vector) > 0.97


@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probabilities"])
def test_one_iteration_with_the_default_xi_is_the_hessian_times_the_start(from_logits):
    # The paper's ξ = 1e-6 alone moves these unit-scale float32 inputs by a few units in the
    # last place: the direction was 0.45-0.96 (cosine) from H·d0; the step's floor keeps it.
    r = _numpy(virtual_adversarial_perturbation(
        _linear_softmax(from_logits), X, epsilon=1.0, seed=7, from_logits=from_logits))
    d0 = _numpy(keras.random.normal((N, D), seed=keras.random.SeedGenerator(7)))
    want = _unit_rows(np.stack([_hessian(X[i]) @ d0[i] for i in range(N)]))
    cosines = np.sum(_unit_rows(r) * want, axis=1)
    assert cosines.min() > 0.999, cosines


def test_the_step_is_xi_above_what_the_compute_dtype_resolves():
    x = np.zeros((2, 4, 4, 1), "float32")
    x[0, 1, 2, 0], x[1, 3, 3, 0] = -2.0, 0.5  # max |x_i|: 2 and 0.5; 16 entries each
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    floor = 128 * 2.0**-23 * 4.0 * np.array([2.0, 0.5])  # ulps, float32 eps, sqrt(16)
    step = _numpy(resolvable_step(model, keras.ops.convert_to_tensor(x), 1e-6))
    assert step.shape == (2, 1, 1, 1)
    np.testing.assert_allclose(step.ravel(), floor, rtol=1e-6)
    np.testing.assert_array_equal(
        _numpy(resolvable_step(model, keras.ops.convert_to_tensor(x), 0.25)).ravel(),
        np.float32(0.25))  # above the floor: ξ as given


def test_mixed_float16_keeps_the_perturbation():
    # Under mixed_float16 the model computes in float16: x + 1e-6·d was x again, every
    # gradient exactly zero and r_adv = 0 (VAT silently off). Now the float32 model's
    # direction (same weights), to float16's precision.
    x = RNG.random((4, 8, 8, 1)).astype("float32")

    def conv():
        return keras.Sequential([keras.Input((8, 8, 1)),
                                 keras.layers.Conv2D(4, 3, activation="tanh"),
                                 keras.layers.Flatten(), keras.layers.Dense(3)])

    keras.utils.set_random_seed(2)
    reference = conv()
    r32 = _numpy(virtual_adversarial_perturbation(reference, x, epsilon=1.0, xi=1e-3, seed=0,
                                                  from_logits=True))
    keras.config.set_dtype_policy("mixed_float16")  # reset after each test (conftest)
    model = conv()
    model.set_weights(reference.get_weights())
    r16 = _numpy(virtual_adversarial_perturbation(model, x, epsilon=1.0, seed=0,
                                                  from_logits=True))
    np.testing.assert_allclose(np.linalg.norm(r16.reshape(4, -1), axis=1), 1.0, rtol=1e-3)
    cosines = np.sum(_unit_rows(r16) * _unit_rows(r32), axis=1)
    assert cosines.min() > 0.98, cosines


def test_norm_is_epsilon_per_sample_over_all_non_batch_axes():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 5, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(4, "softmax")])
    x = RNG.random((3, 5, 5, 2)).astype("float32")
    r = _numpy(virtual_adversarial_perturbation(model, x, epsilon=0.25, seed=0))
    assert r.shape == x.shape and r.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.reshape(3, -1), axis=1), 0.25, rtol=1e-5)
    # Integer images are accepted (cast to floats).
    r8 = virtual_adversarial_perturbation(model, (x * 255).astype("uint8"), epsilon=1.0, seed=0)
    assert _numpy(r8).shape == x.shape


def test_vat_loss_is_the_numpy_kl_at_the_perturbation():
    model = _linear_softmax(True)
    r = _numpy(virtual_adversarial_perturbation(model, X, epsilon=0.8, xi=1e-3, seed=5,
                                                from_logits=True))
    loss = virtual_adversarial_loss(model, X, model(X), keras.random.SeedGenerator(5),
                                    epsilon=0.8, xi=1e-3, power_iterations=1, from_logits=True,
                                    training=True)
    p = _softmax(X.astype("float64") @ W + B)
    q = _softmax((X + r).astype("float64") @ W + B)
    kl = np.sum(p * (np.log(p) - np.log(q)), axis=1)
    assert float(_numpy(loss)) == pytest.approx(kl.mean(), rel=1e-4)
    assert kl.mean() > 1e-3


def test_no_state_changes_and_fresh_draws_from_a_seed_generator():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(8),
                              keras.layers.BatchNormalization(), keras.layers.Dropout(0.3),
                              keras.layers.Dense(K, "softmax")])
    before = [_numpy(v.value).copy() for v in model.variables]
    random_state = get_random_state()
    generator = keras.random.SeedGenerator(11)
    first = _numpy(virtual_adversarial_perturbation(model, X, epsilon=1.0, seed=generator,
                                                    training=True))
    second = _numpy(virtual_adversarial_perturbation(model, X, epsilon=1.0, seed=generator,
                                                     training=True))
    for v, value in zip(model.variables, before, strict=True):
        np.testing.assert_array_equal(_numpy(v.value), value, err_msg=v.path)  # BN, dropout seed
    after = get_random_state()
    assert all(np.array_equal(after[k], random_state[k]) for k in random_state)
    assert np.abs(first - second).max() > 1e-3  # the generator advanced: a new start
    again = [_numpy(virtual_adversarial_perturbation(model, X, epsilon=1.0, seed=4))
             for _ in range(2)]
    np.testing.assert_array_equal(*again)  # an int seed: the same start every call


@pytest.mark.parametrize(
    "name, value, expected",
    [("epsilon", -1, "a float > 0"), ("epsilon", 0.0, "a float > 0"),
     ("xi", float("nan"), "a float > 0"), ("xi", "1e-6", "a float > 0"),
     ("power_iterations", 0, "an int >= 1"), ("power_iterations", 1.5, "an int >= 1"),
     ("seed", "zero", "None, an int")],
)
def test_invalid_arguments_raise(name, value, expected):
    kwargs = {"epsilon": 1.0, name: value}
    with pytest.raises(ValueError, match=(f"Invalid value for argument `{name}`. Expected "
                                          f"{expected}.*Received: {name}=")):
        virtual_adversarial_perturbation(_linear_softmax(True), X, **kwargs)
