"""recipes/early_stopping.py --smoke: outputs, identical trajectories, best vs last weights."""

import numpy as np

from tests.recipes.smoke_run import (
    assert_loads_with_keras_alone,
    assert_png,
    assert_summary,
    assert_tensorboard,
)


def test_smoke_outputs_and_stopping_claims(recipe_smoke_runs, keras_backend):
    run = recipe_smoke_runs("early_stopping")
    config, rules = run.config, run.metrics["rules"]
    assert list(rules) == list(config["rules"])
    assert set(config["rules"]) <= set(run.table_rows())
    runs = {name: v["runs"][0] for name, v in rules.items()}
    full = runs["full"]
    assert full["epochs_run"] == config["max_epochs"] and full["stop_reason"] == "budget"
    for name, r in runs.items():
        for key in ("test_accuracy", "test_loss", "val_loss_kept", "epochs_run"):
            assert_summary(rules[name][key])
        # Same initial weights and batches: every rule follows the full run's trajectory
        # until it stops.
        assert r["initial_weights"] == full["initial_weights"]
        np.testing.assert_allclose(r["val_loss"], full["val_loss"][: r["epochs_run"]],
                                   rtol=1e-5)
        assert r["best_epoch"] == int(np.argmin(r["val_loss"])) + 1
        # Restore-best keeps the weights of the lowest validation loss, last keeps the last.
        kept = r["val_loss_best"] if r["restored_best"] else r["val_loss_last"]
        np.testing.assert_allclose(r["val_loss_kept"], kept, rtol=1e-4)
    # At smoke size the model already overfits: both rules stop before the budget, and
    # restoring the best weights is never worse on validation than keeping the last ones.
    for rule, reason in (("patience", "patience"), ("overfit", "overfitting")):
        assert runs[rule]["stop_reason"] == reason
        assert runs[rule]["epochs_run"] < config["max_epochs"]
        assert runs[f"{rule}_last"]["epochs_run"] == runs[rule]["epochs_run"]
        assert runs[rule]["val_loss_kept"] <= runs[f"{rule}_last"]["val_loss_kept"] + 1e-6
    assert runs["patience"]["epochs_run"] >= runs["patience"]["best_epoch"] + config["patience"]
    assert_png(run.run_dir / "curves.png")
    assert (run.run_dir / "best.keras").stat().st_size > 0
    assert_loads_with_keras_alone(run.run_dir / "best.keras")  # without keras_recipes
    tb = run.run_dir / "tensorboard" / "patience" / "seed0"
    assert_tensorboard(tb / "validation", ("epoch_loss",), runs["patience"]["epochs_run"])
