"""keras_recipes.experiments: the command line, run folder and result helpers of recipes/."""

import dataclasses
import json
import math

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import EpochScalars
from keras_recipes.data import epoch_batches
from keras_recipes.experiments import (
    fingerprint,
    format_mean_sd,
    make_run_dir,
    markdown_table,
    mean_sd,
    option,
    parse_config,
    save_json,
    summarize,
)


@dataclasses.dataclass
class Defaults:
    backend: str = option(keras.backend.backend(), "Keras backend")
    epochs: int = option(20, "training epochs")
    lr: float = option(0.01, "learning rate")
    seeds: tuple = option((0, 1, 2), "seeds")
    variants: tuple = option(("none", "l2"), "variants")
    jit: bool = option(True, "compile")
    smoke: bool = option(False, "tiny run")


SMOKE = {"epochs": 1, "seeds": (0,), "lr": 0.5}


def test_defaults_types_and_overrides(capsys):
    c = parse_config(Defaults, [], smoke=SMOKE)
    assert c == Defaults()
    # Printed once, as JSON that round-trips the values.
    line = capsys.readouterr().out.strip()
    assert line.startswith("config: ")
    assert json.loads(line[len("config: "):])["seeds"] == [0, 1, 2]
    c = parse_config(
        Defaults, ["--epochs", "7", "--lr", "1e-3", "--seeds", "4,5", "--variants", "a,b,c",
                   "--no-jit"], verbose=False)
    assert (c.epochs, c.lr, c.seeds, c.variants, c.jit) == (7, 1e-3, (4, 5), ("a", "b", "c"),
                                                            False)


def test_smoke_applies_only_to_fields_not_given():
    c = parse_config(Defaults, ["--smoke", "--epochs", "3"], smoke=SMOKE, verbose=False)
    assert (c.smoke, c.epochs, c.seeds, c.lr) == (True, 3, (0,), 0.5)


def test_wrong_type_and_backend_mismatch_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        parse_config(Defaults, ["--epochs", "x"], verbose=False)
    assert e.value.code == 2
    other = next(b for b in ("torch", "tensorflow", "jax") if b != keras.backend.backend())
    with pytest.raises(SystemExit) as e:
        parse_config(Defaults, ["--backend", other], verbose=False)
    assert e.value.code == 2
    assert "KERAS_BACKEND" in capsys.readouterr().err


def test_unknown_smoke_field_raises():
    with pytest.raises(ValueError, match="smoke"):
        parse_config(Defaults, ["--smoke"], smoke={"nope": 1}, verbose=False)


def test_run_dir_json_and_stats(tmp_path):
    a, b = make_run_dir(tmp_path, "r"), make_run_dir(tmp_path, "r")
    assert a != b and a.is_dir() and b.is_dir() and not any(a.iterdir())
    path = save_json(a / "m.json", {"x": np.float32(0.25), "bad": [math.inf, np.nan, 1]})
    assert json.loads(path.read_text()) == {"x": 0.25, "bad": [None, None, 1]}
    values = [0.81, 0.9, 0.87, 0.84]
    m, s = mean_sd(values)
    np.testing.assert_allclose([m, s], [np.mean(values), np.std(values, ddof=1)], rtol=1e-9)
    assert mean_sd([0.5]) == (0.5, 0.0)
    assert summarize(values)["values"] == values
    assert format_mean_sd(summarize([0.5, 0.7]), digits=2) == "0.60 ± 0.14"


def test_markdown_table_and_fingerprint():
    assert markdown_table(["a", "b"], [[1, 2]]).splitlines() == ["| a | b |", "|---|---|",
                                                                  "| 1 | 2 |"]
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(["a", "b"], [[1]])
    w = [np.array([[1.0, -2.0]]), np.array([3.0])]
    assert fingerprint(w) == fingerprint([np.array([[1.0, -2.0]], "float32"), np.array([3.0])])
    assert fingerprint(w) != fingerprint(w[::-1])
    assert fingerprint(w) != fingerprint([np.array([1.0, -2.0]), np.array([3.0])])  # shape
    assert fingerprint(w) != fingerprint([np.array([[1.0, -2.0]]), np.array([3.0 + 1e-6])])


def _tiny_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_epoch_batches_give_identical_fits_and_cover_each_epoch():
    """The recipes' feed: the same seed gives the same batches, so the same fit; every example
    once per epoch, epoch e in the order np.random.default_rng([seed, e])."""
    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(10, 2)).astype("float32")
    epochs, steps = 3, math.ceil(10 / 4)
    ds = epoch_batches(x, y, 4, seed=3, epochs=epochs, prefetch=False)
    assert len(ds) == epochs * steps
    orders = []
    for e in range(epochs):
        order = np.random.default_rng([3, e]).permutation(10)  # independent reference
        np.testing.assert_array_equal(ds[e * steps][0], x[order[:4]])
        np.testing.assert_array_equal(ds[e * steps + 2][1], y[order[8:]])
        rows = np.concatenate([ds[e * steps + j][0] for j in range(steps)])
        seen = [int(np.flatnonzero((x == r).all(1))[0]) for r in rows]
        assert sorted(seen) == list(range(10))  # every example once in the epoch
        orders.append(seen)
    assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch
    histories = []
    for _ in range(2):
        model = _tiny_model()
        h = model.fit(epoch_batches(x, y, 4, seed=3, epochs=epochs), steps_per_epoch=steps,
                      shuffle=False, epochs=epochs, verbose=0)
        histories.append(h.history["loss"])
    assert histories[0] == histories[1]
    other = _tiny_model().fit(epoch_batches(x, y, 4, seed=4, epochs=epochs),
                              steps_per_epoch=steps, shuffle=False, epochs=epochs, verbose=0)
    assert other.history["loss"] != histories[0]  # the seed decides the batches


def test_tensorboard_scalars_write_the_epoch_logs(tmp_path):
    from keras_recipes.callbacks.event_writer import read_scalars

    x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    model = _tiny_model()
    h = model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=4, verbose=0,
                  callbacks=[EpochScalars(tmp_path)])
    train = read_scalars(tmp_path / "train")["epoch_loss"]
    val = read_scalars(tmp_path / "validation")["epoch_loss"]
    assert [s for s, _ in train] == [0, 1]
    np.testing.assert_allclose([v for _, v in train], h.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in val], h.history["val_loss"], rtol=1e-6)


def test_declared_choices_and_bounds_are_checked_with_the_flag_named(capsys):
    from keras_recipes.experiments import check_config

    @dataclasses.dataclass
    class Limits:
        mode: str = option("a", "mode", choices=("a", "b"))
        epochs: int = option(1, "epochs", minimum=1)
        lr: float = option(0.1, "lr", above=0)
        momentum: float = option(0.9, "momentum", minimum=0, below=1)

    check_config(Limits())  # the defaults pass
    check_config(Limits(momentum=0.0, epochs=1, lr=1e-9))  # the edges that are allowed
    cases = [({"mode": "c"}, "--mode: 'c'. Expected a | b."),
             ({"epochs": 0}, "--epochs: 0. Expected an int >= 1."),
             ({"lr": 0.0}, "--lr: 0.0. Expected a float > 0."),
             ({"lr": float("nan")}, "--lr: nan. Expected a float > 0."),
             ({"momentum": 1.0}, "--momentum: 1.0. Expected a float in [0, 1)."),
             ({"momentum": -0.1}, "--momentum: -0.1. Expected a float in [0, 1).")]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as e:
            check_config(Limits(**kwargs))
        assert str(e.value) == "Invalid value for " + message
    with pytest.raises(SystemExit) as e:  # parse_config: argparse's exit status 2
        parse_config(Limits, ["--momentum", "1"], verbose=False)
    assert e.value.code == 2
    assert "Invalid value for --momentum: 1.0. Expected a float in [0, 1)." in (
        capsys.readouterr().err)


def test_phase_summaries_take_each_phase_last_epoch():
    from keras_recipes.experiments import phase_summaries

    history = [{"epoch": e, "val_loss": 2.0 - 0.1 * e, "val_top1": 0.1 * e} for e in range(7)]
    rows = phase_summaries(history, {"head": 3, "fine-tune": 10})
    assert rows == [
        {"phase": "head", "epochs": "1-3", "val_loss": 1.8, "val_top1": 0.2},
        # stopped early after epoch index 6: the phase's last done epoch, 1-based 7
        {"phase": "fine-tune", "epochs": "4-7", "val_loss": 1.4, "val_top1": 0.6000000000000001},
    ]
    # a run killed during the head phase: one row, the phase not yet begun is left out
    assert phase_summaries(history[:2], {"head": 3, "fine-tune": 10}, keys=("val_top1",)) == [
        {"phase": "head", "epochs": "1-2", "val_top1": 0.1}]
    # an empty first phase (no warm-up) and missing keys
    assert phase_summaries(history[:1], {"head": 0, "all": 5}, keys=("test_top1",)) == [
        {"phase": "all", "epochs": "1-1", "test_top1": None}]
    assert phase_summaries([], {"head": 3}) == []
