"""Early stopping: an over-capacity MLP on 100 digits, stopped by patience or by the overfit rule.

What it shows (`docs/techniques.md` §4): with little data a large model drives the training
loss towards zero while the validation loss, after a minimum, rises again. A 2×512 MLP is
trained with Adam on 10 images per digit (full validation and test sets), every rule of
``keras_recipes.callbacks.EarlyStopping`` from the same initial weights on the same batches:
``full`` (all ``max_epochs``, last weights), ``patience`` (stop after ``patience`` epochs
without a new best ``val_loss``), ``overfit`` (stop after ``overfit_patience`` consecutive
epochs in which ``val_loss`` rose while ``loss`` fell), both restoring the best weights, and
``patience_last`` / ``overfit_last`` (the same rules, last weights). It reports the stopping and
best epochs and the test scores of the weights each rule keeps (mean ± sd over seeds).

Commands:

    python recipes/early_stopping.py                          # CPU, defaults
    python recipes/early_stopping.py --backend jax            # torch|tensorflow|jax
    python recipes/early_stopping.py --train-per-class 50     # GPU or CPU: same command
    python recipes/early_stopping.py --data path/to/folder --image-size 16
    python recipes/early_stopping.py --smoke                  # tiny run (tests)

Outputs (one run folder, printed at the end): ``config.json``, ``metrics.json``,
``results.md``, ``curves.png`` (training and validation curves, every rule's stopping epoch
and the best epoch marked), ``best.keras`` (the model the ``patience`` rule kept for the
first seed), ``tensorboard/<rule>/seed<k>/``.

Results of the default command (2×512 MLP, 100 training images, at most 150 epochs, patience
10, overfit patience 3, seeds 0-4; 270 test digits), ``python recipes/early_stopping.py
--backend torch``: backend torch, 2-core AMD EPYC CPU, no GPU, 2026-12-07, 146 s wall (the CPU
shared with other jobs, load average 4-5; other backends and earlier figures:
``benchmarks/results/early_stopping.md``):

    | rule | epochs | best epoch | stop reason | kept val loss | test loss | test acc. % |
    |---|---|---|---|---|---|---|
    | full | 150.0±0.0 | 9.6±6.2 | budget | 0.622±0.021 | 0.866±0.102 | 85.0±1.5 |
    | patience | 19.6±6.2 | 9.6±6.2 | patience | 0.534±0.044 | 0.772±0.134 | 83.7±1.3 |
    | patience_last | 19.6±6.2 | 9.6±6.2 | patience | 0.573±0.041 | 0.809±0.116 | 84.1±1.1 |
    | overfit | 12.6±6.2 | 9.6±6.2 | overfitting | 0.534±0.044 | 0.772±0.134 | 83.7±1.3 |
    | overfit_last | 12.6±6.2 | 9.6±6.2 | overfitting | 0.578±0.068 | 0.825±0.127 | 83.9±1.5 |

Both rules stop early (after 12.6 and 19.6 of the 150 epochs on average), and restoring the
best weights gives the lowest test loss (0.772 vs 0.809-0.866 for the last weights); test
*accuracy* keeps rising slowly past the loss minimum, so the 150-epoch run ends highest (85.0%
vs 83.7%): monitor ``val_accuracy`` to stop on it.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the backend is chosen before Keras is imported
    from _bootstrap import choose_backend

    # Saving a .keras file imports TensorFlow: imported now, without its start-up notices.
    choose_backend(sys.argv[1:], quiet_tensorflow=True)

import dataclasses  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import experiments  # noqa: E402
from keras_recipes.backend import device_description  # noqa: E402
from keras_recipes.callbacks import EarlyStopping, EpochScalars  # noqa: E402
from keras_recipes.data import epoch_batches, image_folder, load_digits  # noqa: E402
from keras_recipes.experiments import option  # noqa: E402

RULES = ("full", "patience", "patience_last", "overfit", "overfit_last")


@dataclasses.dataclass
class Config(experiments.RecipeConfig):
    seeds: tuple = option((0, 1, 2, 3, 4), "seeds (mean ± sd over them)")
    image_size: int = option(8, "images are resized to this side, then flattened")
    train_per_class: int = option(10, "training images per class (little data: overfitting)")
    hidden: tuple = option((512, 512), "units of the hidden layers (over-capacity)")
    rules: tuple = option(RULES, "stopping rules to compare")
    max_epochs: int = option(150, "epoch budget")
    patience: int = option(10, "patience of the patience rules")
    overfit_patience: int = option(3, "consecutive val-up/train-down epochs of the overfit rule")
    batch_size: int = option(32, "batch size")
    learning_rate: float = option(1e-3, "Adam learning rate")


SMOKE = {"train_per_class": 3, "hidden": (256,), "max_epochs": 30, "patience": 2,
         "overfit_patience": 1, "learning_rate": 1e-2, "seeds": (0,)}


def load_data(config: Config):
    """Flattened, standardized images; few training images per class, full val/test sets."""
    if config.data == "digits":
        splits = load_digits(image_size=config.image_size, channels=1, format="numpy", seed=0,
                             train_per_class=config.train_per_class)
    else:
        splits = image_folder(
            config.data, image_size=config.image_size, validation_split=0.2, test_split=0.2,
            format="numpy", seed=0,
        )
    parts = [(x.reshape(len(x), -1).astype("float32"), y.astype("int32"))
             for x, y in (splits.train, splits.validation, splits.test)]
    if config.data != "digits":  # keep `train_per_class` images of each class
        x, y = parts[0]
        keep = np.concatenate([np.flatnonzero(y == k)[: config.train_per_class]
                               for k in range(splits.num_classes)])
        parts[0] = (x[keep], y[keep])
    mean, std = parts[0][0].mean(0), parts[0][0].std(0) + 1.0
    return [((x - mean) / std, y) for x, y in parts], splits.num_classes


def build_model(seed: int, n_in: int, n_out: int, config: Config):
    inputs = keras.Input((n_in,), name="pixels")
    h = inputs
    for i, units in enumerate(config.hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i + 1}",
                               kernel_initializer=keras.initializers.HeNormal(seed + i))(h)
    outputs = keras.layers.Dense(n_out, name="logits",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed + 99))(h)
    return keras.Model(inputs, outputs, name="over_capacity_mlp")


def stopper(rule: str, config: Config):
    """The EarlyStopping callback of a rule (None for the full budget)."""
    if rule == "full":
        return None
    restore = not rule.endswith("_last")
    if rule.startswith("patience"):
        return EarlyStopping(monitor="val_loss", patience=config.patience, mode="min",
                             restore_best_weights=restore)
    # The overfit rule alone: the patience rule is pushed beyond the budget.
    return EarlyStopping(monitor="val_loss", patience=config.max_epochs, mode="min",
                         restore_best_weights=restore, overfit_patience=config.overfit_patience)


def run_rule(model, rule, seed, initial, data, config, run_dir):
    """Trains `model` (restarted from `initial` weights by ``CompiledModels``) under one rule."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    callback = stopper(rule, config)
    log_dir = os.path.join(run_dir, "tensorboard", rule, f"seed{seed}")
    history = model.fit(  # every rule of a seed sees the same batches, epoch e in order [seed, e]
        epoch_batches(x_train, y_train, config.batch_size, seed=seed, epochs=config.max_epochs),
        steps_per_epoch=math.ceil(len(x_train) / config.batch_size),
        shuffle=False,  # the order is epoch_batches' own
        epochs=config.max_epochs,
        validation_data=(x_val, y_val),
        validation_batch_size=512,  # one batch: less per-epoch overhead
        callbacks=[c for c in (callback, EpochScalars(log_dir)) if c is not None],
        verbose=0,
    )
    val_kept = model.evaluate(x_val, y_val, verbose=0, batch_size=512)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0, batch_size=512)
    val_losses = [float(v) for v in history.history["val_loss"]]
    epochs_run = len(val_losses)
    return {
        "epochs_run": epochs_run,
        "stop_reason": getattr(callback, "stop_reason", None) or "budget",
        "stopped_epoch": epochs_run,  # 1-based: the last epoch that ran
        "best_epoch": int(np.argmin(val_losses)) + 1,
        "restored_best": bool(callback is not None and callback.restore_best_weights),
        "val_loss_kept": float(val_kept[0]),
        "val_loss_best": min(val_losses),
        "val_loss_last": val_losses[-1],
        "test_loss": float(test_loss),
        "test_accuracy": float(test_acc),
        "loss": [float(v) for v in history.history["loss"]],
        "val_loss": val_losses,
        "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "initial_weights": experiments.fingerprint(initial),
    }


def plot_curves(results, config, path):
    plt = experiments.pyplot()

    reference = "full" if "full" in results else next(iter(results))
    ref = results[reference]["runs"][0]
    epochs = np.arange(1, len(ref["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_loss.plot(epochs, ref["loss"], label="training loss")
    ax_loss.plot(epochs, ref["val_loss"], label="validation loss")
    ax_acc.plot(epochs, ref["val_accuracy"], color="tab:orange", label="validation accuracy")
    best = ref["best_epoch"]
    for ax in (ax_loss, ax_acc):
        ax.axvline(best, color="k", ls="--", lw=1, label=f"best epoch ({best})")
    colors = {"patience": "tab:green", "overfit": "tab:red"}
    for rule in results:
        if rule.endswith("_last") or rule == "full":
            continue
        stop = results[rule]["runs"][0]["stopped_epoch"]
        for ax in (ax_loss, ax_acc):
            ax.axvline(stop, color=colors.get(rule, "tab:gray"), ls=":", lw=1.5,
                       label=f"{rule} rule stops ({stop})")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title(f"training vs validation loss (seed {config.seeds[0]}, no stopping)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    config, (data, n_classes), run_dir = experiments.start_run(
        Config, load_data, argv, name="early_stopping", description=__doc__, smoke=SMOKE
    )
    n_in = data[0][0].shape[1]
    start, cpu_start = time.time(), time.process_time()

    def compiled(_):
        model = build_model(config.seeds[0], n_in, n_classes, config)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    # One compiled model serves every run (the training step is traced or compiled once),
    # restarted as a fresh model: the initial weights, a new optimizer state.
    models = experiments.CompiledModels(compiled)
    by_rule: dict[str, list[dict]] = {rule: [] for rule in config.rules}
    for seed in config.seeds:
        initial = build_model(seed, n_in, n_classes, config).get_weights()
        for rule in config.rules:
            model = models.get("mlp", initial)
            by_rule[rule].append(run_rule(model, rule, seed, initial, data, config, run_dir))
            if rule == "patience" and seed == config.seeds[0]:
                model.save(os.path.join(run_dir, "best.keras"))
    wall, cpu = time.time() - start, time.process_time() - cpu_start
    results, rows = {}, []
    for rule, rruns in by_rule.items():
        results[rule] = {"runs": rruns}
        for key in ("epochs_run", "best_epoch", "test_accuracy", "test_loss", "val_loss_kept"):
            results[rule][key] = experiments.summarize(r[key] for r in rruns)
        reasons = sorted({r["stop_reason"] for r in rruns})
        rows.append([
            rule,
            "best" if rruns[0]["restored_best"] else "last",
            experiments.format_mean_sd(results[rule]["epochs_run"], digits=1),
            experiments.format_mean_sd(results[rule]["best_epoch"], digits=1),
            ", ".join(reasons),
            experiments.format_mean_sd(results[rule]["val_loss_kept"], digits=3),
            experiments.format_mean_sd(results[rule]["test_loss"], digits=3),
            experiments.format_mean_sd(results[rule]["test_accuracy"], digits=1, scale=100),
        ])
        print(f"{rule:14s} epochs {rows[-1][2]}, test accuracy {rows[-1][7]}", flush=True)
    plot_curves(results, config, os.path.join(run_dir, "curves.png"))
    table = experiments.markdown_table(
        ["rule", "weights kept", "epochs run", "best epoch (val loss)", "stop reason",
         "val loss of kept weights", "test loss", "test accuracy %"],
        rows,
    )
    device = device_description()
    summary = (
        f"backend {config.backend}, {device}; MLP {list(config.hidden)} on "
        f"{len(data[0][1])} training images, at most {config.max_epochs} epochs, Adam lr "
        f"{config.learning_rate}, patience {config.patience}, overfit patience "
        f"{config.overfit_patience}, seeds {list(config.seeds)} (mean ± sd); wall time "
        f"{wall:.0f} s (CPU time {cpu:.0f} s)."
    )
    metrics = {
        "recipe": "early_stopping",
        "backend": config.backend,
        "device": device,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "train_size": len(data[0][1]),
        "rules": results,
    }
    experiments.finish_run(run_dir, title="Early stopping", summary=summary, table=table,
                    metrics=metrics, outputs=["curves.png", "best.keras", "tensorboard/"])
    return metrics


if __name__ == "__main__":
    main()
