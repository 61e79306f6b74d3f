"""recipes/regularization_ablation.py --smoke: outputs and the controlled comparison."""

import numpy as np

from tests.recipes.smoke_run import (
    assert_loads_with_keras_alone,
    assert_png,
    assert_summary,
    assert_tensorboard,
)


def test_smoke_outputs_same_start_and_penalty(recipe_smoke_runs, keras_backend):
    run = recipe_smoke_runs("regularization_ablation")
    config, variants = run.config, run.metrics["variants"]
    assert list(variants) == list(config["variants"]) == ["none", "vat", "all"]
    rows = run.table_rows()
    for name, v in variants.items():
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "gap"):
            assert_summary(v[key])
        r = v["runs"][0]
        assert all(0.0 <= r[k] <= 1.0 for k in ("train_accuracy", "val_accuracy",
                                                 "test_accuracy"))
        np.testing.assert_allclose(r["gap"], r["train_accuracy"] - r["test_accuracy"])
        # The table shows the same numbers, in percent.
        assert rows[name][3].startswith(f"{100 * r['test_accuracy']:.1f} ")
        assert len(r["epoch_val_accuracy"]) == config["epochs"]
    # Every variant starts from the same conv/dense weights (copied by layer name).
    first = {name: v["runs"][0] for name, v in variants.items()}
    assert first["none"]["initial_weights"] == first["vat"]["initial_weights"] \
        == first["all"]["initial_weights"]
    # VAT adds its loss (logged as vat_loss, > 0 once the model is no longer uniform) to
    # its own variant only; "all" is every technique but VAT.
    assert len(first["vat"]["epoch_vat_loss"]) == config["epochs"]
    assert all(v > 0 for v in first["vat"]["epoch_vat_loss"])
    assert first["none"]["epoch_vat_loss"] == first["all"]["epoch_vat_loss"] == []
    assert config["vat_epsilon"] > 0 and first["vat"]["mixing"] is None
    # L2 goes on the kernels of the four shared layers, never on biases or batch norm.
    penalized = variants["all"]["runs"][0]["penalized_weights"]
    assert sorted(p.split("/")[-2] for p in penalized) == ["conv1", "conv2", "dense1", "logits"]
    assert all(p.endswith("/kernel") for p in penalized)
    assert variants["none"]["runs"][0]["penalized_weights"] == []
    # "all" holds every technique of the course's list; "none" none of them.
    every = {"RandomFlip", "RandomRotation", "RandomTranslation", "RandomColorJitter",
             "RandomErasing", "GaussianNoise", "Dropout", "BatchNormalization"}
    assert config["flip"] == "on" and every <= set(variants["all"]["runs"][0]["layers"])
    assert not every & set(variants["none"]["runs"][0]["layers"])
    assert variants["all"]["runs"][0]["mixing"] == "MixUpOrCutMix"
    assert variants["all"]["runs"][0]["label_smoothing"] == config["label_smoothing"] > 0
    assert variants["none"]["runs"][0]["mixing"] is None
    assert variants["none"]["runs"][0]["label_smoothing"] == 0.0
    # On JAX the augmentation layers Keras marks supports_jit=False (RandomRotation,
    # RandomTranslation) are marked jittable: "all" trains in one jitted step, not op by op.
    if keras_backend == "jax":
        assert variants["all"]["runs"][0]["jit_compile"] is True
    # Batch norm and dropout add no weights to copy; "all" has BN's extra parameters.
    assert variants["all"]["runs"][0]["parameters"] > variants["none"]["runs"][0]["parameters"]
    assert_png(run.run_dir / "curves.png")
    assert (run.run_dir / "all.keras").stat().st_size > 0
    assert_loads_with_keras_alone(run.run_dir / "all.keras")  # without keras_recipes
    tb = run.run_dir / "tensorboard" / "all" / "seed0"
    assert_tensorboard(tb / "train", ("epoch_loss", "epoch_accuracy"), config["epochs"])
