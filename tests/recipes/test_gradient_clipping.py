"""recipes/gradient_clipping.py --smoke: outputs, same start, and divergence without clipping."""

import numpy as np

from tests.recipes.smoke_run import assert_png, assert_summary, assert_tensorboard


def test_smoke_outputs_and_clipping_claim(recipe_smoke_runs, keras_backend):
    run = recipe_smoke_runs("gradient_clipping")
    config, variants = run.config, run.metrics["variants"]
    assert list(variants) == list(config["variants"]) == [
        "none", "global_clipnorm", "clipnorm", "clipvalue"]
    rows = run.table_rows()
    assert set(config["variants"]) <= set(rows)
    runs = {name: v["runs"][0] for name, v in variants.items()}
    # A controlled comparison: same initial weights, same first batch, so the first step's
    # gradient (before any clipping) is the same for every variant.
    assert len({r["initial_weights"] for r in runs.values()}) == 1
    first = [r["global_gradient_norm"][0] for r in runs.values()]
    np.testing.assert_allclose(first, first[0], rtol=1e-4)
    # The claim: without clipping the loss becomes NaN; clipping the global norm prevents it.
    assert runs["none"]["diverged"] and runs["none"]["first_nonfinite_step"] is not None
    assert first[0] > 10 * config["global_clipnorm"]  # the gradients do explode
    for name in ("global_clipnorm", "clipnorm"):
        r = runs[name]
        assert not r["diverged"] and r["steps_run"] == config["steps_per_epoch"] * config["epochs"]
        assert np.all(np.isfinite(r["step_loss"])) and 0.0 <= r["test_accuracy"] <= 1.0
        assert_summary(variants[name]["test_accuracy"])
        assert len(r["global_gradient_norm"]) == r["steps_run"]
    assert rows["none"][3].startswith("1/1")
    for png in ("gradient_norm.png", "loss.png"):
        assert_png(run.run_dir / png)
    tb = run.run_dir / "tensorboard" / "global_clipnorm" / "seed0" / "train"
    assert_tensorboard(tb, ("gradient_norm/global",), runs["global_clipnorm"]["steps_run"])
