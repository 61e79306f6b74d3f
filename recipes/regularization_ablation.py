"""Regularization ablation: one small CNN, eleven ways to regularize it, on few images.

What it shows (`docs/techniques.md` §4): how much each regularizer closes the gap between
training and held-out accuracy when data is scarce. A small CNN (3×3 conv blocks of 16 and 32
filters, a 64-unit dense layer) is trained with Adam on ``train_per_class`` images per class,
every variant from the same initial weights (copied by layer name) on the same batches:
``none``; ``l2`` (``keras_recipes.regularizers.add_weight_penalty``, λ = 1e-3 on kernels);
``dropout`` (0.25 after each pooling, 0.5 before the classifier); ``batchnorm`` (momentum 0.9);
``augment`` (training-time Keras layers: rotation ±10°, shift up to 10%, colour jitter 0.2,
Gaussian noise σ = 0.03, ``RandomErasing``; horizontal flip off for digits);
``label_smoothing`` (ε = 0.1); ``mixup``, ``cutmix``, ``mixup_or_cutmix``
(``keras_recipes.layers.mixing_layer``, α = 0.2 and 1, applied on the device inside the
training step by ``keras_recipes.models.AugmentedModel``); ``vat`` (virtual adversarial
training, ``keras_recipes.models.VirtualAdversarialModel``: ε = 2 in the L2 norm of a [0, 1]
image, α = 1, one power iteration); ``all`` (every technique but VAT, with
MixUp-or-CutMix). It tabulates training (clean images), validation and test accuracy and the
gap train − test (mean ± sd over seeds) and plots validation accuracy and loss per epoch.

Data: the bundled digits (offline; 16×16 RGB), ``--data PATH`` (a folder of class
sub-folders) or ``--data cifar10`` (``keras.datasets.cifar10``, downloaded once).

Commands:

    python recipes/regularization_ablation.py                     # CPU, digits, defaults
    python recipes/regularization_ablation.py --backend jax       # torch|tensorflow|jax
    python recipes/regularization_ablation.py --data cifar10 --image-size 32 \\
        --train-per-class 500 --epochs 60                         # GPU: CIFAR-10 subset
    python recipes/regularization_ablation.py --data path/to/folder --image-size 32
    python recipes/regularization_ablation.py --smoke             # tiny run (tests)

Outputs (one run folder, printed at the end): ``config.json``, ``metrics.json``,
``results.md``, ``curves.png``, ``all.keras`` (the ``all`` variant's CNN, first seed),
``tensorboard/<variant>/seed<k>/``.

Results of the default command (digits 16×16, 30 training images per class, 15 epochs, seeds
0, 1, 2; 270 validation and 270 test images), ``python recipes/regularization_ablation.py
--backend torch``: backend torch, 2-core AMD EPYC CPU, no GPU, 2026-12-07, 899 s wall (the CPU
shared with other jobs, load average 3-5; other backends and earlier figures:
``benchmarks/results/regularization_ablation.md``):

    | variant | train acc. % | val. acc. % | test acc. % | gap (train − test), points |
    |---|---|---|---|---|
    | none | 98.0 ± 0.6 | 94.1 ± 0.7 | 92.2 ± 0.4 | 5.8 ± 0.9 |
    | l2 | 98.0 ± 0.9 | 93.6 ± 0.6 | 92.0 ± 0.2 | 6.0 ± 1.0 |
    | dropout | 91.2 ± 1.2 | 89.1 ± 1.5 | 87.7 ± 1.4 | 3.6 ± 2.5 |
    | batchnorm | 100.0 ± 0.0 | 96.3 ± 0.6 | 96.3 ± 1.0 | 3.7 ± 1.0 |
    | augment | 93.1 ± 1.0 | 90.7 ± 1.6 | 89.4 ± 0.8 | 3.7 ± 0.3 |
    | label_smoothing | 98.6 ± 0.2 | 95.4 ± 0.6 | 92.1 ± 0.6 | 6.5 ± 0.7 |
    | mixup | 96.1 ± 1.0 | 93.0 ± 0.4 | 90.1 ± 0.4 | 6.0 ± 0.6 |
    | cutmix | 94.6 ± 0.2 | 92.3 ± 0.6 | 91.0 ± 0.2 | 3.6 ± 0.4 |
    | mixup_or_cutmix | 94.8 ± 1.0 | 92.6 ± 0.4 | 90.4 ± 2.0 | 4.4 ± 1.8 |
    | vat | 95.9 ± 1.0 | 92.7 ± 0.6 | 91.2 ± 0.2 | 4.7 ± 1.2 |
    | all | 87.3 ± 1.5 | 82.3 ± 0.8 | 84.1 ± 1.0 | 3.3 ± 1.2 |

The plain CNN's gap is 5.8 points; dropout, augmentation, CutMix and batch normalization
narrow it to 3.6-3.7, and batch normalization alone also lifts test accuracy (96.3% vs 92.2%);
L2 (λ = 1e-3), label smoothing and MixUp leave it within the seed spread (one test image is
0.37 points); so does VAT on these labelled images alone (gap 4.7 ± 1.2, test 91.2%;
``recipes/semi_supervised_vat.py`` adds unlabelled images); "all" has the smallest gap (3.3)
but underfits in 15 epochs (84.1%).
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
from keras_recipes.backend import allow_jit, device_description  # noqa: E402
from keras_recipes.callbacks import EpochScalars  # noqa: E402
from keras_recipes.data import epoch_batches, image_folder, load_digits  # noqa: E402
from keras_recipes.experiments import option  # noqa: E402
from keras_recipes.layers import MIXING_KINDS, mixing_layer  # noqa: E402
from keras_recipes.models import AugmentedModel, VirtualAdversarialModel  # noqa: E402
from keras_recipes.regularizers import add_weight_penalty, remove_weight_penalty  # noqa: E402

VARIANTS = ("none", "l2", "dropout", "batchnorm", "augment", "label_smoothing", "mixup",
            "cutmix", "mixup_or_cutmix", "vat", "all")
# The course's θ ≈ 0.9 for the running averages. Keras's default, 0.99, keeps ~5% of the
# initial (0, 1) statistics after 300 steps: on few images the test-time model is then off.
BN_MOMENTUM = 0.9
SHARED_LAYERS = ("conv1", "conv2", "dense1", "logits")  # same initial weights in every variant


@dataclasses.dataclass
class Config(experiments.RecipeConfig):
    data: str = option("digits", "'digits' (bundled), 'cifar10' (download) or a folder")
    image_size: int = option(16, "images are resized to this side (RGB)")
    train_per_class: int = option(30, "training images per class (few: regularization matters)")
    variants: tuple = option(VARIANTS, "variants to compare")
    filters: tuple = option((16, 32), "filters of the two 3×3 conv blocks")
    units: int = option(64, "units of the dense layer")
    epochs: int = option(15, "training epochs")
    batch_size: int = option(32, "batch size")
    learning_rate: float = option(1e-3, "Adam learning rate")
    l2: float = option(1e-3, "L2 factor λ (penalty λ·ΣW² on kernels)")
    dropout: float = option(0.5, "dropout rate before the classifier (0.25 after pooling)")
    label_smoothing: float = option(0.1, "label smoothing ε")
    mixup_alpha: float = option(0.2, "MixUp α")
    cutmix_alpha: float = option(1.0, "CutMix α")
    vat_epsilon: float = option(2.0, "VAT perturbation norm ε (L2 over an image in [0, 1])")
    vat_alpha: float = option(1.0, "weight α of the VAT loss")
    # 1e-6 (the paper's) is lost to float32 rounding on pixel values; 1e-3 is still small.
    vat_xi: float = option(1e-3, "VAT finite-difference step ξ (image in [0, 1])")
    noise: float = option(0.03, "std of the Gaussian noise in 'augment' (images in [0, 1])")
    flip: str = option("auto", "horizontal flip in 'augment': on, off, auto (off for digits)")


# "all" holds every technique; flip on so that the smoke run also goes through RandomFlip.
# One batch of 40 per epoch: a last, smaller batch would compile a second training step.
SMOKE = {"variants": ("none", "vat", "all"), "train_per_class": 4, "batch_size": 40, "epochs": 2,
         "seeds": (0,), "flip": "on"}


def load_data(config: Config):
    """(x, y) splits with one-hot float32 labels and images in 0-255, and the class count."""
    if config.data == "digits":
        splits = load_digits(image_size=config.image_size, channels=3, format="numpy", seed=0,
                             train_per_class=config.train_per_class)
        parts, k = [splits.train, splits.validation, splits.test], splits.num_classes
    elif config.data == "cifar10":
        try:
            (x, y), (x_test, y_test) = keras.datasets.cifar10.load_data()
        except Exception as e:  # Keras raises a bare Exception when the download fails
            raise OSError(f"CIFAR-10 could not be downloaded ({e}). Offline, use --data digits "
                          "or --data PATH (a folder of class sub-folders).") from e
        rng = np.random.default_rng(0)
        y, y_test = y.reshape(-1), y_test.reshape(-1)
        order = rng.permutation(len(y))
        train = np.concatenate([order[y[order] == c][: config.train_per_class] for c in range(10)])
        rest = np.setdiff1d(order, train)
        val = rng.choice(rest, 1000, replace=False)
        test = rng.choice(len(y_test), 2000, replace=False)
        parts = [(x[train], y[train]), (x[val], y[val]), (x_test[test], y_test[test])]
        if config.image_size != 32:
            parts = [(_resize(a, config.image_size), b) for a, b in parts]
        k = 10
    else:
        splits = image_folder(config.data, image_size=config.image_size, validation_split=0.15,
                              test_split=0.15, format="numpy", seed=0)
        x, y = splits.train
        keep = np.concatenate([np.flatnonzero(y == c)[: config.train_per_class]
                               for c in range(splits.num_classes)])
        parts = [(x[keep], y[keep]), splits.validation, splits.test]
        k = splits.num_classes
    onehot = np.eye(k, dtype="float32")
    return [(np.asarray(x, "float32"), onehot[np.asarray(y).astype(int)]) for x, y in parts], k


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    return keras.ops.convert_to_numpy(keras.ops.image.resize(images.astype("float32"),
                                                             (size, size)))


def augmentation(config: Config, seed: int) -> keras.Sequential:
    """The course's classic augmentation as training-time Keras layers (inputs in 0-255).

    Gaussian noise is added after the rescaling to [0, 1] (see `build_cnn`).
    """
    flip = config.flip == "on" or (config.flip == "auto" and config.data != "digits")
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)] if flip else []
    layers += [
        keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2),
        keras.layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.2,
                                       contrast_factor=0.2, saturation_factor=0.2, seed=seed + 3),
        keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.2), fill_value=0.0,
                                   value_range=(0, 255), seed=seed + 5),
    ]
    # On JAX, RandomRotation/RandomTranslation (marked supports_jit=False by Keras for
    # TensorFlow's sake) are jittable: without this, `fit` runs the whole model op by op.
    return allow_jit(keras.Sequential(layers, name="augment"))


def uses(variant: str, technique: str) -> bool:
    return variant == technique or (variant == "all" and technique not in ("none", "vat"))


def glorot(seed: int, index: int):
    """Keras's default kernel initializer, seeded explicitly (no global random state)."""
    return keras.initializers.GlorotUniform(seed=1000 * seed + index)


def build_cnn(variant: str, shape, k: int, config: Config, seed: int) -> keras.Model:
    bn = uses(variant, "batchnorm")
    drop = uses(variant, "dropout")
    inputs = keras.Input(shape, name="images")
    h = augmentation(config, seed)(inputs) if uses(variant, "augment") else inputs
    h = keras.layers.Rescaling(1 / 255.0)(h)
    if uses(variant, "augment"):
        h = keras.layers.GaussianNoise(config.noise, seed=seed + 4)(h)
    for i, filters in enumerate(config.filters):
        h = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i + 1}",
                                kernel_initializer=glorot(seed, i))(h)
        if bn:
            h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i + 1}")(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.MaxPooling2D()(h)
        if drop:
            h = keras.layers.Dropout(0.25, seed=seed + 10 + i)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(config.units, name="dense1", kernel_initializer=glorot(seed, 2))(h)
    if bn:
        h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="bn3")(h)
    h = keras.layers.ReLU()(h)
    if drop:
        h = keras.layers.Dropout(config.dropout, seed=seed + 20)(h)
    outputs = keras.layers.Dense(k, name="logits", kernel_initializer=glorot(seed, 3))(h)
    return keras.Model(inputs, outputs, name=f"cnn_{variant}")


def layer_kinds(model) -> list[str]:
    """The class names of all layers of `model`, nested models included."""
    kinds, stack = set(), [model]
    while stack:
        layer = stack.pop()
        kinds.add(type(layer).__name__)
        stack.extend(getattr(layer, "layers", []))
    return sorted(kinds)


def run_variant(variant, seed, initial, data, k, config, run_dir):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    cnn = build_cnn(variant, x_train.shape[1:], k, config, seed)
    for name in SHARED_LAYERS:
        cnn.get_layer(name).set_weights(initial[name])
    shared = [w for name in SHARED_LAYERS for w in cnn.get_layer(name).get_weights()]
    penalized = add_weight_penalty(cnn, l2=config.l2) if uses(variant, "l2") else []
    kind = "mixup_or_cutmix" if variant == "all" else variant  # l2, dropout, ...: no mixing
    mix = mixing_layer(kind if kind in MIXING_KINDS else None, mixup_alpha=config.mixup_alpha,
                       cutmix_alpha=config.cutmix_alpha, seed=seed)
    model = AugmentedModel(cnn, mix) if mix is not None else cnn
    if uses(variant, "vat"):  # the CNN takes images in 0-255: ε and ξ in those units
        model = VirtualAdversarialModel(cnn, epsilon=255 * config.vat_epsilon,
                                        alpha=config.vat_alpha, xi=255 * config.vat_xi,
                                        from_logits=True, seed=seed)
    smoothing = config.label_smoothing if uses(variant, "label_smoothing") else 0.0
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
        metrics=["accuracy"],
    )
    log_dir = os.path.join(run_dir, "tensorboard", variant, f"seed{seed}")
    history = model.fit(  # every variant of a seed: the same batches, epoch e in order [seed, e]
        epoch_batches(x_train, y_train, config.batch_size, seed=seed, epochs=config.epochs),
        steps_per_epoch=math.ceil(len(x_train) / config.batch_size),
        shuffle=False,  # the order is epoch_batches' own
        epochs=config.epochs,
        validation_data=(x_val, y_val),
        validation_batch_size=512,  # one batch: less per-epoch overhead
        callbacks=[EpochScalars(log_dir)],
        verbose=0,
    )
    scores = {}
    for split, (x, y) in (("train", (x_train, y_train)), ("validation", (x_val, y_val)),
                          ("test", (x_test, y_test))):
        # Accuracy only: the loss of `evaluate` would include the L2 penalty and smoothing.
        logits = experiments.predict_logits(cnn, x)
        scores[split] = float(np.mean(np.argmax(logits, -1) == np.argmax(y, -1)))
    return {
        "train_accuracy": scores["train"],
        "val_accuracy": scores["validation"],
        "test_accuracy": scores["test"],
        "gap": scores["train"] - scores["test"],
        "epoch_val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "epoch_val_loss": [float(v) for v in history.history["val_loss"]],
        "initial_weights": experiments.fingerprint(shared),
        "penalized_weights": penalized,
        "parameters": int(cnn.count_params()),
        "layers": layer_kinds(cnn),  # what the variant's CNN holds (augmentation, BN, dropout)
        "mixing": type(mix).__name__ if mix is not None else None,
        "label_smoothing": smoothing,
        "epoch_vat_loss": [float(v) for v in history.history.get("vat_loss", [])],
        "jit_compile": bool(model.jit_compile),  # one compiled training step (XLA) or not
    }, cnn


def plot_curves(results, config, path):
    plt = experiments.pyplot()

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(13, 4.8))
    cmap = plt.get_cmap("tab10")
    for i, (variant, v) in enumerate(results.items()):
        acc = np.mean([r["epoch_val_accuracy"] for r in v["runs"]], axis=0)
        loss = np.mean([r["epoch_val_loss"] for r in v["runs"]], axis=0)
        epochs = np.arange(1, len(acc) + 1)
        style = "-" if variant in ("none", "all") else "--"
        width = 2.2 if variant in ("none", "all") else 1.2
        ax_acc.plot(epochs, acc, style, lw=width, color=cmap(i % 10), label=variant)
        ax_loss.plot(epochs, loss, style, lw=width, color=cmap(i % 10), label=variant)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy (mean over seeds)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("validation loss (with each variant's own loss)")
    ax_loss.set_yscale("log")
    ax_acc.legend(fontsize=8, ncol=2)
    fig.suptitle(f"small CNN, {config.train_per_class} training images per class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    config, (data, k), run_dir = experiments.start_run(
        Config, load_data, argv, name="regularization_ablation", description=__doc__,
        smoke=SMOKE,
    )
    start, cpu_start = time.time(), time.process_time()
    by_variant: dict[str, list[dict]] = {v: [] for v in config.variants}
    for seed in config.seeds:
        reference = build_cnn("none", data[0][0].shape[1:], k, config, seed)
        initial = {name: reference.get_layer(name).get_weights() for name in SHARED_LAYERS}
        for variant in config.variants:
            result, cnn = run_variant(variant, seed, initial, data, k, config, run_dir)
            by_variant[variant].append(result)
            if variant == "all" and seed == config.seeds[0]:
                # The penalty only shapes training: without it the saved model is plain Keras.
                remove_weight_penalty(cnn)
                cnn.save(os.path.join(run_dir, "all.keras"))
            print(f"seed {seed} {variant:16s} train {result['train_accuracy']:.3f} "
                  f"val {result['val_accuracy']:.3f} test {result['test_accuracy']:.3f}",
                  flush=True)
    wall, cpu = time.time() - start, time.process_time() - cpu_start
    results, rows = {}, []
    for variant, vruns in by_variant.items():
        results[variant] = {"runs": vruns}
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "gap"):
            results[variant][key] = experiments.summarize(r[key] for r in vruns)
        rows.append([variant] + [
            experiments.format_mean_sd(results[variant][key], digits=1, scale=100)
            for key in ("train_accuracy", "val_accuracy", "test_accuracy", "gap")
        ])
    plot_curves(results, config, os.path.join(run_dir, "curves.png"))
    table = experiments.markdown_table(
        ["variant", "train accuracy %", "validation accuracy %", "test accuracy %",
         "gap (train − test), points"],
        rows,
    )
    counts = [len(part[1]) for part in data]
    summary = (
        f"backend {config.backend}, {device_description()}; data "
        f"{config.data} {config.image_size}×{config.image_size}, {counts[0]} training / "
        f"{counts[1]} validation / {counts[2]} test images, {config.epochs} epochs, Adam lr "
        f"{config.learning_rate}, seeds {list(config.seeds)} (mean ± sd); wall time "
        f"{wall:.0f} s (CPU time {cpu:.0f} s)."
    )
    metrics = {
        "recipe": "regularization_ablation",
        "backend": config.backend,
        "device": device_description(),
        "wall_time_s": wall,
        "cpu_time_s": cpu,
        "split_sizes": {"train": counts[0], "validation": counts[1], "test": counts[2]},
        "variants": results,
    }
    experiments.finish_run(run_dir, title="Regularization ablation", summary=summary, table=table,
                    metrics=metrics, outputs=["curves.png", "all.keras", "tensorboard/"])
    return metrics


if __name__ == "__main__":
    main()
