"""Gradient clipping: a recurrent net whose gradients explode, trained with and without clipping.

What it shows (`docs/techniques.md` §2): in a recurrent network the same weights multiply the
state at every time step, so the gradient through ``T`` steps scales like ``‖W‖^T``. The
bundled digits are read pixel by pixel (``T = 64``, the 8×8 sequential-MNIST task) by a linear
``SimpleRNN`` whose recurrent matrix starts as ``1.05 ×`` an orthogonal one (``1.05^64 ≈
23``). From the same initial weights, on the same batches, SGD + momentum runs with no
clipping (``none``), ``global_clipnorm=2.0`` (the norm of all gradients together, PyTorch's
``clip_grad_norm_(params, max_norm=2.0)``), ``clipnorm=2.0`` (each tensor's norm separately)
and ``clipvalue=0.5`` (each entry). ``keras_recipes.callbacks.GradientHistogram`` logs the
global norm of the gradients the optimizer receives (before clipping) at every step; the
recipe plots it with the per-step loss and tabulates test accuracy (mean ± sd over seeds),
the seeds that diverged and how often the threshold was exceeded.

Commands:

    python recipes/gradient_clipping.py                        # CPU, defaults
    python recipes/gradient_clipping.py --backend jax          # torch|tensorflow|jax
    python recipes/gradient_clipping.py --image-size 16        # GPU: T = 256, same command
    python recipes/gradient_clipping.py --data path/to/folder  # images read pixel by pixel
    python recipes/gradient_clipping.py --smoke                # tiny run (tests)

Outputs (one run folder, printed at the end): ``config.json``, ``metrics.json``,
``results.md``, ``gradient_norm.png`` (global gradient norm per step, log scale, with the
threshold), ``loss.png`` (training loss per step), ``tensorboard/<variant>/seed<k>/``.

Results of the default command (64 units, 5 epochs of 39 steps, seeds 0, 1, 2; test accuracy
on 270 held-out digits), ``python recipes/gradient_clipping.py --backend torch``: backend
torch, 2-core AMD EPYC CPU, no GPU, 2026-12-07, 488 s wall (the CPU shared with other jobs,
load average 4-5; other backends and earlier figures:
``benchmarks/results/gradient_clipping.md``):

    | variant | setting | test acc. % | diverged (seeds) | max grad. norm (median) | norm > 2 |
    |---|---|---|---|---|---|
    | none | - | - | 3/3 (NaN at step 3, 3, 3) | 1.1e+13 | 67% |
    | global_clipnorm | global_clipnorm=2 | 80.5 ± 4.1 | 0/3 | 337 | 100% |
    | clipnorm | clipnorm=2 | 85.3 ± 2.9 | 0/3 | 337 | 100% |
    | clipvalue | clipvalue=0.5 | 10.0 ± 0.0 | 0/3 | 1.09e+28 | 99% |

Without clipping the loss is NaN at the third step for every seed. Clipping the global norm
(the course's ``max_norm=2.0``) or each tensor's norm to 2.0 trains (80.5% and 85.3%);
``clipvalue=0.5`` keeps the loss finite, but the gradient norm still grows to ~1e28 and the
model stays at chance.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # the backend is chosen before Keras is imported
    from _bootstrap import choose_backend

    choose_backend(sys.argv[1:])

import dataclasses  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import experiments  # noqa: E402
from keras_recipes.backend import device_description  # noqa: E402
from keras_recipes.callbacks import EpochScalars, GradientHistogram  # noqa: E402
from keras_recipes.callbacks.event_writer import read_scalars  # noqa: E402
from keras_recipes.data import epoch_batches, image_folder, load_digits  # noqa: E402
from keras_recipes.experiments import option  # noqa: E402

VARIANTS = ("none", "global_clipnorm", "clipnorm", "clipvalue")


@dataclasses.dataclass
class Config(experiments.RecipeConfig):
    image_size: int = option(8, "images are resized to this side and read pixel by pixel")
    units: int = option(64, "SimpleRNN units")
    activation: str = option("linear", "SimpleRNN activation (linear: pure products of W)")
    recurrent_gain: float = option(1.05, "recurrent matrix = gain × a random orthogonal matrix")
    variants: tuple = option(VARIANTS, "variants to compare")
    global_clipnorm: float = option(2.0, "threshold of global_clipnorm (the course's max_norm)")
    clipnorm: float = option(2.0, "threshold of clipnorm (per tensor)")
    clipvalue: float = option(0.5, "threshold of clipvalue (per entry)")
    epochs: int = option(5, "training epochs")
    batch_size: int = option(32, "batch size")
    steps_per_epoch: int = option(0, "steps per epoch (0: the whole training set; fewer: the "
                                  "feed's first batches)")
    learning_rate: float = option(0.01, "SGD learning rate")
    momentum: float = option(0.9, "SGD momentum")


SMOKE = {"units": 16, "epochs": 1, "steps_per_epoch": 6, "seeds": (0,)}


def load_data(config: Config):
    """Images as pixel sequences (N, T, 1) in [0, 1]; the training set cut to whole batches."""
    if config.data == "digits":
        splits = load_digits(image_size=config.image_size, channels=1, format="numpy", seed=0)
    else:
        splits = image_folder(
            config.data, image_size=config.image_size, validation_split=0.15, test_split=0.15,
            format="numpy", seed=0,
        )
    out = []
    for x, y in (splits.train, splits.validation, splits.test):
        x = x.mean(axis=-1) if x.ndim == 4 else x  # gray
        out.append(((x.reshape(len(x), -1, 1) / 255.0).astype("float32"), y.astype("int32")))
    (x_train, y_train) = out[0]
    n = len(x_train) // config.batch_size * config.batch_size  # equal batches: exact step losses
    out[0] = (x_train[:n], y_train[:n])
    return out, splits.num_classes


def build_model(seed: int, steps: int, n_classes: int, config: Config):
    inputs = keras.Input((steps, 1), name="pixels")
    h = keras.layers.SimpleRNN(
        config.units,
        activation=config.activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(gain=config.recurrent_gain, seed=seed),
        name="rnn",
    )(inputs)
    outputs = keras.layers.Dense(
        n_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1), name="logits"
    )(h)
    return keras.Model(inputs, outputs, name="sequential_digits")


def optimizer(variant: str, config: Config):
    clip = {
        "none": {},
        "global_clipnorm": {"global_clipnorm": config.global_clipnorm},
        "clipnorm": {"clipnorm": config.clipnorm},
        "clipvalue": {"clipvalue": config.clipvalue},
    }[variant]
    return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum, **clip)


class StepLosses(keras.callbacks.Callback):
    """The loss of each training step, recovered from Keras's running epoch mean.

    Keras reports the mean loss since the start of the epoch; with equal batch
    sizes the k-th batch's own loss is ``k·m_k − (k−1)·m_(k−1)``.
    """

    def __init__(self):
        super().__init__()
        self.losses: list[float] = []
        self._previous = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._previous = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append((batch + 1) * mean - batch * self._previous)
        self._previous = mean


def run_variant(variant, seed, initial_weights, data, n_classes, config, run_dir):
    (x_train, y_train), _, (x_test, y_test) = data
    model = build_model(seed, x_train.shape[1], n_classes, config)
    model.set_weights(initial_weights)
    model.compile(
        optimizer=optimizer(variant, config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log_dir = os.path.join(run_dir, "tensorboard", variant, f"seed{seed}")
    histogram = GradientHistogram(log_dir, every=1, histograms=False, vanishing_ratio=None,
                                  verbose=0)
    steps = StepLosses()
    history = model.fit(  # every variant of a seed sees the same batches, in the feed's order
        epoch_batches(x_train, y_train, config.batch_size, seed=seed, epochs=config.epochs),
        shuffle=False,  # the order is epoch_batches' own
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch or len(x_train) // config.batch_size,
        callbacks=[
            histogram,
            steps,
            EpochScalars(log_dir),
            keras.callbacks.TerminateOnNaN(),
        ],
        verbose=0,
    )
    scalars = read_scalars(os.path.join(log_dir, "train"))
    norms = [value for _, value in sorted(scalars.get("gradient_norm/global", []))]
    losses = steps.losses
    diverged = not all(math.isfinite(v) for v in losses)
    if diverged:
        test_loss, test_acc = float("nan"), float("nan")
    else:
        logits = experiments.predict_logits(model, x_test)
        test_loss, test_acc = experiments.sparse_scores(logits, y_test)
    threshold = config.global_clipnorm  # the course's max_norm, the reference for all
    finite = [v for v in norms if math.isfinite(v)]
    return {
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "diverged": diverged,
        "steps_run": len(losses),
        "first_nonfinite_step": next(
            (i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None
        ),
        "step_loss": losses,
        "global_gradient_norm": norms,
        "max_gradient_norm": max(finite) if finite else float("nan"),
        "fraction_above_threshold": (
            float(np.mean([v > threshold for v in norms])) if norms else float("nan")
        ),
        "epoch_accuracy": [float(v) for v in history.history.get("accuracy", [])],
        "initial_weights": experiments.fingerprint(initial_weights),
    }


def plot(results, config, run_dir):
    plt = experiments.pyplot()

    for key, filename, ylabel in (
        ("global_gradient_norm", "gradient_norm.png", "global gradient norm (before clipping)"),
        ("step_loss", "loss.png", "training loss of the step"),
    ):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for variant, v in results.items():
            values = np.array(v["runs"][0][key], dtype="float64")
            steps = np.arange(1, len(values) + 1)
            ok = np.isfinite(values)
            (line,) = ax.plot(steps[ok], values[ok], label=variant, lw=1.2)
            bad = np.flatnonzero(~ok)
            if len(bad):
                ax.axvline(steps[bad[0]], color=line.get_color(), ls=":", lw=1)
                ax.annotate(f"{variant}: NaN", (steps[bad[0]], ax.get_ylim()[1]), fontsize=8,
                            color=line.get_color(), va="top")
        if key == "global_gradient_norm":
            ax.axhline(config.global_clipnorm, color="k", ls="--", lw=0.8,
                       label=f"global_clipnorm = {config.global_clipnorm:g}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"SimpleRNN on sequences of T = {config.image_size**2} (seed "
                     f"{config.seeds[0]})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(run_dir, filename), dpi=100)
        plt.close(fig)


def main(argv=None) -> dict:
    config, (data, n_classes), run_dir = experiments.start_run(
        Config, load_data, argv, name="gradient_clipping", description=__doc__, smoke=SMOKE
    )
    # Divergence without clipping is the expected outcome: it is counted in the table, so
    # GradientHistogram's non-finite alert and NumPy's overflow notice are not repeated.
    warnings.filterwarnings("ignore", "GradientHistogram: .*non-finite", RuntimeWarning)
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    start, cpu_start = time.time(), time.process_time()
    by_variant: dict[str, list[dict]] = {v: [] for v in config.variants}
    for seed in config.seeds:
        initial = build_model(seed, data[0][0].shape[1], n_classes, config).get_weights()
        for variant in config.variants:
            by_variant[variant].append(
                run_variant(variant, seed, initial, data, n_classes, config, run_dir)
            )
    wall, cpu = time.time() - start, time.process_time() - cpu_start
    results = {}
    rows = []
    settings = {
        "none": "-",
        "global_clipnorm": f"global_clipnorm={config.global_clipnorm:g}",
        "clipnorm": f"clipnorm={config.clipnorm:g}",
        "clipvalue": f"clipvalue={config.clipvalue:g}",
    }
    for variant, vruns in by_variant.items():
        ok = [r for r in vruns if not r["diverged"]]
        results[variant] = {
            "setting": settings[variant],
            "runs": vruns,
            "test_accuracy": experiments.summarize(r["test_accuracy"] for r in ok),
            "diverged_seeds": sum(r["diverged"] for r in vruns),
            "max_gradient_norm": experiments.summarize(r["max_gradient_norm"] for r in vruns),
        }
        first_nan = [r["first_nonfinite_step"] for r in vruns if r["diverged"]]
        rows.append([
            variant,
            settings[variant],
            experiments.format_mean_sd(results[variant]["test_accuracy"], digits=1, scale=100)
            if ok else "-",
            f"{results[variant]['diverged_seeds']}/{len(vruns)}"
            + (f" (NaN at step {', '.join(map(str, first_nan))})" if first_nan else ""),
            f"{np.nanmedian([r['max_gradient_norm'] for r in vruns]):.3g}",
            f"{100 * np.nanmean([r['fraction_above_threshold'] for r in vruns]):.0f}%",
        ])
        print(f"{variant:16s} test accuracy {rows[-1][2]}, diverged {rows[-1][3]}", flush=True)
    plot(results, config, run_dir)
    table = experiments.markdown_table(
        [
            "variant",
            "setting",
            "test accuracy % (mean ± sd, finite runs)",
            "diverged (seeds)",
            "max global gradient norm (median)",
            f"steps with norm > {config.global_clipnorm:g}",
        ],
        rows,
    )
    device = device_description()
    summary = (
        f"backend {config.backend}, {device}; SimpleRNN({config.units}, "
        f"{config.activation}), recurrent gain {config.recurrent_gain}, T = "
        f"{data[0][0].shape[1]}, SGD lr {config.learning_rate} momentum {config.momentum}, "
        f"{config.epochs} epochs, seeds {list(config.seeds)}; wall time {wall:.0f} s "
        f"(CPU time {cpu:.0f} s).\n\n"
        "Gradient norms are those the optimizer receives, before clipping."
    )
    metrics = {
        "recipe": "gradient_clipping",
        "backend": config.backend,
        "device": device,
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "sequence_length": int(data[0][0].shape[1]),
        "variants": results,
    }
    experiments.finish_run(run_dir, title="Gradient clipping", summary=summary, table=table,
                    metrics=metrics, outputs=["gradient_norm.png", "loss.png", "tensorboard/"])
    return metrics


if __name__ == "__main__":
    main()
