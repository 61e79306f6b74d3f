"""Transfer learning with VGG19: the course's two-phase fine-tuning, end to end.

What it shows (COURSE.md §5): take VGG19 pretrained on a large task, replace its
classifier, train the new head with the backbone frozen (phase 1, "warm-up"),
then unfreeze everything and continue with a 10x smaller learning rate
(phase 2), reporting top-1 and top-5 every epoch. Both phases run inside one
``fit`` (``keras_recipes.callbacks.UnfreezeSchedule``), with the library's
``EarlyStopping`` (phase 2), ``GradientHistogram`` and Keras's TensorBoard.

- Online, the course's run: Oxford Flowers-102 (official 1,020/1,020/6,149
  split; validation for model selection, test reported at the end) and
  ImageNet VGG19 keeping its two 4096-unit layers, SGD momentum 0.9,
  lr 1e-3 for 10 epochs then 1e-4 for 10 epochs. The course reached 89.2%
  then 92.5% validation top-1.
- Offline (nothing to download; this is what runs on a machine without the
  data or the weights): a loud notice, then the **embedded default**, a real
  transfer on bundled data. VGG19 is trained on a source task (digits 0-4,
  cached under ``<out>/_cache`` and reused by later runs), then transferred to
  a target task (digits 5-9, 10 labelled images per class) in the same two
  phases, next to a VGG19 trained from scratch with the same step budget and
  the same initial head, so the benefit of transfer is measured.

Commands (from the repository root):

    python recipes/transfer_vgg19.py                 # course run online, embedded default offline
    python recipes/transfer_vgg19.py --smoke         # tiny end-to-end run (see Measured)
    python recipes/transfer_vgg19.py --resume        # continue the newest run in runs/
    python recipes/transfer_vgg19.py --data ~/flowers --weights ~/vgg19_notop.h5 --head gap
    python recipes/transfer_vgg19.py --backend jax --mixed-precision --jit   # on a GPU
    python recipes/transfer_vgg19.py --augment mixup-cutmix --label-smoothing 0.1
    benchmarks/gpu_transfer.sh                       # 224x224 GPU check, each installed backend

Several devices (``--distribute``, through ``keras_recipes.distribute.setup``;
``--batch-size`` is then the global batch, rounded up to a multiple of the
replicas; only the chief process writes files and prints):

    # tensorflow, the GPUs of one host; jax, the devices of one host
    python recipes/transfer_vgg19.py --backend tensorflow --distribute mirrored
    python recipes/transfer_vgg19.py --backend jax --distribute data_parallel
    # torch, one process per GPU
    KERAS_BACKEND=torch torchrun --standalone --nproc_per_node=4 \
        recipes/transfer_vgg19.py --distribute ddp
    # 2 replicas on a CPU (as the test runs it)
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python recipes/transfer_vgg19.py --backend jax --smoke --distribute data_parallel

Several hosts: ``--distribute multi_worker`` (tensorflow, ``TF_CONFIG``),
``data_parallel`` with the ``KERAS_DISTRIBUTION_*`` variables (jax), ``torchrun
--nnodes`` (torch); see the README's "Multi-GPU and multi-host". Test: 2 XLA host
devices on jax (tests/recipes/test_transfer_vgg19.py: matches the 1-device run
within rel 1e-4; passes). Run once each (2026-11-28, ``--smoke --threads 1
--scratch no``, this 2-core CPU, simulated: no GPU, one host): ``mirrored`` over 2
logical CPU devices, ``multi_worker`` with 2 local processes (``TF_CONFIG``),
``ddp`` with 2 ranks under ``torchrun``, ``data_parallel`` with 2 JAX processes
(``jax.distributed``): every logged loss and top-1 within rel 1.5e-7 of the
1-device run on the same backend, one run folder written by the chief (commands
and figures in the README).

Outputs, in one run folder ``runs/transfer_vgg19-<date>-<time>/``: ``config.json``,
``metrics.json`` (per-epoch history, per-phase and final metrics, the summary),
``history.csv``, ``curves.png`` (loss and top-1, unfreeze epoch marked),
``gradient_norms.png``, ``logs/`` (TensorBoard: scalars, weight and gradient
histograms), ``best.keras`` (best epoch by validation top-1; it outputs logits)
and ``best_check.npz`` (inputs and outputs to check a reload). ``state/``
holds the per-epoch checkpoint that ``--resume`` continues from.

Exit status: 0 done, 2 bad input (a one-paragraph message, no traceback),
3 training stopped on a non-finite loss (the best model so far is kept).

Measured (2026-11-28, 2-core AMD EPYC CPU shared with 4-5 other jobs, load 15-25,
so wall times are inflated many times over; CPU time = user + sys of the process):

- ``python recipes/transfer_vgg19.py --smoke --backend torch``: 75.6 s CPU
  (1,282 s wall on the loaded machine); ``--backend tensorflow``: 68.6 s CPU (999 s
  wall); ``--backend jax``: 131.6 s CPU (1,666 s wall; XLA compiles each VGG19
  step function); on the idle machine, default threads: 74 s wall, 108 s CPU.
  The smoke run learns nothing (1 step per epoch; every accuracy is chance, 20%):
  it checks the machinery, not the transfer.
- The embedded default (``python recipes/transfer_vgg19.py --backend torch``, offline):
  source task (VGG19 from scratch on 711 images of digits 0-4, 2 epochs) val top-1
  98.1%; transfer phase 1 (head only, 10 epochs, 50 labelled images) val top-1 59.3%,
  test top-1 54.8%; phase 2 (all layers, 10 epochs) val top-1 61.1%, test top-1
  55.6%; best epoch 12: val top-1 61.1%, test top-1 56.3%. VGG19 from scratch with
  the same step budget: best val top-1 37.0%, test top-1 36.3%. Transfer minus
  scratch: +20.0 points test top-1, +24.1 points val top-1. On the loaded machine
  the run took 1,097 s of CPU (95.8 min wall); on the idle 2-core CPU (default
  threads, 2026-11-28) the same command gave the same figures in 295 s wall
  (12:05 UTC) and 447 s wall (20:03 UTC, the machine slower that evening);
  ``--backend tensorflow`` 445 s wall (12:17 UTC); ``--backend jax`` 346 s wall
  (20:15 UTC, after ``fast_small_convolutions``; 889 s before it): all three
  within the 10 minutes. Under jax the figures differ by rounding: transfer
  minus scratch +14.1 points of test top-1, +18.5 of val top-1.
- The online course run (Flowers-102 + ImageNet weights) was not run: no internet.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

if importlib.util.find_spec("keras_recipes") is None:  # run from a checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ("torch", "tensorflow", "jax")
NAME = "transfer_vgg19"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
MIN_IMAGE_SIZE = 32  # VGG19's minimum input side
SOURCE_BATCH = 32  # batch size of the source task (digits 0-4)
DIGITS_VAL_SPLIT = 0.06  # about 10 validation images per digit (evaluated every epoch)
AUGMENTS = ("none", "basic", "mixup", "cutmix", "mixup-cutmix")
# keras_recipes.distribute.KINDS over every backend (checked per backend by setup()).
DISTRIBUTE_KINDS = ("none", "auto", "mirrored", "multi_worker", "data_parallel", "ddp")
EXIT_BAD_INPUT = 2
EXIT_NONFINITE = 3
# Testing aid: "VARIANT:EPOCH:BATCH" (0-based) makes the process SIGKILL itself
# at the end of that training batch, i.e. a real `kill -9` in mid-epoch.
KILL_ENV = "KERAS_RECIPES_KILL_AT"


class RecipeError(Exception):
    """A bad input or an unusable resource: printed as one message, exit status 2."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


def _default_backend() -> str:
    return os.environ.get("KERAS_BACKEND") or "torch"


def _option(default, help):
    # keras_recipes.runs.option, without importing the package (which imports Keras)
    # before the backend is chosen.
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Defaults:
    """The recipe's settings: the course's run; "auto" values are resolved from the data."""

    # -- data and model
    data: str = _option("auto", "auto | flowers102 | tf_flowers | digits | PATH (a folder of "
                        "class sub-folders). auto: Flowers-102 with ImageNet weights when "
                        "cached or downloadable, else the embedded digits transfer")
    weights: str = _option("auto", "auto | imagenet | none | PATH (a VGG19 weights file, .h5 "
                           "or .weights.h5). auto: ImageNet; on digits, VGG19 trained on "
                           "digits 0-4 (cached)")
    head: str = _option("auto", "imagenet (keep VGG19's 4096-unit layers, replace the 1000-way "
                        "one; 224x224) | gap (global pooling + new Dense). auto: imagenet "
                        "with ImageNet weights at 224, else gap")
    image_size: int = _option(0, "input side in pixels, >= 32 (0: 224, or 32 on digits)")
    # -- the two phases (the course's settings)
    head_epochs: int = _option(10, "phase 1: epochs training the new head only")
    fine_tune_epochs: int = _option(10, "phase 2: epochs training all layers")
    head_lr: float = _option(1e-3, "phase 1 SGD learning rate")
    fine_tune_lr: float = _option(1e-4, "phase 2 SGD learning rate")
    momentum: float = _option(0.9, "SGD momentum")
    batch_size: int = _option(0, "batch size (0: 32, or 10 on digits: 5 steps per epoch)")
    patience: int = _option(5, "phase 2 early stopping: epochs without a lower val_loss "
                            "(0: off)")
    # -- regularization
    augment: str = _option("none", "none | basic (flip, contrast, brightness in the input "
                           "pipeline) | mixup | cutmix | mixup-cutmix (on the device)")
    label_smoothing: float = _option(0.0, "label smoothing epsilon in [0, 1)")
    clipnorm: float = _option(0.0, "clip each gradient tensor to this norm (0: off)")
    global_clipnorm: float = _option(0.0, "clip the global gradient norm, like PyTorch's "
                                     "clip_grad_norm_ (0: off)")
    # -- embedded default (digits)
    source_epochs: int = _option(2, "digits: epochs of the source task (digits 0-4, Adam, "
                                 "batch 32)")
    source_lr: float = _option(1e-4, "digits: Adam learning rate of the source task")
    train_per_class: int = _option(10, "digits: labelled training images per target class")
    scratch: str = _option("auto", "auto | yes | no: also train VGG19 from scratch with the "
                           "same step budget (auto: yes on the embedded default)")
    limit: int = _option(0, "use at most N images per split (0: all)")
    # -- monitoring
    grad_probe: int = _option(0, "held-out images whose gradients are logged each epoch (the "
                              "course uses 100); 0: capture the gradients of the last training "
                              "step of each epoch (no extra computation)")
    histogram_freq: int = _option(1, "weight histograms in TensorBoard every N epochs (0: off)")
    # -- execution
    mixed_precision: bool = _option(False, "mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU; "
                                    "float32 logits")
    jit: bool = _option(False, "jit_compile=True (XLA on tensorflow/jax, torch.compile on torch)")
    backend: str = _option(_default_backend(), "torch | tensorflow | jax (default: "
                           "$KERAS_BACKEND, else torch); applied before Keras is imported")
    threads: int = _option(0, "CPU compute threads (0: the framework's default)")
    distribute: str = _option("none", "data-parallel engine (keras_recipes.distribute.setup): "
                              "none | auto | mirrored, multi_worker (tensorflow) | "
                              "data_parallel (jax) | ddp (torch, launched by torchrun); "
                              "--batch-size is then the global batch")
    out: str = _option("runs", "parent folder of run folders")
    resume: bool = _option(False, "continue the newest run in --out from its last completed "
                           "epoch")
    seed: int = _option(0, "seed of the splits, the shuffling and the initial weights")
    verbose: int = _option(1, "1: a progress bar per epoch, 2: one line per epoch")
    smoke: bool = _option(False, "tiny end-to-end run for tests (digits, 32x32, few images)")


# What --smoke changes (flags given explicitly still win).
SMOKE = {
    "data": "digits",
    "image_size": 32,
    "head_epochs": 1,
    "fine_tune_epochs": 2,
    "source_epochs": 1,
    "train_per_class": 2,
    "batch_size": 10,  # one step per epoch; even, so 2 replicas split it (--distribute)
    "limit": 10,
    "grad_probe": 0,
    "histogram_freq": 2,
    "patience": 2,
    "verbose": 2,
}


# ---------------------------------------------------------------- start-up checks
def _preparse_backend(argv: list[str]) -> str:
    """The backend from --backend / $KERAS_BACKEND, checked before Keras is imported."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", default=None)
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--out", default="runs")
    known, _ = pre.parse_known_args(argv)
    backend = known.backend
    if backend is None and known.resume and "--help" not in argv and "-h" not in argv:
        saved = _newest_run(Path(known.out))
        if saved is not None:
            backend = json.loads((saved / "config.json").read_text())["config"]["backend"]
    backend = backend or _default_backend()
    if backend not in BACKENDS:
        raise RecipeError(
            f"Unknown backend {backend!r} (from --backend or $KERAS_BACKEND). Expected one "
            f"of: {', '.join(BACKENDS)}."
        )
    if importlib.util.find_spec(backend) is None:
        raise RecipeError(
            f"The {backend} backend is selected but the '{backend}' package is not installed. "
            f"Install it (pip install {backend}) or choose --backend among the installed ones."
        )
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != backend:
        raise RecipeError(
            f"Keras is already imported with the {loaded.backend.backend()} backend in this "
            f"process; --backend {backend} must be chosen before Keras is imported."
        )
    os.environ["KERAS_BACKEND"] = backend
    return backend


def check_config(cfg) -> None:
    """Validates the settings that can be checked without data or Keras; raises RecipeError."""

    def bad(flag: str, expected: str, value) -> RecipeError:
        return RecipeError(f"Invalid value for --{flag}: {value!r}. Expected {expected}.")

    if cfg.image_size != 0 and cfg.image_size < MIN_IMAGE_SIZE:
        raise RecipeError(
            f"Invalid value for --image-size: {cfg.image_size}. VGG19 needs images of at least "
            f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} pixels (five 2x2 poolings); use 32 or more, or "
            "0 for the default."
        )
    if cfg.head not in ("auto", "imagenet", "gap"):
        raise bad("head", "auto, imagenet or gap", cfg.head)
    if cfg.head == "imagenet" and cfg.image_size not in (0, 224):
        raise RecipeError(
            f"--head imagenet keeps VGG19's fully connected layers, which take 224x224 images; "
            f"got --image-size {cfg.image_size}. Use --head gap for other sizes."
        )
    if cfg.augment not in AUGMENTS:
        raise bad("augment", " | ".join(AUGMENTS), cfg.augment)
    if cfg.scratch not in ("auto", "yes", "no"):
        raise bad("scratch", "auto, yes or no", cfg.scratch)
    for flag in ("head_epochs", "fine_tune_epochs", "patience", "limit", "grad_probe",
                 "histogram_freq", "threads"):
        if getattr(cfg, flag) < 0:
            raise bad(flag.replace("_", "-"), "an int >= 0", getattr(cfg, flag))
    if cfg.head_epochs + cfg.fine_tune_epochs < 1:
        raise RecipeError("--head-epochs plus --fine-tune-epochs must be at least 1.")
    if cfg.batch_size < 0:
        raise bad("batch-size", "an int >= 1 (0: auto)", cfg.batch_size)
    for flag in ("source_epochs", "train_per_class"):
        if getattr(cfg, flag) < 1:
            raise bad(flag.replace("_", "-"), "an int >= 1", getattr(cfg, flag))
    for flag in ("head_lr", "fine_tune_lr", "source_lr"):
        value = getattr(cfg, flag)
        if not (math.isfinite(value) and value > 0):
            raise bad(flag.replace("_", "-"), "a float > 0", value)
    if not 0.0 <= cfg.momentum < 1.0:
        raise bad("momentum", "a float in [0, 1)", cfg.momentum)
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise bad("label-smoothing", "a float in [0, 1)", cfg.label_smoothing)
    for flag in ("clipnorm", "global_clipnorm"):
        value = getattr(cfg, flag)
        if not (math.isfinite(value) and value >= 0):
            raise bad(flag.replace("_", "-"), "a float >= 0 (0: off)", value)
    if cfg.clipnorm and cfg.global_clipnorm:
        raise RecipeError("Use either --clipnorm or --global-clipnorm, not both.")
    if cfg.verbose not in (0, 1, 2):
        raise bad("verbose", "0, 1 or 2", cfg.verbose)
    if cfg.distribute not in DISTRIBUTE_KINDS:
        raise bad("distribute", " | ".join(DISTRIBUTE_KINDS), cfg.distribute)
    _check_data_arg(cfg.data)
    _check_weights_arg(cfg.weights)


def _check_data_arg(data: str) -> None:
    if data in ("auto", "flowers102", "tf_flowers", "digits"):
        return
    path = Path(data).expanduser()
    if not path.exists():
        raise RecipeError(
            f"--data {data!r}: no such folder. Expected auto, flowers102, tf_flowers, digits, or "
            "a folder holding one sub-folder of images per class (FOLDER/<class>/<image>)."
        )
    if not path.is_dir():
        raise RecipeError(
            f"--data {data!r} is a file. Expected a folder holding one sub-folder of images per "
            "class (FOLDER/<class>/<image>)."
        )


def _check_weights_arg(weights: str) -> None:
    if weights in ("auto", "imagenet", "none"):
        return
    path = Path(weights).expanduser()
    if not path.is_file():
        raise RecipeError(
            f"--weights {weights!r}: no such file. Expected auto, imagenet, none, or the path "
            "of a VGG19 weights file (keras.applications' .h5, or a Keras 3 .weights.h5)."
        )
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as err:
        raise RecipeError(
            f"--weights {weights!r} is not a readable HDF5 weights file ({err}). Expected "
            "keras.applications' VGG19 .h5 file or a Keras 3 .weights.h5 saved from VGG19."
        ) from None


# ------------------------------------------------------------------- run folders
def _newest_run(out: Path) -> Path | None:
    if not out.is_dir():
        return None
    runs = [p for p in out.glob(f"{NAME}-*") if (p / "config.json").is_file()]
    return max(runs, key=lambda p: (p.name, p.stat().st_mtime)) if runs else None


def _load_resume(cfg, given: set[str]):
    """The newest run in --out and its saved configuration (flags given now are ignored)."""
    run_dir = _newest_run(Path(cfg.out).expanduser())
    if run_dir is None:
        raise RecipeError(
            f"--resume: no run to continue in {cfg.out!r} (no {NAME}-*/config.json). Start one "
            "without --resume."
        )
    saved = json.loads((run_dir / "config.json").read_text())
    values = saved["config"]
    ignored = sorted(
        k for k in given
        if k not in ("resume", "out", "backend", "threads", "verbose", "distribute")
        and values.get(k) != getattr(cfg, k)
    )
    if ignored:
        print(f"--resume: using the saved configuration of {run_dir}; ignoring "
              + ", ".join("--" + k.replace("_", "-") for k in ignored))
    fields = {f.name for f in dataclasses.fields(Defaults)}
    merged = {k: v for k, v in values.items() if k in fields}
    merged.update(resume=True, out=cfg.out, threads=cfg.threads, verbose=cfg.verbose,
                  distribute=cfg.distribute)
    return run_dir, Defaults(**merged), saved


# ------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Runs the recipe; returns the exit status (0 done, 2 bad input, 3 non-finite loss)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        backend = _preparse_backend(argv)
        return _main(argv, backend)
    except RecipeError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return err.code
    except SystemExit as err:  # argparse: message already printed
        return err.code if isinstance(err.code, int) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\ninterrupted: continue with --resume", file=sys.stderr)
        return 130


def _given_flags(argv: list[str]) -> set[str]:
    names = set()
    for arg in argv:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            names.add(name[3:] if name.startswith("no_") else name)
    return names


def _main(argv: list[str], backend: str) -> int:
    from keras_recipes import runs

    cfg = runs.parse_config(Defaults(backend=backend), argv, description=__doc__, smoke=SMOKE,
                            verbose=False)
    run_dir, saved = None, None
    if cfg.resume:
        run_dir, cfg, saved = _load_resume(cfg, _given_flags(argv))
    check_config(cfg)
    return Recipe(cfg, run_dir, saved).run()


# --------------------------------------------------------------------- the recipe
@dataclasses.dataclass
class Plan:
    """What a run does once "auto" settings are resolved."""

    data: str  # flowers102 | tf_flowers | digits | PATH
    weights: str  # imagenet | source | none | PATH
    head: str
    image_size: int
    scratch: bool
    batch_size: int = 32
    weights_file: str | None = None
    notice: str = ""


class Recipe:
    """One run: plan, data, source task, variants (transfer, scratch), outputs."""

    def __init__(self, cfg, run_dir: Path | None, saved: dict | None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.saved = saved
        self.start = time.time()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plan
    def resolve(self) -> Plan:
        cfg = self.cfg
        if self.saved is not None:
            p = self.saved["plan"]
            return Plan(**{f.name: p[f.name] for f in dataclasses.fields(Plan) if f.name in p})
        notice = ""
        data, weights = cfg.data, cfg.weights
        if data == "auto":
            missing = self._course_missing(weights)
            if missing:
                notice = _offline_notice(missing, cfg)
                data = "digits"
                weights = "auto" if weights in ("auto", "imagenet") else weights
            else:
                data = "flowers102"
        if weights == "auto":
            weights = "source" if data == "digits" else "imagenet"
        image_size = cfg.image_size or (32 if data == "digits" else 224)
        head = cfg.head
        if head == "auto":
            head = "imagenet" if weights == "imagenet" and image_size == 224 else "gap"
        if head == "imagenet" and image_size != 224:
            raise RecipeError(
                f"--head imagenet keeps VGG19's fully connected layers, which take 224x224 "
                f"images; the image size is {image_size}. Use --head gap or --image-size 224."
            )
        scratch = cfg.scratch == "yes" or (cfg.scratch == "auto" and weights == "source")
        batch_size = cfg.batch_size or (10 if data == "digits" else 32)
        plan = Plan(data=data, weights=weights, head=head, image_size=image_size,
                    scratch=scratch, batch_size=batch_size, notice=notice)
        if weights not in ("imagenet", "source", "none"):
            plan.weights_file = str(Path(weights).expanduser().resolve())
        return plan

    def _course_missing(self, weights: str) -> list[str]:
        """What the course's run lacks here (Flowers-102, ImageNet weights); [] if nothing."""
        from keras_recipes.applications.imagenet_weights import (
            imagenet_weights_file,
            imagenet_weights_path,
        )
        from keras_recipes.data import DatasetUnavailableError, oxford_flowers102

        missing = []
        if weights in ("auto", "imagenet"):
            head_top = self.cfg.head in ("auto", "imagenet")
            file = imagenet_weights_file("vgg19", include_top=head_top)
            try:
                imagenet_weights_path("vgg19", file)
            except OSError as err:
                missing.append(str(err))
        try:
            oxford_flowers102(image_size=224, batch_size=32, seed=self.cfg.seed)
        except DatasetUnavailableError as err:
            missing.append(str(err))
        return missing

    def _imagenet_file(self, include_top: bool) -> str:
        from keras_recipes.applications.imagenet_weights import (
            imagenet_weights_file,
            imagenet_weights_path,
        )

        try:
            return imagenet_weights_path("vgg19", imagenet_weights_file("vgg19", include_top))
        except OSError as err:
            raise RecipeError(f"--weights imagenet: {err}") from None

    # ------------------------------------------------------------------ data
    def load_data(self, plan: Plan):
        """(target splits as pipelines, their NumPy form or None, source NumPy splits or None)."""
        from keras_recipes import data as kdata

        cfg = self.cfg
        try:
            if plan.data == "digits":
                target = kdata.load_digits(
                    plan.image_size, classes=TARGET_CLASSES, train_per_class=cfg.train_per_class,
                    validation_split=DIGITS_VAL_SPLIT, seed=cfg.seed, format="numpy",
                )
                source = None
                if plan.weights == "source":
                    source = kdata.load_digits(plan.image_size, classes=SOURCE_CLASSES,
                                               validation_split=DIGITS_VAL_SPLIT, seed=cfg.seed,
                                               format="numpy")
                    source = _limit_splits(source, cfg.limit, cfg.seed)
                target = _limit_splits(target, cfg.limit, cfg.seed, train=False)
                return target, True, source
            if not _tf_data_available():
                raise RecipeError(
                    f"--data {plan.data}: reading image files needs TensorFlow (tf.data), "
                    "which is not installed here. Install it (pip install tensorflow) or use "
                    "--data digits (bundled, read without TensorFlow).")
            kwargs = {"image_size": plan.image_size, "batch_size": plan.batch_size,
                      "seed": cfg.seed}
            if plan.data == "flowers102":
                splits = kdata.oxford_flowers102(**kwargs)
            elif plan.data == "tf_flowers":
                splits = kdata.tf_flowers(**kwargs)
            else:
                splits = kdata.image_folder(plan.data, validation_split=0.2, test_split=0.1,
                                            **kwargs)
        except kdata.DatasetUnavailableError as err:
            raise RecipeError(f"--data {plan.data}: {err}") from None
        except (FileNotFoundError, ValueError) as err:
            raise RecipeError(f"--data {plan.data!r}: {err}") from None
        if cfg.limit:
            splits = _limit_dataset_splits(splits, cfg.limit, plan.batch_size)
        return splits, False, None

    # ------------------------------------------------------------------- run
    def run(self) -> int:
        import keras

        from keras_recipes import runs
        from keras_recipes.backend.device import (
            device_description,
            mixed_precision_policy,
            set_num_threads,
        )

        cfg = self.cfg
        if cfg.threads:
            set_num_threads(cfg.threads)
        self.ctx = _distribute_context(cfg.distribute)  # before any other TensorFlow op
        if not self.ctx.is_chief:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (one log: the chief's)
        plan = self.resolve()
        if plan.notice:
            print(plan.notice)
        self.plan = plan
        replicas = self.ctx.num_replicas
        if replicas > 1:
            plan.batch_size = _round_up(plan.batch_size, replicas)
            print(f"--distribute {cfg.distribute}: {self.ctx.kind} over {replicas} replicas "
                  f"({self.ctx.num_processes} process(es)); global batch {plan.batch_size} "
                  f"({plan.batch_size // replicas} per replica)")
        self.device = device_description()
        self.policy = mixed_precision_policy() if cfg.mixed_precision else "float32"
        keras.config.set_dtype_policy(self.policy)
        target, is_numpy, source = self.load_data(plan)  # bad data fails before the run folder
        if plan.weights == "imagenet" and plan.weights_file is None:
            plan.weights_file = self._imagenet_file(plan.head == "imagenet")
        resolved = dataclasses.asdict(cfg)
        resolved.update(image_size=plan.image_size, head=plan.head, data=plan.data,
                        weights=plan.weights, scratch="yes" if plan.scratch else "no",
                        batch_size=plan.batch_size)
        if self.run_dir is None and not self.ctx.is_chief:
            # Other processes write nothing (this folder is never created).
            self.run_dir = Path(cfg.out).expanduser() / f".{NAME}-process{self.ctx.process_index}"
        elif self.run_dir is None:
            self.run_dir = runs.make_run_dir(cfg.out, NAME)
            runs.save_json(self.run_dir / "config.json", {
                "config": dataclasses.asdict(cfg), "resolved": resolved,
                "plan": dataclasses.asdict(plan), "backend": keras.backend.backend(),
                "keras": keras.__version__, "device": self.device, "policy": self.policy,
                "command": " ".join([sys.executable, *sys.argv]),
            })
            print(f"run folder: {self.run_dir}")
        else:
            print(f"resuming run folder: {self.run_dir}")
        print("config: " + json.dumps(runs.to_jsonable(resolved), sort_keys=True))
        self.attach(plan, target, is_numpy, self.run_dir)
        progress = self.progress

        weights_file = plan.weights_file
        if plan.weights == "source":
            weights_file, info = self.source_task(source)
            if progress["source"] is None or not info["cached"]:
                progress["source"] = info
        self.weights_file = weights_file

        variants = [("transfer", weights_file if plan.weights != "none" else None)]
        if plan.scratch:
            variants.append(("scratch", None))
        status = 0
        for name, wfile in variants:
            done = progress["variants"].get(name)
            if done is not None and done.get("complete"):
                print(f"{name}: already complete in this run folder")
                continue
            result = self.train_variant(name, wfile)
            progress["variants"][name] = result
            self._save_progress()
            if result["stop_reason"] == "non_finite_loss":
                status = EXIT_NONFINITE
                break
        self.finish(status)
        self.ctx.shutdown()
        return status

    def attach(self, plan: Plan, target, is_numpy: bool, run_dir: Path) -> None:
        """Sets what the training methods use: plan, target splits, run folder, progress.

        ``run()`` calls it; the benchmark calls it with synthetic data to time the
        recipe's own training step and callbacks.
        """
        import keras

        from keras_recipes.backend.device import device_description

        self.plan = plan
        if not hasattr(self, "device"):
            self.device = device_description()
        self.policy = keras.config.dtype_policy().name
        self.target, self.is_numpy = target, is_numpy
        self.num_classes = target.num_classes
        self.run_dir = Path(run_dir)
        self.state_dir = self.run_dir / "state"
        if not hasattr(self, "ctx"):
            from keras_recipes.distribute import setup

            self.ctx = setup("none")
        self.writes = self.ctx.is_chief  # one writer: the chief process
        if self.writes:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        progress = _read_json(self.state_dir / "progress.json") or {
            "variants": {}, "elapsed": 0.0, "source": None, "sessions": 0}
        progress["sessions"] += 1
        self.progress = progress
        self.elapsed_before = float(progress.get("elapsed", 0.0))

    def _save_progress(self) -> None:
        if not self.writes:
            return
        with self._lock:  # the checkpoint writer thread calls this too
            self.progress["elapsed"] = self.elapsed_before + time.time() - self.start
            _atomic_json(self.state_dir / "progress.json", self.progress)

    # ---------------------------------------------------------- source task
    def source_task(self, source):
        """VGG19 trained on digits 0-4; its backbone weights cached under <out>/_cache."""
        import keras

        from keras_recipes import runs
        from keras_recipes.applications import build_transfer_model

        cfg, plan = self.cfg, self.plan
        batch = _round_up(SOURCE_BATCH, self.ctx.num_replicas)
        key = (f"vgg19-digits01234-{plan.image_size}px-e{cfg.source_epochs}-lr{cfg.source_lr:g}"
               f"-b{batch}-n{len(source.train[0])}-seed{cfg.seed}-{self.policy}")
        cache = Path(cfg.out).expanduser() / "_cache"
        path = cache / f"{key}.weights.h5"
        info_path = cache / f"{key}.json"
        if path.is_file() and info_path.is_file():
            info = json.loads(info_path.read_text())
            print(f"source task: reusing cached VGG19 trained on digits 0-4 ({path}; "
                  f"val top-1 {info['val_top1']:.3f}, trained under {info['backend']})")
            return str(path), {**info, "cached": True}
        if self.writes:
            cache.mkdir(parents=True, exist_ok=True)
        print(f"\n== source task: VGG19 from random initialization on digits 0-4 "
              f"({len(source.train[0])} images, {cfg.source_epochs} epochs, Adam "
              f"lr {cfg.source_lr:g}); cached for later runs in {cache}")
        keras.utils.set_random_seed(cfg.seed)
        with self.ctx.scope():
            model = build_transfer_model("vgg19", source.num_classes,
                                         input_shape=(plan.image_size, plan.image_size, 3),
                                         weights=None, head="gap", freeze_backbone=False,
                                         classifier_activation=None, name="vgg19_source")
            model = _float32_logits(model, self.policy)
            model.compile(optimizer=keras.optimizers.Adam(cfg.source_lr),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
                          jit_compile=True if cfg.jit else "auto")
        x, y = source.train
        train, steps = _epoch_pipeline(x, y, batch, cfg.seed + 1, 0, cfg.source_epochs)
        val = _plain_pipeline(*source.validation, batch)
        t0 = time.time()
        hist = self.ctx.fit(model, train, epochs=cfg.source_epochs, steps_per_epoch=steps,
                            validation_data=val, shuffle=False, verbose=cfg.verbose)
        seconds = time.time() - t0
        val_top1 = float(hist.history["val_top1"][-1])
        if not math.isfinite(float(hist.history["loss"][-1])):
            raise RecipeError("The source task's loss became non-finite; lower --source-lr.",
                              EXIT_NONFINITE)
        if not self.writes:  # the chief writes the cache; the others keep a private copy
            path = Path(tempfile.mkdtemp(prefix=f"{NAME}-source-")) / path.name
            model.get_layer("backbone").save_weights(str(path))
            return str(path), {"path": str(path), "val_top1": val_top1, "cached": False}
        tmp = cache / f".{key}.{os.getpid()}.weights.h5"
        model.get_layer("backbone").save_weights(str(tmp))
        os.replace(tmp, path)
        info = {"path": str(path), "val_top1": val_top1, "epochs": cfg.source_epochs,
                "images": len(x), "seconds": seconds, "backend": keras.backend.backend(),
                "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()}}
        runs.save_json(info_path, info)
        print(f"source task: val top-1 {val_top1:.3f} after {seconds:.0f} s; saved {path}")
        return str(path), {**info, "cached": False}

    # -------------------------------------------------------------- variants
    def _compile_model(self, net, lr: float):
        import keras

        from keras_recipes import layers, models

        cfg = self.cfg
        k = self.num_classes
        onehot = cfg.augment in ("mixup", "cutmix", "mixup-cutmix") or cfg.label_smoothing > 0
        model = net
        if cfg.augment in ("mixup", "cutmix", "mixup-cutmix"):
            mixing = {
                "mixup": lambda: layers.MixUp(0.2, num_classes=k, seed=cfg.seed),
                "cutmix": lambda: layers.CutMix(1.0, num_classes=k, seed=cfg.seed),
                "mixup-cutmix": lambda: layers.MixUpOrCutMix(0.2, 1.0, num_classes=k,
                                                            seed=cfg.seed),
            }[cfg.augment]()
            model = models.AugmentedModel(net, mixing, name=f"{net.name}_augmented")
        clip = {}
        if cfg.clipnorm:
            clip["clipnorm"] = cfg.clipnorm
        if cfg.global_clipnorm:
            clip["global_clipnorm"] = cfg.global_clipnorm
        top = min(5, k)
        if onehot:
            loss = keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=cfg.label_smoothing)
            metrics = [keras.metrics.CategoricalAccuracy(name="top1"),
                       keras.metrics.TopKCategoricalAccuracy(top, name="top5")]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1"),
                       keras.metrics.SparseTopKCategoricalAccuracy(top, name="top5")]
        model.compile(optimizer=keras.optimizers.SGD(lr, momentum=cfg.momentum, **clip),
                      loss=loss, metrics=metrics, jit_compile=True if cfg.jit else "auto")
        # Mixing layers make sparse labels one-hot themselves; label smoothing alone needs
        # one-hot labels from the pipeline.
        self.onehot_pipeline = onehot and model is net
        return model

    def _pipelines(self, initial_epoch: int, epochs: int):
        """(train, steps per epoch or None, validation, test, probe batch) for the target task."""
        cfg = self.cfg
        k = self.num_classes if self.onehot_pipeline else None
        basic = cfg.augment == "basic"
        if self.is_numpy:
            x, y = self.target.train
            train, steps = _epoch_pipeline(x, y, self.plan.batch_size, cfg.seed, initial_epoch,
                                           epochs, onehot=k, basic=basic)
            val = _plain_pipeline(*self.target.validation, self.plan.batch_size, onehot=k)
            test = _plain_pipeline(*self.target.test, self.plan.batch_size, onehot=k)
            probe = _probe(self.target.validation, cfg.grad_probe, k)
            return train, steps, val, test, probe
        train = _map_dataset(self.target.train, onehot=k, basic=basic, seed=cfg.seed)
        val = _map_dataset(self.target.validation, onehot=k)
        test = None if self.target.test is None else _map_dataset(self.target.test, onehot=k)
        probe = _probe_from_dataset(self.target.validation, cfg.grad_probe, k)
        return train, None, val, test, probe

    def variant_plan(self, name: str):
        """(epochs, phases [(name, first, stop)], first learning rate, title) of a variant."""
        cfg = self.cfg
        epochs = cfg.head_epochs + cfg.fine_tune_epochs
        if name == "transfer":
            phases = [("head", 0, cfg.head_epochs), ("fine-tune", cfg.head_epochs, epochs)]
            lr = cfg.head_lr if cfg.head_epochs else cfg.fine_tune_lr
            title = (f"{name}: VGG19 ({_weights_label(self.plan, self.progress)}), phase 1 head "
                     f"only {cfg.head_epochs} epochs lr {cfg.head_lr:g}, phase 2 all layers "
                     f"{cfg.fine_tune_epochs} epochs lr {cfg.fine_tune_lr:g}")
        else:
            phases = [("scratch", 0, epochs)]
            lr = cfg.head_lr
            title = (f"{name}: VGG19 from random initialization, all layers, {epochs} epochs "
                     f"lr {cfg.head_lr:g} (the transfer run's step budget)")
        return epochs, [p for p in phases if p[2] > p[1]], lr, title

    def build_model(self, name: str, weights_file: str | None):
        """(the network, the compiled model to fit, fingerprint of the initial head).

        Built and compiled inside the distribution engine's scope (``--distribute``).
        """
        import keras

        _, _, lr, _ = self.variant_plan(name)
        keras.utils.set_random_seed(self.cfg.seed)
        with self.ctx.scope():
            return self._build_model(name, weights_file, lr)

    def _build_model(self, name: str, weights_file: str | None, lr: float):
        import keras
        import numpy as np

        from keras_recipes import runs
        from keras_recipes.applications import build_transfer_model

        cfg, plan = self.cfg, self.plan
        try:
            net = build_transfer_model(
                "vgg19", self.num_classes,
                input_shape=(plan.image_size, plan.image_size, 3),
                weights=weights_file, head=plan.head,
                freeze_backbone=name == "transfer" and cfg.head_epochs > 0,
                classifier_activation=None, name=f"vgg19_{name}",
            )
        except ValueError as err:
            raise RecipeError(f"--weights {weights_file}: {err}") from None
        net = _float32_logits(net, self.policy)
        # The new classifier starts at zero (as in Big Transfer, Kolesnikov et al. 2020): the
        # backbone's ReLU features are all >= 0 with a large common part, so a random Glorot
        # kernel starts with large class biases (measured on the digits default: initial val
        # loss 5.6 instead of ln 5 = 1.6, val top-1 11%), which 50 SGD steps at lr 1e-3 cannot
        # undo. A controlled comparison: every variant starts from this same head.
        for w in net.get_layer("predictions").weights:
            w.assign(keras.ops.zeros(w.shape, w.dtype))
        head_file = self.state_dir / "initial_head.npz"
        head_vars = _head_variables(net)
        if head_file.is_file():
            with np.load(head_file) as z:
                _assign(head_vars, [z[f"v{i}"] for i in range(len(z.files))], "head")
        elif self.writes:
            _savez(head_file, [keras.ops.convert_to_numpy(v.value) for v in head_vars])
        fp = runs.fingerprint([keras.ops.convert_to_numpy(v.value) for v in head_vars])
        return net, self._compile_model(net, lr), fp

    def make_callbacks(self, name: str, test, probe, resume_state, head_fingerprint: str):
        """(callbacks, chief_callbacks, checkpoint) of one variant.

        ``callbacks`` run in every process of a ``--distribute`` run, as they decide
        (unfreeze, early stopping) or evaluate (the checkpoint's phase reports) together;
        the checkpoint, last of them, writes its files only in the chief process.
        ``chief_callbacks`` (TensorBoard writers) run in the chief process only.
        """
        from keras_recipes import callbacks as kcb
        from keras_recipes import runs

        cfg = self.cfg
        _, phases, _, _ = self.variant_plan(name)
        log_dir = self.run_dir / "logs" / name
        stateful = {}
        cbs, chief = [], []
        if name == "transfer" and cfg.head_epochs and cfg.fine_tune_epochs:
            stateful["unfreeze"] = kcb.UnfreezeSchedule(
                "backbone", {cfg.head_epochs: "all"}, learning_rate=cfg.fine_tune_lr, verbose=1)
            cbs.append(stateful["unfreeze"])
        # TensorBoard, all written with the package's TensorFlow-free event writer:
        # gradients (histograms, norms, alerts), epoch scalars in the layout of
        # keras.callbacks.TensorBoard, and weight histograms (NumPy histograms: Keras's
        # TensorBoard(histogram_freq=1) costs about 7 s of CPU per epoch on VGG19's 20M weights).
        stateful["gradients"] = kcb.GradientHistogram(
            str(log_dir), data=probe, every="epoch", verbose=1)
        chief.append(stateful["gradients"])
        chief.append(runs.tensorboard_scalars(str(log_dir)))
        if cfg.histogram_freq:
            chief.append(weight_histograms(str(log_dir), cfg.histogram_freq))
        if cfg.patience and cfg.fine_tune_epochs:
            # Same rule for every variant: watch val_loss from the fine-tuning epochs on.
            stateful["early_stopping"] = kcb.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, start_from_epoch=cfg.head_epochs,
                verbose=1)
            cbs.append(stateful["early_stopping"])
        checkpoint = run_checkpoint(self, name, phases, stateful, test, resume_state,
                                    head_fingerprint=head_fingerprint)
        cbs.append(checkpoint)
        return cbs, chief, checkpoint

    def train_variant(self, name: str, weights_file: str | None):
        cfg = self.cfg
        epochs, _, _, title = self.variant_plan(name)
        print(f"\n== {title}")
        net, model, fp = self.build_model(name, weights_file)
        resume_state = self._resume_state(name)
        initial_epoch = 0 if resume_state is None else resume_state["epoch"] + 1
        train, steps, val, test, probe = self._pipelines(initial_epoch, epochs)
        cbs, chief, checkpoint = self.make_callbacks(name, test, probe, resume_state, fp)
        if resume_state is not None:
            checkpoint.restore_before_fit(model)
        if initial_epoch >= epochs or (resume_state or {}).get("stopped"):
            print(f"{name}: all epochs done before the interruption")
        else:
            self.ctx.fit(model, train, epochs=epochs, initial_epoch=initial_epoch,
                         steps_per_epoch=steps, validation_data=val, callbacks=cbs,
                         chief_callbacks=chief, shuffle=False, verbose=cfg.verbose)
        return checkpoint.finish(model, net, test, epochs)

    def _resume_state(self, name: str):
        ckpt = _latest_checkpoint(self.state_dir / name)
        if ckpt is None:
            return None
        state = json.loads((ckpt / "state.json").read_text())
        state["dir"] = str(ckpt)
        print(f"{name}: resuming after epoch {state['epoch'] + 1} from {ckpt}")
        return state

    # --------------------------------------------------------------- outputs
    def finish(self, status: int) -> None:
        import keras

        from keras_recipes import runs
        from keras_recipes.callbacks import plot_gradient_norms

        self._save_progress()
        if not self.writes:  # another process of a --distribute run: the chief reports
            return
        cfg, plan, prog = self.cfg, self.plan, self.progress
        rows = []
        for name, res in prog["variants"].items():
            for rec in res["history"]:
                rows.append({"variant": name, **rec})
        _write_csv(self.run_dir / "history.csv", rows)
        _plot_curves(self.run_dir / "curves.png", prog["variants"], cfg.head_epochs)
        grad_png = None
        if (self.run_dir / "logs" / "transfer" / "train").is_dir():
            try:
                grad_png = plot_gradient_norms(str(self.run_dir / "logs" / "transfer"),
                                               str(self.run_dir / "gradient_norms.png"))
            except (ValueError, OSError) as err:
                print(f"gradient_norms.png not written: {err}")
        summary = {
            "data": self.target.source if hasattr(self.target, "source") else plan.data,
            "data_choice": plan.data,
            "classes": self.target.class_names,
            "counts": dict(self.target.counts),
            "weights": _weights_label(plan, prog),
            "head": plan.head,
            "image_size": plan.image_size,
            "backend": keras.backend.backend(),
            "device": self.device,
            "dtype_policy": self.policy,
            "distribute": {"kind": self.ctx.kind, "replicas": self.ctx.num_replicas,
                           "processes": self.ctx.num_processes},
            "wall_seconds": prog["elapsed"],
            "sessions": prog["sessions"],
            "offline_notice": bool(plan.notice),
            "status": {0: "complete", EXIT_NONFINITE: "stopped: non-finite loss"}[status],
        }
        metrics = {
            "summary": summary,
            "source_task": prog.get("source"),
            "variants": prog["variants"],
            "complete": status == 0,
        }
        if "transfer" in prog["variants"] and "scratch" in prog["variants"]:
            t, s = prog["variants"]["transfer"]["final"], prog["variants"]["scratch"]["final"]
            metrics["transfer_minus_scratch"] = {
                k: _sub(t.get(k), s.get(k)) for k in ("val_top1", "val_top5", "test_top1",
                                                       "test_top5")}
        runs.save_json(self.run_dir / "metrics.json", metrics)
        self._print_summary(metrics, grad_png)

    def _print_summary(self, metrics, grad_png) -> None:
        s = metrics["summary"]
        print("\n" + "=" * 78)
        print(f"data:     {s['data']} ({s['data_choice']}; {len(s['classes'])} classes; "
              f"train/val/test {s['counts'].get('train')}/{s['counts'].get('validation')}/"
              f"{s['counts'].get('test')})")
        print(f"weights:  {s['weights']}; head {s['head']}; {s['image_size']}x"
              f"{s['image_size']}")
        d = s["distribute"]
        where = "" if d["replicas"] == 1 else (f"; {d['kind']} over {d['replicas']} replicas, "
                                               f"{d['processes']} process(es)")
        print(f"backend:  {s['backend']} on {s['device']}; dtype policy {s['dtype_policy']}"
              f"{where}")
        print(f"wall:     {s['wall_seconds']:.0f} s in {s['sessions']} session(s); status "
              f"{s['status']}")
        src = metrics.get("source_task")
        if src:
            how = "cached" if src.get("cached") else f"trained in {src['seconds']:.0f} s"
            print(f"source:   digits 0-4, val top-1 {src['val_top1']:.3f} ({how})")
        for name, res in metrics["variants"].items():
            for ph in res["phases"]:
                print(f"{name:9s} {_phase_line(ph)}")
            f = res["final"]
            print(f"{name:9s} best epoch {f['best_epoch']}: val top-1 {_pct(f['val_top1'])} "
                  f"top-5 {_pct(f['val_top5'])} | test top-1 {_pct(f.get('test_top1'))} "
                  f"top-5 {_pct(f.get('test_top5'))} | {res['images_per_second']:.1f} img/s | "
                  f"stop: {res['stop_reason']}")
        diff = metrics.get("transfer_minus_scratch")
        if diff:
            print(f"transfer - scratch: test top-1 {_pts(diff['test_top1'])}, val top-1 "
                  f"{_pts(diff['val_top1'])}")
        print("=" * 78)
        rd = self.run_dir
        print(f"outputs in {rd}:")
        for f in ("config.json", "metrics.json", "history.csv", "curves.png",
                  "gradient_norms.png", "best.keras", "best_check.npz", "logs"):
            if (rd / f).exists():
                print(f"  {rd / f}")
        print(f"TensorBoard: tensorboard --logdir {rd / 'logs'}")
        if grad_png is None and not (rd / "gradient_norms.png").exists():
            print("  (no gradient norms were logged)")


# ------------------------------------------------------------ checkpoint callback
def _make_checkpoint_class():
    import keras

    from keras_recipes.backend import to_host
    from keras_recipes.callbacks.event_writer import EventWriter

    class _RunCheckpoint(keras.callbacks.Callback):
        """Per-epoch checkpoint, resume, best model, phase summaries and NaN guard.

        At the end of every epoch it writes ``state/<variant>/epoch-NNNN/`` atomically
        (a temporary folder renamed): ``model/`` (every model variable, seed
        states included), ``optimizer/`` (the optimizer in use, whatever
        ``UnfreezeSchedule`` made it), ``best/`` (weights of the best epoch by
        val top-1), one ``vNNNNN.npy`` file per variable, and ``state.json``
        (epoch, history, the states of ``UnfreezeSchedule``, ``EarlyStopping``...).
        A variable whose value has not changed since the previous checkpoint (the
        frozen backbone during the head phase) is a hard link to the previous
        checkpoint's file, not a new copy. A resumed run restores the weights
        before ``fit`` and, at ``on_train_begin`` (after the other callbacks have
        re-applied their state), the optimizer variables.

        ``async_safe``: its per-batch work (batch count, NaN guard) is thread-safe, so on
        torch and jax Keras runs it in a worker thread and keeps dispatching training steps
        meanwhile; a per-batch hook without it makes Keras call it synchronously and wait
        for every step's loss before dispatching the next (on an H200 under jax, before this
        flag, the recipe's epoch took 1.72x a bare ``fit``'s, of which the timed end-of-epoch
        work explained 0.22 of the 0.56 s). Keras waits for these calls before
        ``on_epoch_end``; a NaN loss stops training at most a few steps after the batch that
        produced it, which is the batch reported. The hook never touches the model's state
        (on jax, ``Callback.model`` would sync it from the worker thread).
        """

        async_safe = True

        def __init__(self, recipe, variant, phases, stateful, test, resume, head_fingerprint):
            super().__init__()
            self.recipe = recipe
            self.variant = variant
            self.phases = phases
            self.stateful = stateful
            self.test = test
            self.resume = resume
            self.head_fingerprint = head_fingerprint
            self.dir = recipe.state_dir / variant
            if recipe.writes:
                self.dir.mkdir(parents=True, exist_ok=True)
            r = resume or {}
            self.history = list(r.get("history", []))
            self.phase_reports = list(r.get("phase_reports", []))
            self.best = r.get("best")
            self.stop_reason = r.get("stop_reason")
            self.nonfinite = None
            self.train_seconds = float(r.get("train_seconds", 0.0))
            self.train_images = int(r.get("train_images", 0))
            self._kill = _kill_point(variant)
            self._epoch = None
            self._epoch_start = None
            self._train_end = None
            self._batches = 0
            self._batch_lock = threading.Lock()  # batch hooks run in Keras's worker threads
            self._writer = None
            self._write_error = None
            self._best_arrays = None
            self._last = {}  # "model"/"optimizer" -> host copies of the last checkpoint's values
            if resume is not None:
                self._best_arrays = _load_arrays(Path(resume["dir"]), "best")

        # ---------------------------------------------------------- resume
        def restore_before_fit(self, model):
            values = _load_arrays(Path(self.resume["dir"]), "model") or []
            _assign(model.variables, values, "model")
            for key, cb in self.stateful.items():
                state = self.resume.get("callbacks", {}).get(key)
                if state is not None:
                    cb.set_state(state)

        def on_train_begin(self, logs=None):
            if self.resume is None:
                return
            # UnfreezeSchedule has re-applied its stages (and built the optimizer it
            # uses) in its own on_train_begin, which ran before this one.
            opt = self.model.optimizer
            if not opt.built:
                opt.build(self.model.trainable_variables)
            values = _load_arrays(Path(self.resume["dir"]), "optimizer") or []
            _assign(opt.variables, values, "optimizer")
            self.resume = None

        # ------------------------------------------------------ per epoch
        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            self._epoch_start = time.time()
            self._train_end = None
            self._batches = 0

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            bad = loss is not None and not math.isfinite(float(loss))  # waits for this step
            with self._batch_lock:  # several batches' calls may run at once
                self._batches = max(self._batches, int(batch) + 1)
                if bad and (self.nonfinite is None or batch < self.nonfinite["batch"]):
                    self.nonfinite = {"epoch": self._epoch, "batch": int(batch)}
                    # `self._model`, not `self.model`: on jax that property syncs the
                    # training state into the variables, which from this worker thread
                    # races the next step (it donates those buffers: "Buffer has been
                    # deleted or donated", seen in CI). The trainer reads this flag itself.
                    self._model.stop_training = True
            if self._kill is not None and self._kill == (self._epoch, batch):
                # Deterministic for the test: the previous epoch's checkpoint and
                # TensorBoard events are on disk.
                self.wait_for_writes()
                EventWriter.wait_all()
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        def on_test_begin(self, logs=None):
            if self._train_end is None and self._epoch_start is not None:
                self._train_end = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            now = time.time()
            train_end = self._train_end or now
            train_s = train_end - (self._epoch_start or now)
            n_images = self._epoch_images()
            self.train_seconds += train_s
            self.train_images += n_images
            phase = self._phase(epoch)
            lr = self.model.optimizer.learning_rate
            record = {
                "epoch": epoch + 1,
                "phase": phase,
                **{k: float(v) for k, v in logs.items() if _is_number(v)},
                "learning_rate": float(keras.ops.convert_to_numpy(lr)),
                "seconds": now - (self._epoch_start or now),
                "train_seconds": train_s,
                "images_per_second": n_images / train_s if train_s > 0 else None,
            }
            self.history.append(record)
            if self.nonfinite is not None:
                self.stop_reason = "non_finite_loss"
                print(f"\n{self.variant}: the training loss became non-finite at epoch "
                      f"{epoch + 1}, batch {self.nonfinite['batch'] + 1}: training stopped. "
                      "The best model before it is kept. Lower the learning rate or use "
                      "--clipnorm / --global-clipnorm.")
                return  # no checkpoint of NaN weights
            val = record.get("val_top1")
            if val is not None and (self.best is None or val > self.best["val_top1"]):
                self.best = {"epoch": epoch + 1, "val_top1": val,
                             "val_top5": record.get("val_top5"),
                             "val_loss": record.get("val_loss")}
                self._best_arrays = _to_numpy(v.value for v in self.model.variables)
                best_changed = True
            else:
                best_changed = False
            end = next((p for p in self.phases if p[2] == epoch + 1), None)
            es = self.stateful.get("early_stopping")
            stopping = bool(self.model.stop_training)
            if end is not None or stopping:
                self._phase_report(phase, epoch, record)
            if stopping and es is not None and es.stop_reason:
                self.stop_reason = f"early_stopping:{es.stop_reason}"
            self._save(epoch, best_changed)

        def _epoch_images(self):
            steps = self._batches
            r = self.recipe
            if r.is_numpy:
                n = len(r.target.train[0])
                bs = r.plan.batch_size
                full = math.ceil(n / bs)
                return n if steps >= full else steps * bs
            return steps * r.plan.batch_size

        def _phase(self, epoch):
            for name, start, stop in self.phases:
                if start <= epoch < stop:
                    return name
            return self.phases[-1][0]

        def _phase_report(self, phase, epoch, record):
            test = self._evaluate(self.test)
            recs = [h for h in self.history if h["phase"] == phase]
            secs = sum(h["train_seconds"] for h in recs)
            imgs = sum((h["images_per_second"] or 0) * h["train_seconds"] for h in recs)
            report = {
                "phase": phase,
                "epochs": f"{recs[0]['epoch']}-{recs[-1]['epoch']}",
                "val_loss": record.get("val_loss"),
                "val_top1": record.get("val_top1"),
                "val_top5": record.get("val_top5"),
                "test_top1": test.get("top1"),
                "test_top5": test.get("top5"),
                "train_seconds": secs,
                "images_per_second": imgs / secs if secs else None,
            }
            self.phase_reports.append(report)
            print(f"\n{self.variant} {_phase_line(report)}")

        def _evaluate(self, data, model=None):
            """Metrics on `data`: inside fit with the model's own (engine's) test step,
            after fit (`model` given) through the distribution engine."""
            if data is None:
                return {}
            if model is None:
                out = self.model.evaluate(data, verbose=0, return_dict=True)
            else:
                out = self.recipe.ctx.evaluate(model, data, verbose=0)
            return {k: float(v) for k, v in out.items()}

        def _save(self, epoch, best_changed):
            """Snapshots the state now; a background thread writes it while training goes on.

            The folder appears under its final name only once complete (rename), so a kill
            during the write leaves the previous epoch's checkpoint as the newest one.
            """
            if not self.recipe.writes:  # another process of a --distribute run
                return
            model_values = self._snapshot("model", self.model.variables)
            opt_values = self._snapshot("optimizer", self.model.optimizer.variables)
            state = json.loads(json.dumps({
                "variant": self.variant,
                "epoch": epoch,
                "history": self.history,
                "phase_reports": self.phase_reports,
                "best": self.best,
                "stop_reason": self.stop_reason,
                "stopped": bool(self.model.stop_training),
                "train_seconds": self.train_seconds,
                "train_images": self.train_images,
                "callbacks": {k: cb.get_state() for k, cb in self.stateful.items()
                              if hasattr(cb, "get_state")},
            }))
            best = None if best_changed else self._best_arrays
            self.wait_for_writes()
            self._writer = threading.Thread(
                target=self._write, args=(epoch, model_values, opt_values, best, state),
                name="checkpoint-writer", daemon=True)
            self._writer.start()

        def _snapshot(self, kind, variables):
            """``(values, changed)``: host copies, each flagged as changed since the last
            checkpoint or not (then its file is linked, not written again)."""
            last = self._last.get(kind, [])
            values = []
            for i, v in enumerate(variables):
                a = to_host(v.value)
                prev = last[i] if i < len(last) else None
                if prev is not None and _same_values(a, prev):
                    values.append((prev, False))
                else:
                    values.append((a, True))
            self._last[kind] = [a for a, _ in values]
            return values

        def _write(self, epoch, model_values, opt_values, best, state):
            try:
                tmp = self.dir / f".epoch-{epoch:04d}.tmp"
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir()
                prev = _latest_checkpoint(self.dir)
                _save_arrays(tmp / "model", model_values, prev and prev / "model")
                _save_arrays(tmp / "optimizer", opt_values, prev and prev / "optimizer")
                # Hard links, not copies: the best weights are this epoch's or an earlier one's.
                if best is None and self._best_arrays is not None:
                    _link_arrays(tmp / "model", tmp / "best")
                elif prev is not None and (prev / "best").is_dir():
                    _link_arrays(prev / "best", tmp / "best")
                elif prev is not None and (prev / "best.npz").is_file():  # an older layout
                    os.link(prev / "best.npz", tmp / "best.npz")
                elif best is not None:
                    _save_arrays(tmp / "best", [(a, True) for a in best], None)
                _atomic_json(tmp / "state.json", state)
                final = self.dir / f"epoch-{epoch:04d}"
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
                for old in self.dir.glob("epoch-*"):
                    if old != final:
                        shutil.rmtree(old, ignore_errors=True)
                self.recipe._save_progress()
            except BaseException as err:  # reported by wait_for_writes, in the main thread
                self._write_error = err

        def wait_for_writes(self):
            """Blocks until the last checkpoint is on disk; raises if writing it failed."""
            if self._writer is not None:
                self._writer.join()
                self._writer = None
            if self._write_error is not None:
                err, self._write_error = self._write_error, None
                raise RecipeError(f"Could not write the checkpoint in {self.dir}: {err}")

        def on_train_end(self, logs=None):
            self.wait_for_writes()

        # ---------------------------------------------------------- final
        def finish(self, model, net, test, epochs):
            """Best weights back in, test metrics, best.keras; returns the variant's results."""
            self.wait_for_writes()
            r = self.recipe
            if self._best_arrays is not None:
                _assign(model.variables, self._best_arrays, "best weights")
            final = {"best_epoch": None, "val_top1": None, "val_top5": None}
            if self.best is not None:
                final.update(best_epoch=self.best["epoch"], val_top1=self.best["val_top1"],
                             val_top5=self.best["val_top5"], val_loss=self.best["val_loss"])
            test_metrics = self._evaluate(test, model)
            final.update(test_top1=test_metrics.get("top1"), test_top5=test_metrics.get("top5"),
                         test_loss=test_metrics.get("loss"))
            if self.variant == "transfer":
                if r.writes:
                    path = r.run_dir / "best.keras"
                    tmp = r.run_dir / ".best.tmp.keras"
                    net.save(str(tmp))
                    os.replace(tmp, path)
                # Every process predicts (under MultiWorkerMirroredStrategy predict runs
                # over all workers' replicas); the chief writes.
                check = _check_outputs(net, r)
                if r.writes:
                    _save_check(r.run_dir / "best_check.npz", check)
            if self.stop_reason is None:
                self.stop_reason = "completed" if self.history and (
                    self.history[-1]["epoch"] == epochs) else "stopped"
            unfreeze = self.stateful.get("unfreeze")
            return {
                "complete": True,
                "history": self.history,
                "phases": self.phase_reports,
                "final": final,
                "stop_reason": self.stop_reason,
                "nonfinite": self.nonfinite,
                "train_seconds": self.train_seconds,
                "images_per_second": (self.train_images / self.train_seconds
                                      if self.train_seconds else 0.0),
                "unfreeze_events": getattr(unfreeze, "events", None),
                "initial_head_fingerprint": self.head_fingerprint,
                "gradient_alerts": _alerts(self.stateful.get("gradients")),
            }

    return _RunCheckpoint


def _make_weight_histograms_class():
    import keras

    from keras_recipes.backend import to_host
    from keras_recipes.callbacks.event_writer import EventWriter, histogram_buckets

    class _WeightHistograms(keras.callbacks.Callback):
        """Histograms of every weight every `freq` epochs, tags as keras.callbacks.TensorBoard's
        (``<weight path>/histogram`` in ``log_dir/train``), written without TensorFlow.

        A weight whose values have not changed since its last histogram (a frozen
        backbone during the head phase) gets the same buckets again without being
        copied or bucketed a second time.
        """

        def __init__(self, log_dir: str, freq: int):
            super().__init__()
            self.log_dir, self.freq = log_dir, freq
            self.writer = None
            self._last = {}  # tag -> the values of its last histogram (a host copy)
            self._buckets = {}  # tag -> their buckets (filled in the writer's thread)
            self.reused = 0  # histograms written again without bucketing (for tests)

        def on_epoch_end(self, epoch, logs=None):
            if epoch % self.freq:
                return
            if self.writer is None:  # buckets and writes in a background thread
                self.writer = EventWriter(os.path.join(self.log_dir, "train"), background=True)
            weights = []  # (tag, values to bucket, or None: unchanged)
            for w in self.model.weights:
                tag = w.path.replace(":", "_") + "/histogram"
                values = to_host(w.value)  # not a view that training updates in place
                last = self._last.get(tag)
                if last is not None and _same_values(values, last):
                    weights.append((tag, None))
                    self.reused += 1
                    continue
                self._last[tag] = values
                weights.append((tag, values))
            cache = self._buckets

            def histograms():
                out = []
                for tag, values in weights:
                    if values is not None:  # jobs run in order: an unchanged tag's are set
                        cache[tag] = histogram_buckets(values)[0]
                    out.append(EventWriter.histogram_value(tag, cache[tag]))
                return out

            self.writer.submit(histograms, epoch)
            self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()
                self.writer = None

    return _WeightHistograms


def _same_values(a, b) -> bool:
    """Whether two arrays hold the same values; a differing head is found without a full pass."""
    import numpy as np

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.reshape(-1), b.reshape(-1)
    head = min(a.size, 4096)
    return bool(np.array_equal(a[:head], b[:head]) and np.array_equal(a, b))


_CLASSES: dict = {}


def run_checkpoint(*args, **kwargs):
    """A ``_RunCheckpoint`` callback (its class is defined once Keras is imported)."""
    if "checkpoint" not in _CLASSES:
        _CLASSES["checkpoint"] = _make_checkpoint_class()
    return _CLASSES["checkpoint"](*args, **kwargs)


def weight_histograms(log_dir: str, freq: int):
    """A callback writing weight histograms to TensorBoard every `freq` epochs."""
    if "weights" not in _CLASSES:
        _CLASSES["weights"] = _make_weight_histograms_class()
    return _CLASSES["weights"](log_dir, freq)


# --------------------------------------------------------------------- helpers
def _distribute_context(kind: str):
    """keras_recipes.distribute.setup(kind), its refusals as a RecipeError."""
    from keras_recipes.distribute import setup

    try:
        return setup(kind)
    except ValueError as err:
        raise RecipeError(f"--distribute {kind}: {err}") from None


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _offline_notice(missing: list[str], cfg) -> str:
    bar = "!" * 78
    what = "\n".join("  - " + m.splitlines()[0] for m in missing)
    return (
        f"\n{bar}\nOFFLINE: the course's run (Oxford Flowers-102 + VGG19 ImageNet weights) cannot "
        f"run here:\n{what}\n"
        "To run it, place the files named above in the Keras cache ($KERAS_HOME, default "
        "~/.keras), or pass --weights PATH (a VGG19 .h5/.weights.h5 file) and --data PATH (a "
        "folder of class sub-folders, e.g. Flowers-102 arranged by class).\n"
        "Running the EMBEDDED DEFAULT instead, a real transfer on bundled data: VGG19 trained "
        f"on digits 0-4 (the source task, cached in {cfg.out}/_cache), fine-tuned on digits 5-9 "
        f"with {cfg.train_per_class} labelled images per class in the same two phases, next to "
        f"a VGG19 trained from scratch with the same step budget.\n{bar}\n"
    )


def _weights_label(plan: Plan, progress: dict) -> str:
    if plan.weights == "imagenet":
        return f"ImageNet ({plan.weights_file})"
    if plan.weights == "source":
        src = progress.get("source") or {}
        return (f"VGG19 trained on digits 0-4 by this recipe "
                f"(source val top-1 {src.get('val_top1', float('nan')):.3f}; {src.get('path')})")
    if plan.weights == "none":
        return "none (random initialization)"
    return f"file {plan.weights_file}"


def _phase_line(ph: dict) -> str:
    ips = ph.get("images_per_second")
    return (f"phase {ph['phase']} (epochs {ph['epochs']}): val top-1 {_pct(ph['val_top1'])} "
            f"top-5 {_pct(ph['val_top5'])} | test top-1 {_pct(ph.get('test_top1'))} top-5 "
            f"{_pct(ph.get('test_top5'))} | {ph['train_seconds']:.0f} s training"
            + (f", {ips:.1f} img/s" if ips else ""))


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _pts(v) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f} points"


def _sub(a, b):
    return None if a is None or b is None else a - b


def _is_number(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _alerts(cb):
    if cb is None:
        return None
    alerts = getattr(cb, "alerts", None)
    try:
        return json.loads(json.dumps(alerts, default=str))
    except (TypeError, ValueError):
        return str(alerts)


def _kill_point(variant: str):
    spec = os.environ.get(KILL_ENV, "")
    if not spec:
        return None
    name, epoch, batch = spec.split(":")
    return (int(epoch), int(batch)) if name == variant else None


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _atomic_json(path: Path, obj) -> None:
    from keras_recipes import runs

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    runs.save_json(tmp, obj)
    os.replace(tmp, path)


def _latest_checkpoint(folder: Path):
    done = sorted(p for p in folder.glob("epoch-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _to_numpy(values) -> list:
    """Host copies of tensors (snapshots: later in-place updates do not reach them)."""
    from keras_recipes.backend import to_host

    return [to_host(v) for v in values]


def _array_file(folder: Path, i: int) -> Path:
    return folder / f"v{i:05d}.npy"


def _save_arrays(folder: Path, values, previous) -> None:
    """One ``.npy`` per ``(array, changed)``; unchanged ones hard-linked from `previous`."""
    import numpy as np

    folder.mkdir()
    for i, (array, changed) in enumerate(values):
        path = _array_file(folder, i)
        if not changed and previous is not None and _array_file(previous, i).is_file():
            os.link(_array_file(previous, i), path)
        else:
            with open(path, "wb") as f:
                np.save(f, array, allow_pickle=False)


def _link_arrays(source: Path, folder: Path) -> None:
    folder.mkdir()
    for path in sorted(source.glob("v*.npy")):
        os.link(path, folder / path.name)


def _load_arrays(checkpoint: Path, kind: str):
    """The arrays of ``checkpoint/kind/`` (or of an older ``kind.npz``); None if absent."""
    import numpy as np

    folder = checkpoint / kind
    if folder.is_dir():
        count = len(list(folder.glob("v*.npy")))
        return [np.load(_array_file(folder, i), allow_pickle=False) for i in range(count)]
    if (checkpoint / f"{kind}.npz").is_file():
        with np.load(checkpoint / f"{kind}.npz") as z:
            return [z[f"v{i}"] for i in range(len(z.files))]
    return None


def _savez(path: Path, arrays: list) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **{f"v{i}": np.asarray(a) for i, a in enumerate(arrays)})


def _assign(variables, values, what: str) -> None:
    if len(variables) != len(values):
        raise RecipeError(
            f"--resume: the checkpoint holds {len(values)} {what} variables but the model has "
            f"{len(variables)}; the run folder was made by another configuration or version."
        )
    for v, a in zip(variables, values, strict=True):
        if tuple(v.shape) != tuple(a.shape):
            raise RecipeError(
                f"--resume: {what} variable {v.path} has shape {tuple(v.shape)} but the "
                f"checkpoint holds {tuple(a.shape)}."
            )
        v.assign(a)


def _head_variables(net) -> list:
    return [w for layer in net.layers if layer.name != "backbone" for w in layer.weights]


def _float32_logits(net, policy: str):
    """Mixed precision: make the logits float32 (softmax and loss in full precision)."""
    import keras

    if policy == "float32":
        return net
    out = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(net.output)
    return keras.Model(net.input, out, name=net.name)


def _check_outputs(net, recipe) -> dict | None:
    """8 validation inputs and the model's outputs for them (to check a reload).

    Under several JAX processes Keras's ``predict`` cannot gather outputs sharded
    over the processes (``np.concatenate`` of non-addressable arrays): the chief
    predicts on one device with the ``best.keras`` it just saved (the same
    weights), the other processes return None.
    """
    import keras
    import numpy as np

    if not recipe.ctx.predict_gathers:
        if not recipe.writes:
            return None
        net = keras.saving.load_model(recipe.run_dir / "best.keras")
    if recipe.is_numpy:
        x = recipe.target.validation[0][:8]
    else:
        x = next(iter(recipe.target.validation))[0][:8]
        x = np.asarray(x)
    return {"x": x, "y": np.asarray(net.predict(x, verbose=0))}


def _save_check(path: Path, check: dict) -> None:
    import numpy as np

    np.savez(path, **check)


def _limit_splits(splits, limit: int, seed: int, train: bool = True):
    """The first `limit` images of each split (NumPy splits), keeping the class balance."""
    if not limit:
        return splits
    import numpy as np

    def cut(xy):
        x, y = xy
        if len(x) <= limit:
            return xy
        rng = np.random.default_rng(seed)
        per_class = [rng.permutation(np.flatnonzero(y == k)) for k in np.unique(y)]
        order = [i for group in zip(*per_class, strict=False) for i in group]
        keep = np.sort(np.asarray(order[:limit]))
        return x[keep], y[keep]

    parts = {name: getattr(splits, name) for name in ("train", "validation", "test")}
    for name in parts:
        if name != "train" or train:
            parts[name] = cut(parts[name])
    counts = {name: len(v[0]) for name, v in parts.items()}
    return dataclasses.replace(splits, **parts, counts=counts)


def _limit_dataset_splits(splits, limit: int, batch_size: int):
    batches = max(1, math.ceil(limit / batch_size))
    parts = {}
    for name in ("train", "validation", "test"):
        ds = getattr(splits, name)
        parts[name] = None if ds is None else ds.take(batches)
    counts = {k: min(v, batches * batch_size) for k, v in splits.counts.items()}
    return dataclasses.replace(splits, **parts, counts=counts)


def _tf_data_available() -> bool:
    """Whether TensorFlow is installed: its tf.data feeds the recipe under every backend
    (batches prepared in parallel threads); without it (a torch or jax-only machine) the
    in-memory data sets go through ``keras_recipes.data.epoch_batches``, same batches."""
    return importlib.util.find_spec("tensorflow") is not None


def _epoch_pipeline(x, y, batch_size, seed, initial_epoch, epochs, onehot=None, basic=False):
    """Training batches for epochs [initial_epoch, epochs): the order of epoch e depends only
    on (seed, e), so a resumed run sees exactly the batches an uninterrupted one would."""
    import numpy as np

    n = len(x)
    steps = math.ceil(n / batch_size)
    if not _tf_data_available():
        from keras_recipes.data import epoch_batches

        return epoch_batches(x, y, batch_size, seed=seed, initial_epoch=initial_epoch,
                             epochs=epochs, transform=_numpy_transform(onehot, basic, seed)), steps
    import tensorflow as tf

    perms = np.stack([np.random.default_rng([seed, e]).permutation(n)
                      for e in range(max(epochs, 1))]).astype("int64")
    xs, ys = tf.constant(x), tf.constant(y)
    table = tf.constant(perms)
    ds = tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch + 1)).flat_map(
        lambda e: tf.data.Dataset.from_tensor_slices(tf.gather(table, e)).batch(batch_size))
    ds = ds.map(lambda idx: (tf.gather(xs, idx), tf.gather(ys, idx)))
    ds = _augment_map(ds, onehot, basic, seed)
    return ds.prefetch(tf.data.AUTOTUNE), steps


def _plain_pipeline(x, y, batch_size, onehot=None):
    if not _tf_data_available():
        from keras_recipes.data import epoch_batches

        return epoch_batches(x, y, batch_size, seed=None,
                             transform=_numpy_transform(onehot, False, 0))
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return _augment_map(ds, onehot, False, 0).cache().prefetch(tf.data.AUTOTUNE)


def _basic_augmentation(seed):
    """--augment basic: random horizontal flip, contrast and brightness (images 0-255)."""
    import keras

    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    contrast = keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 1)
    bright = keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 2)
    return lambda a: bright(contrast(flip(a, training=True), training=True), training=True)


def _numpy_transform(onehot, basic, seed):
    """The NumPy pipeline's version of _augment_map: the same one-hot labels; the same basic
    augmentation layers, run by the backend in the data thread (their random draws differ
    from tf.data's)."""
    if not onehot and not basic:
        return None
    import numpy as np

    from keras_recipes.backend import to_host

    augment = _basic_augmentation(seed) if basic else None
    eye = np.eye(onehot, dtype="float32") if onehot else None

    def transform(xb, yb):
        if augment is not None:
            xb = to_host(augment(xb)).astype(xb.dtype, copy=False)
        if eye is not None:
            yb = eye[np.asarray(yb).astype("int64")]
        return xb, yb

    return transform


def _map_dataset(ds, onehot=None, basic=False, seed=0):
    return _augment_map(ds, onehot, basic, seed)


def _augment_map(ds, onehot, basic, seed):
    import tensorflow as tf

    if basic:
        augment = _basic_augmentation(seed)
        ds = ds.map(lambda a, b: (augment(a), b), num_parallel_calls=tf.data.AUTOTUNE)
    if onehot:
        ds = ds.map(lambda a, b: (a, tf.one_hot(tf.cast(b, tf.int32), onehot)))
    return ds


def _probe(xy, n, onehot):
    if not n:
        return None
    import numpy as np

    x, y = xy[0][:n], xy[1][:n]
    if onehot:
        y = np.eye(onehot, dtype="float32")[y]
    return x, y


def _probe_from_dataset(ds, n, onehot):
    if not n:
        return None
    import numpy as np

    xs, ys, have = [], [], 0
    for xb, yb in ds:
        xs.append(np.asarray(xb))
        ys.append(np.asarray(yb))
        have += len(xs[-1])
        if have >= n:
            break
    x, y = np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    if onehot:
        y = np.eye(onehot, dtype="float32")[y]
    return x, y


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _plot_curves(path: Path, variants: dict, unfreeze_epoch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"transfer": "-", "scratch": "--"}
    for name, res in variants.items():
        h = res["history"]
        ep = [r["epoch"] for r in h]
        for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "top1", "top-1")):
            ax.plot(ep, [r.get(key) for r in h], styles.get(name, "-"), color="tab:blue",
                    label=f"{name} train {label}")
            ax.plot(ep, [r.get("val_" + key) for r in h], styles.get(name, "-"),
                    color="tab:orange", label=f"{name} val {label}")
    for ax, title in ((axes[0], "loss"), (axes[1], "top-1 accuracy")):
        if "transfer" in variants and unfreeze_epoch:
            ax.axvline(unfreeze_epoch + 0.5, color="gray", linestyle=":",
                       label=f"unfreeze (after epoch {unfreeze_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
