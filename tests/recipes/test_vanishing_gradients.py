"""recipes/vanishing_gradients.py --smoke: outputs, and the picture's claim at initialization."""

import numpy as np

from tests.recipes.smoke_run import assert_png, assert_summary, assert_tensorboard


def test_smoke_outputs_and_vanishing_claim(recipe_smoke_runs, keras_backend):
    run = recipe_smoke_runs("vanishing_gradients")
    config, variants = run.config, run.metrics["variants"]
    names = [f"{a}-{i}" for a in config["activations"] for i in config["inits"]]
    assert sorted(variants) == sorted(names) and len(names) == 4  # relu × 4 inits
    for name in names:
        v = variants[name]
        assert_summary(v["test_accuracy"])
        assert 0.0 <= v["test_accuracy"]["mean"] <= 1.0
        for r in v["runs"]:
            # One gradient norm per layer (hidden layers + logits), at init and after training.
            assert len(r["norms_init"]) == len(r["norms_final"]) == config["depth"] + 1
            assert np.all(np.isfinite(r["norms_init"])) and np.all(np.isfinite(r["norms_final"]))
            # The table's ratio is the first layer's norm over the logits layer's.
            np.testing.assert_allclose(r["ratio_init"], r["norms_init"][0] / r["norms_init"][-1])
    table = [line for line in run.results.splitlines() if line.startswith("| relu |")]
    assert sorted(line.split("|")[2].strip() for line in table) == sorted(config["inits"])
    # The claim, robust at any size: 20 layers of N(0, 0.01²) weights make the first layer's
    # gradient vanish (GradientHistogram alerts); He and LSUV keep it within 100x of the last.
    small, he, lsuv = (variants[f"relu-{i}"]["runs"][0] for i in ("small", "he", "lsuv"))
    assert small["ratio_init"] < 1e-4 and small["vanishing_alert"]
    assert he["ratio_init"] > 1e-2 and not he["vanishing_alert"]
    assert lsuv["ratio_init"] > 1e-2 and not lsuv["vanishing_alert"]
    assert (run.run_dir / "lsuv.json").is_file()
    # plot_gradient_norms' per-variant picture: the first `gradient_plots` variants (1 here).
    for png in ("gradient_norm_by_depth.png", "loss_curves.png", "gradient_norms/relu-small.png"):
        assert_png(run.run_dir / png)
    assert len(list((run.run_dir / "gradient_norms").glob("*.png"))) == config["gradient_plots"]
    tb = run.run_dir / "tensorboard" / "relu-he" / "seed0"
    scalars = assert_tensorboard(tb / "train", ("gradient_norm/global", "epoch_loss",
                                                 "epoch_accuracy"), config["epochs"])
    # The table's trained norms are GradientHistogram's last logged ones, per layer.
    he = variants["relu-he"]["runs"][0]
    kernel, bias = (scalars[f"gradient_norm/logits/{w}"][-1][1] for w in ("kernel", "bias"))
    np.testing.assert_allclose(he["norms_final"][-1], np.hypot(kernel, bias), rtol=1e-5)

