"""recipes/semi_supervised_vat.py --smoke: outputs and the controlled comparison."""

import numpy as np

from tests.recipes.smoke_run import (
    assert_loads_with_keras_alone,
    assert_png,
    assert_summary,
    assert_tensorboard,
)


def test_smoke_outputs_same_start_same_labels(recipe_smoke_runs, keras_backend):
    run = recipe_smoke_runs("semi_supervised_vat")
    config, variants = run.config, run.metrics["variants"]
    assert list(variants) == list(config["variants"]) == [
        "supervised", "vat_labelled", "vat_unlabelled"]
    rows = run.table_rows()
    first = {name: v["runs"][0] for name, v in variants.items()}
    sizes = run.metrics["split_sizes"]
    labelled = 10 * config["labels_per_class"]  # digits: 10 classes
    assert sizes["unlabelled"] == sizes["train"] - labelled > 0
    for name, v in variants.items():
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "test_error"):
            assert_summary(v[key])
        r = first[name]
        np.testing.assert_allclose(r["test_error"], 1.0 - r["test_accuracy"])
        assert rows[name][4].startswith(f"{100 * r['test_accuracy']:.1f} ")
        assert r["labelled"] == labelled and len(r["epoch_val_accuracy"]) == config["epochs"]
        # One pass over the unlabelled images per epoch, for every variant.
        assert r["steps_per_epoch"] == max(sizes["unlabelled"] // config["unlabelled_batch_size"],
                                           1)
    # Same initial weights and the same labelled images in every variant.
    assert len({r["initial_weights"] for r in first.values()}) == 1
    assert len({r["labelled_rows"] for r in first.values()}) == 1
    # The VAT term only where asked; unlabelled rows only in vat_unlabelled.
    assert first["supervised"]["epoch_vat_loss"] == []
    for name in ("vat_labelled", "vat_unlabelled"):
        assert len(first[name]["epoch_vat_loss"]) == config["epochs"]
        assert all(v > 0 for v in first[name]["epoch_vat_loss"])
    assert [first[n]["unlabelled_per_batch"] for n in variants] == [
        0, 0, config["unlabelled_batch_size"]]
    assert_png(run.run_dir / "curves.png")
    assert_loads_with_keras_alone(run.run_dir / "vat_unlabelled.keras")  # plain Keras MLP
    tb = run.run_dir / "tensorboard" / "vat_unlabelled" / "seed0"
    assert_tensorboard(tb / "train", ("epoch_loss", "epoch_vat_loss"), config["epochs"])
    # Saving the .keras file imports TensorFlow: under torch and jax the recipes import it
    # at start-up with its C++ notices left out (recipes/_bootstrap.py).
    if keras_backend != "tensorflow":
        for notice in ("absl::InitializeLog", "oneDNN", "cuda drivers", "cpu_feature_guard"):
            assert notice not in run.stderr, run.stderr[:2000]
