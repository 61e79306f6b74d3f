"""Vanishing gradients: a 20-layer MLP for each activation × initialization.

What it shows (`docs/techniques.md` §2-3): in a deep stack of saturating units the gradient
reaching the first layers is a product of many factors below 1 (``σ'(z) ≤ 1/4`` for the
sigmoid), so the lower layers barely learn. For each activation (sigmoid, tanh, relu) and
initialization (too small ``N(0, 0.01²)``; Glorot with the activation's gain,
``keras_recipes.initializers.Xavier``; He ``√(2/n_in)``, ``He``; LSUV, ``lsuv``, Mishkin &
Matas 2016) it trains the same MLP with SGD + momentum on the same batches, logs per-layer
gradient norms on a fixed probe of 100 held-out samples with
``keras_recipes.callbacks.GradientHistogram``, draws gradient norm against depth at
initialization and after training, and tabulates test accuracy (mean ± sd over seeds). Layer
``i`` draws its weights with seed ``1000·seed + i`` in every variant.

Commands:

    python recipes/vanishing_gradients.py                      # CPU, defaults
    python recipes/vanishing_gradients.py --backend jax        # any of torch|tensorflow|jax
    python recipes/vanishing_gradients.py --depth 50 --seeds 0,1,2,3,4   # GPU: same command
    python recipes/vanishing_gradients.py --data path/to/folder --image-size 8
    python recipes/vanishing_gradients.py --smoke              # tiny run (tests)

Outputs (one run folder, printed at the end): ``config.json``, ``metrics.json``,
``results.md``, ``gradient_norm_by_depth.png`` (the picture), ``loss_curves.png``,
``gradient_norms/<variant>.png`` (per-layer norm by epoch), ``tensorboard/<variant>/seed<k>/``
(gradient histograms and norms, epoch loss/accuracy), ``lsuv.json``.

Results of the default command (depth 20, width 64, 20 epochs × 10 steps = 200 SGD steps,
seeds 0, 1, 2; test accuracy on 270 held-out digits), ``python recipes/vanishing_gradients.py
--backend torch``: backend torch, 2-core AMD EPYC CPU, no GPU, 2026-12-07, 653 s wall (the
CPU shared with other jobs, load average 3-4.5; other backends and earlier figures:
``benchmarks/results/vanishing_gradients.md``):

    | activation | init | test acc. % | grad. norm first/last, init | trained | alerts |
    |---|---|---|---|---|---|
    | sigmoid | small | 10.0 ± 0.0 | 0.0e+00 | 0.0e+00 | 3/3 |
    | sigmoid | glorot | 10.0 ± 0.0 | 2.0e-05 | 5.4e-05 | 3/3 |
    | sigmoid | he | 10.0 ± 0.0 | 1.6e-10 | 3.8e-10 | 3/3 |
    | sigmoid | lsuv | 10.0 ± 0.0 | 9.4e-09 | 4.0e-08 | 3/3 |
    | tanh | small | 10.0 ± 0.0 | 0.0e+00 | 0.0e+00 | 3/3 |
    | tanh | glorot | 94.0 ± 0.9 | 1.4e+00 | 6.8e+00 | 0/3 |
    | tanh | he | 89.8 ± 1.2 | 2.1e+00 | 9.0e+00 | 0/3 |
    | tanh | lsuv | 91.7 ± 0.9 | 5.1e+00 | 1.1e+01 | 0/3 |
    | relu | small | 10.0 ± 0.0 | 0.0e+00 | 0.0e+00 | 3/3 |
    | relu | glorot | 76.4 ± 12.4 | 9.2e-01 | 2.8e+00 | 0/3 |
    | relu | he | 76.2 ± 26.2 | 9.4e-01 | 1.7e+00 | 0/3 |
    | relu | lsuv | 93.0 ± 0.4 | 6.8e-01 | 3.7e+00 | 0/3 |

With N(0, 0.01²) weights the first layer's gradient underflows to exactly 0 in float32 for
every activation and nothing learns. The sigmoid stays vanishing with every initialization
(first/last ratio 1.6e-10 to 2.0e-5, chance accuracy after 200 steps), even with Glorot's
gain 4; tanh and relu with Glorot, He or LSUV keep the ratio near 1 and learn (LSUV 91.7% and
93.0%; relu with Glorot or He varies widely across seeds).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the backend is chosen before Keras is imported
    from _bootstrap import choose_backend

    choose_backend(sys.argv[1:])

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import experiments  # noqa: E402
from keras_recipes.backend import (  # noqa: E402
    device_description,
    loss_and_gradients,
)
from keras_recipes.callbacks import (  # noqa: E402
    EpochScalars,
    GradientHistogram,
    plot_gradient_norms,
)
from keras_recipes.callbacks.plot_gradient_norms import layer_gradient_norms  # noqa: E402
from keras_recipes.data import epoch_batches, image_folder, load_digits  # noqa: E402
from keras_recipes.experiments import option  # noqa: E402
from keras_recipes.initializers import He, Xavier, lsuv  # noqa: E402

INITS = ("small", "glorot", "he", "lsuv")
ACTIVATIONS = ("sigmoid", "tanh", "relu")


@dataclasses.dataclass
class Config(experiments.RecipeConfig):
    image_size: int = option(8, "images are resized to this side, then flattened")
    depth: int = option(20, "hidden Dense layers")
    width: int = option(64, "units per hidden layer")
    activations: tuple = option(ACTIVATIONS, "activations to compare")
    inits: tuple = option(INITS, "initializations to compare (small, glorot, he, lsuv)")
    small_std: float = option(0.01, "standard deviation of the 'small' initialization")
    epochs: int = option(20, "training epochs per variant")
    batch_size: int = option(128, "batch size")
    steps_per_epoch: int = option(0, "steps per epoch (0: the whole training set)")
    learning_rate: float = option(0.01, "SGD learning rate")
    momentum: float = option(0.9, "SGD momentum")
    probe_size: int = option(100, "held-out samples on which gradients are measured")
    vanishing_ratio: float = option(1e-4, "GradientHistogram's vanishing alert threshold")
    gradient_plots: int = option(12, "per-variant plot_gradient_norms PNGs (first seed)")


SMOKE = {"activations": ("relu",), "width": 16, "epochs": 2, "steps_per_epoch": 3,
         "batch_size": 32, "seeds": (0,), "gradient_plots": 1}


def load_data(config: Config):
    """Flattened, standardized images: (x_train, y_train), (x_val, y_val), (x_test, y_test)."""
    if config.data == "digits":
        splits = load_digits(image_size=config.image_size, channels=1, format="numpy", seed=0)
    else:
        splits = image_folder(
            config.data, image_size=config.image_size, validation_split=0.15, test_split=0.15,
            format="numpy", seed=0,
        )
    parts = [splits.train, splits.validation, splits.test]
    flat = [(x.reshape(len(x), -1).astype("float32"), y.astype("int32")) for x, y in parts]
    mean, std = flat[0][0].mean(0), flat[0][0].std(0) + 1.0
    return [((x - mean) / std, y) for x, y in flat], splits.num_classes


def initializer(init: str, activation: str, seed: int, config: Config):
    """The kernel initializer of one layer for a variant."""
    if init == "small":
        return keras.initializers.RandomNormal(0.0, config.small_std, seed=seed)
    if init == "glorot":
        return Xavier(activation=activation, seed=seed)
    # "he", and the starting point of "lsuv" (which re-initializes orthonormally).
    return He(activation="relu", seed=seed)


def build_model(activation: str, init: str, seed: int, n_in: int, n_out: int, config: Config):
    inputs = keras.Input((n_in,), name="pixels")
    h = inputs
    for i in range(config.depth):
        h = keras.layers.Dense(
            config.width,
            activation=activation,
            kernel_initializer=initializer(init, activation, 1000 * seed + i, config),
            name=f"hidden_{i + 1:02d}",
        )(h)
    out_init = "linear" if init == "glorot" else activation
    outputs = keras.layers.Dense(
        n_out,
        kernel_initializer=initializer(init, out_init, 1000 * seed + 999, config),
        name="logits",
    )(h)
    return keras.Model(inputs, outputs, name="mlp")


def layer_norms(model, x, y) -> np.ndarray:
    """Per-layer gradient L2 norms (kernel and bias together), input layer first."""
    _, grads = loss_and_gradients(model, x, y)
    squares: dict[str, float] = {}
    for var, grad in zip(model.trainable_variables, grads, strict=True):
        layer = var.path.split("/")[-2]
        squares[layer] = squares.get(layer, 0.0) + float(np.sum(np.square(grad, dtype="float64")))
    return np.sqrt(np.array(list(squares.values())))


def logged_final_norms(log_dir: str, model) -> np.ndarray:
    """Per-layer norms at the last epoch, read back from GradientHistogram's events."""
    steps, norms = layer_gradient_norms(log_dir)
    by_layer = {name.split("/")[-1]: values[-1] for name, values in norms.items()}
    names = [layer.name for layer in model.layers if layer.trainable_weights]
    return np.array([by_layer[name] for name in names])


def ratio(norms: np.ndarray) -> float:
    """First layer's gradient norm over the output layer's (GradientHistogram's alert ratio)."""
    return float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan")


def compiled_models(n_in: int, n_out: int, config: Config) -> experiments.CompiledModels:
    """One compiled model per activation (the architecture depends on it alone), restarted
    for every init and seed: the training step is traced or compiled once per activation."""

    def build(activation: str) -> keras.Model:
        model = build_model(activation, "he", 0, n_in, n_out, config)
        model.compile(
            optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    return experiments.CompiledModels(build)


def run_variant(activation, init, seed, data, n_classes, config, run_dir, keep_plots, models):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    probe = (x_val[: config.probe_size], y_val[: config.probe_size])
    name = f"{activation}-{init}"
    fresh = build_model(activation, init, seed, x_train.shape[1], n_classes, config)
    lsuv_report = None
    if init == "lsuv":
        lsuv_report = lsuv(fresh, x_train[: config.batch_size * 4], seed=seed)
    weights = fresh.get_weights()
    initial = experiments.fingerprint(weights)
    model = models.get(activation, weights)  # as a fresh model: weights, optimizer, seeds
    norms_init = layer_norms(model, *probe)
    log_dir = os.path.join(run_dir, "tensorboard", name, f"seed{seed}")
    histogram = GradientHistogram(log_dir, data=probe, histograms=keep_plots,
                                  vanishing_ratio=config.vanishing_ratio, verbose=0)
    history = model.fit(  # every variant of a seed sees the same batches, in the feed's order
        epoch_batches(x_train, y_train, config.batch_size, seed=seed, epochs=config.epochs),
        shuffle=False,  # the order is epoch_batches' own
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch or math.ceil(len(x_train) / config.batch_size),
        callbacks=[histogram, EpochScalars(log_dir)],
        verbose=0,
    )
    norms_final = logged_final_norms(log_dir, model)
    if keep_plots:
        os.makedirs(os.path.join(run_dir, "gradient_norms"), exist_ok=True)
        plot_gradient_norms(
            log_dir, os.path.join(run_dir, "gradient_norms", f"{name}.png"), title=name
        )
    # Direct calls, not `evaluate`: no test function compiled per model (see predict_logits).
    logits = experiments.predict_logits(model, x_test)
    test_loss, test_acc = experiments.sparse_scores(logits, y_test)
    return {
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "train_loss": [float(v) for v in history.history["loss"]],
        "norms_init": norms_init.tolist(),
        "norms_final": norms_final.tolist(),
        "ratio_init": ratio(norms_init),
        "ratio_final": ratio(norms_final),
        "vanishing_alert": any(a["kind"] == "vanishing" for a in histogram.alerts),
        "initial_weights": initial,
        "lsuv": lsuv_report,
    }


def plot_by_depth(results, config, path):
    plt = experiments.pyplot()

    fig, axes = plt.subplots(
        1, len(config.activations), figsize=(5 * len(config.activations), 4.2), squeeze=False
    )
    colors = dict(zip(INITS, ("tab:red", "tab:blue", "tab:green", "tab:purple"), strict=True))
    floor = 1e-30
    for ax, activation in zip(axes[0], config.activations, strict=True):
        for init in config.inits:
            seed_runs = results[f"{activation}-{init}"]["runs"]
            depth = np.arange(1, len(seed_runs[0]["norms_init"]) + 1)
            for key, style in (("norms_init", "--"), ("norms_final", "-")):
                # Geometric mean over seeds; exact zeros (float32 underflow) drawn at the floor.
                values = np.array([r[key] for r in seed_runs], dtype="float64")
                values = np.exp(np.mean(np.log(np.maximum(values, floor)), axis=0))
                label = f"{init} ({'init' if key == 'norms_init' else 'trained'})"
                ax.plot(depth, values, style, color=colors.get(init), marker=".", label=label)
        ax.set_yscale("log")
        ax.set_title(f"{activation}: gradient norm by layer")
        ax.set_xlabel("layer (1 = input side, last = logits)")
        ax.set_ylabel("‖∂L/∂W‖ on the probe")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{config.depth}-layer MLP: dashed = at initialization, solid = after "
        f"{config.epochs} epochs (floor {floor:g} = exactly 0)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_losses(results, config, path):
    plt = experiments.pyplot()

    fig, axes = plt.subplots(
        1, len(config.activations), figsize=(5 * len(config.activations), 3.6), squeeze=False
    )
    for ax, activation in zip(axes[0], config.activations, strict=True):
        for init in config.inits:
            losses = np.array([r["train_loss"] for r in results[f"{activation}-{init}"]["runs"]])
            epochs = np.arange(1, losses.shape[1] + 1)
            ax.plot(epochs, losses.mean(0), marker=".", label=init)
        ax.set_title(activation)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (mean over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plain(obj):
    """LSUV reports as JSON-friendly values (whatever container types they use)."""
    return json.loads(json.dumps(obj, default=lambda o: getattr(o, "__dict__", str(o))))


def main(argv=None) -> dict:
    config, (data, n_classes), run_dir = experiments.start_run(
        Config, load_data, argv, name="vanishing_gradients", description=__doc__, smoke=SMOKE
    )
    # GradientHistogram's vanishing alerts are expected here; they are counted in the table.
    warnings.filterwarnings("ignore", "GradientHistogram: vanishing", RuntimeWarning)
    start, cpu_start = time.time(), time.process_time()
    results: dict[str, dict] = {}
    models = compiled_models(data[0][0].shape[1], n_classes, config)
    for activation in config.activations:
        for init in config.inits:
            name = f"{activation}-{init}"
            seed_runs = []
            plots = len(results) < config.gradient_plots
            for k, seed in enumerate(config.seeds):
                seed_runs.append(run_variant(activation, init, seed, data, n_classes, config,
                                             run_dir, plots and k == 0, models))
            results[name] = {"activation": activation, "init": init, "runs": seed_runs}
            for key in ("test_accuracy", "ratio_init", "ratio_final"):
                results[name][key] = experiments.summarize(r[key] for r in seed_runs)
            results[name]["vanishing_alerts"] = sum(r["vanishing_alert"] for r in seed_runs)
            print(
                f"{name:14s} test accuracy "
                f"{experiments.format_mean_sd(results[name]['test_accuracy'])}"
                f"  first/last gradient norm: init {results[name]['ratio_init']['mean']:.1e}"
                f", trained {results[name]['ratio_final']['mean']:.1e}",
                flush=True,
            )
    wall, cpu = time.time() - start, time.process_time() - cpu_start
    plot_by_depth(results, config, os.path.join(run_dir, "gradient_norm_by_depth.png"))
    plot_losses(results, config, os.path.join(run_dir, "loss_curves.png"))
    lsuv_reports = {
        name: [r.pop("lsuv") for r in v["runs"]] for name, v in results.items()
    }
    if any(any(x is not None for x in reports) for reports in lsuv_reports.values()):
        experiments.save_json(os.path.join(run_dir, "lsuv.json"), _plain(lsuv_reports))
    rows = []
    for v in results.values():
        rows.append([
            v["activation"],
            v["init"],
            experiments.format_mean_sd(v["test_accuracy"], digits=1, scale=100),
            f"{v['ratio_init']['mean']:.1e}",
            f"{v['ratio_final']['mean']:.1e}",
            f"{v['vanishing_alerts']}/{len(config.seeds)}",
        ])
    table = experiments.markdown_table(
        ["activation", "init", "test accuracy % (mean ± sd)",
         "first/last layer gradient norm at init", "after training", "vanishing alerts (seeds)"],
        rows,
    )
    device = device_description()
    summary = (
        f"backend {config.backend}, {device}; depth {config.depth}, "
        f"width {config.width}, {config.epochs} epochs, seeds {list(config.seeds)}; "
        f"wall time {wall:.0f} s (CPU time {cpu:.0f} s).\n\nGradient norms are measured on "
        f"{config.probe_size} held-out samples; ratios are means over seeds (0 = the first "
        "layer's gradient underflowed to exactly 0 in float32)."
    )
    metrics = {
        "recipe": "vanishing_gradients",
        "backend": config.backend,
        "device": device,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "variants": results,
    }
    experiments.finish_run(
        run_dir, title="Vanishing gradients", summary=summary, table=table, metrics=metrics,
        outputs=["gradient_norm_by_depth.png", "loss_curves.png", "gradient_norms/",
                 "tensorboard/"],
    )
    return metrics


if __name__ == "__main__":
    main()
