"""Xavier and He: empirical std equals the formula (ratio within 1%), contract, errors.

The reference is the formula itself, written out here from the papers:
Glorot `gain·sqrt(2/(fan_in+fan_out))`, He `gain/sqrt(fan)`, with fans of the
Keras layout `(*receptive_field, in, out)`.
"""

import math

import keras
import numpy as np
import pytest

from keras_recipes.initializers import He, Xavier, compute_fans
from tests.contract import run_initializer_test

# 55,296 draws each (the same count: on JAX one compiled sampler serves both shapes);
# the std estimate is good to ~0.3%, the tolerance is 1%.
MATRIX = (576, 96)  # fan_in 576, fan_out 96
CONV = (3, 3, 64, 96)  # fan_in 576, fan_out 864
DISTRIBUTIONS = ["normal", "truncated_normal", "uniform"]


def draw(init, shape):
    return np.asarray(keras.ops.convert_to_numpy(init(shape)), "float64")


def test_compute_fans():
    assert compute_fans(MATRIX) == (576, 96)
    assert compute_fans(CONV) == (576, 864)
    assert compute_fans((5, 8, 16)) == (40, 80)
    assert compute_fans((7,)) == (7, 7)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("shape", [MATRIX, CONV], ids=["matrix", "conv"])
def test_xavier_std_equals_formula(distribution, shape):
    fan_in, fan_out = compute_fans(shape)
    for activation, g in [("tanh", 1.0), ("sigmoid", 4.0)]:
        values = draw(Xavier(activation, distribution=distribution, seed=3), shape)
        target = g * math.sqrt(2.0 / (fan_in + fan_out))
        assert values.std() / target == pytest.approx(1.0, abs=0.01)
        assert abs(values.mean()) < 5 * target / math.sqrt(values.size)  # 5 standard errors
        if distribution == "uniform":
            assert np.abs(values).max() <= g * math.sqrt(6.0 / (fan_in + fan_out)) * (1 + 1e-6)
        if distribution == "truncated_normal":
            assert np.abs(values).max() <= 2 * target / 0.87962566103423978 * (1 + 1e-6)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("shape", [MATRIX, CONV], ids=["matrix", "conv"])
def test_he_std_equals_formula(distribution, shape):
    fan_in, fan_out = compute_fans(shape)
    cases = [
        (He(distribution=distribution, seed=4), math.sqrt(2.0 / fan_in)),
        (He("relu", mode="fan_out", distribution=distribution, seed=5), math.sqrt(2.0 / fan_out)),
        (He("leaky_relu", negative_slope=0.3, distribution=distribution, seed=6),
         math.sqrt(2.0 / ((1 + 0.09) * fan_in))),
    ]
    for init, target in cases:
        assert draw(init, shape).std() / target == pytest.approx(1.0, abs=0.01)


def test_he_uses_fan_in_not_the_fan_average():
    """He et al.: Var(w) = 2/n_in. With fan_in 576 and fan_out 96 the average is 336."""
    init = He()
    assert init.stddev(MATRIX) == pytest.approx(math.sqrt(2 / 576))
    assert init.stddev(MATRIX) != pytest.approx(math.sqrt(2 / 336), rel=0.1)


def test_explicit_gain_and_torch_convention():
    assert Xavier(gain=2.5).stddev((30, 20)) == pytest.approx(2.5 * math.sqrt(2 / 50))
    assert Xavier("tanh", convention="torch").stddev((30, 20)) == pytest.approx(
        5 / 3 * math.sqrt(2 / 50)
    )
    assert He("linear").stddev((30, 20)) == pytest.approx(math.sqrt(1 / 30))  # LeCun


def test_keras_truncated_normal_facts():
    """docs/techniques.md §3: HeNormal divides by 0.8796; TruncatedNormal(s) gives 0.88·s."""
    he = draw(keras.initializers.HeNormal(seed=1), MATRIX).std()
    plain = draw(keras.initializers.TruncatedNormal(stddev=0.1, seed=1), MATRIX).std()
    assert he / math.sqrt(2 / 576) == pytest.approx(1.0, abs=0.01)
    assert plain / 0.1 == pytest.approx(0.8796, abs=0.01)


@pytest.mark.parametrize(
    "init",
    [Xavier("sigmoid", seed=1), Xavier(gain=2.0, distribution="uniform", seed=2),
     He(seed=3), He("leaky_relu", negative_slope=0.2, mode="fan_out",
                    distribution="truncated_normal", seed=4)],
    ids=["xavier", "xavier_gain", "he", "he_leaky"],
)
def test_contract(init):
    run_initializer_test(init, MATRIX)


def test_seeded_sequence_repeats_and_successive_calls_differ():
    a, b = Xavier(seed=7), Xavier(seed=7)
    first, second = draw(a, MATRIX), draw(a, MATRIX)
    np.testing.assert_array_equal(first, draw(b, MATRIX))
    np.testing.assert_array_equal(second, draw(b, MATRIX))
    assert not np.array_equal(first, second)


def test_saved_in_a_layer_and_reloaded(tmp_path):
    model = keras.Sequential([keras.Input((MATRIX[0],)), keras.layers.Dense(
        MATRIX[1], kernel_initializer=He("leaky_relu", negative_slope=0.2, seed=1))])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    init = reloaded.layers[0].kernel_initializer
    assert isinstance(init, He) and init.get_config() == {
        "activation": "leaky_relu", "gain": None, "distribution": "normal", "mode": "fan_in",
        "convention": "glorot", "negative_slope": 0.2, "seed": 1,
    }
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded.layers[0].kernel),
        keras.ops.convert_to_numpy(model.layers[0].kernel),
    )


@pytest.mark.parametrize("cls", [Xavier, He])
def test_activation_and_gain_together_raise(cls):
    with pytest.raises(ValueError, match="arguments `activation` and `gain`. Expected one"):
        cls("relu", gain=2.0)


@pytest.mark.parametrize("cls", [Xavier, He])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), "2"])
def test_invalid_gain_raises(cls, bad):
    with pytest.raises(ValueError, match="argument `gain`. Expected a float > 0"):
        cls(gain=bad)


@pytest.mark.parametrize("cls", [Xavier, He])
def test_invalid_distribution_raises(cls):
    with pytest.raises(ValueError, match="argument `distribution`. Expected one of"):
        cls(distribution="untruncated_normal")


def test_invalid_mode_raises():
    with pytest.raises(ValueError, match="argument `mode`. Expected one of"):
        He(mode="fan_avg")


@pytest.mark.parametrize("cls", [Xavier, He])
def test_invalid_seed_raises(cls):
    with pytest.raises(ValueError, match="argument `seed`. Expected an int or None"):
        cls(seed=1.5)


@pytest.mark.parametrize("cls", [Xavier, He])
def test_unknown_activation_raises(cls):
    with pytest.raises(ValueError, match="argument `activation`. Expected one of"):
        cls("gelu")
