"""Transfer learning with VGG19: the course's two-phase fine-tuning, end to end.

Replace VGG19's classifier, train the new head with the backbone frozen (phase 1,
"warm-up"), then unfreeze everything and continue with a 10x smaller learning rate
(phase 2), reporting top-1 and top-5 every epoch (docs/techniques.md §5). Both phases
run in one ``fit`` (``UnfreezeSchedule``), with ``EarlyStopping`` in phase 2, gradient and
weight histograms for TensorBoard and ``RunCheckpoint``, together kept to 5% of the training
time (``--monitor-budget``): run the same command with ``--resume`` after a crash and
training continues from the last checkpoint.

Online it is the course's run: Oxford Flowers-102 with ImageNet weights, SGD momentum
0.9, lr 1e-3 for 10 epochs then 1e-4 for 10 (the course reached 89.2% then 92.5%
validation top-1). Offline it says so and runs the embedded default instead: VGG19
trained on digits 0-4 (cached), transferred to digits 5-9 with 10 labelled images
per class, beside a VGG19 trained from scratch with the same step budget.

    python recipes/transfer_vgg19.py                # course run online, digits offline
    python recipes/transfer_vgg19.py --smoke        # tiny end-to-end run
    python recipes/transfer_vgg19.py --resume       # continue the newest run in runs/
    python recipes/transfer_vgg19.py --data ~/flowers --weights ~/vgg19_notop.h5 --head gap
    python recipes/transfer_vgg19.py --backend jax --mixed-precision --jit   # a GPU
    KERAS_BACKEND=torch torchrun --nproc_per_node=4 recipes/transfer_vgg19.py --distribute ddp

Outputs go to ``runs/transfer_vgg19-<date>-<time>/``: ``config.json``, ``metrics.json``,
``history.csv``, ``curves.png``, ``gradient_norms.png``, ``logs/`` (TensorBoard),
``best.keras`` (best epoch by val top-1, outputs logits), ``best_check.npz`` and
``state/`` (checkpoints). Exit status: 0 done, 2 bad input, 3 non-finite loss.

Embedded default, torch, 2-core AMD EPYC CPU, 2026-12-07 (218 s on the idle machine; the
source task reached 100% val top-1; benchmarks/results/transfer_vgg19_default.md):

| variant  | val top-1 (best epoch) | test top-1 |
|----------|------------------------|------------|
| transfer | 61.1% (9)              | 58.5%      |
| scratch  | 37.0% (18)             | 36.3%      |
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # the backend is chosen before Keras is imported
    from _bootstrap import choose_backend

    choose_backend(sys.argv[1:], resume_name="transfer_vgg19", quiet_tensorflow=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_recipes import applications, distribute, experiments, layers, models  # noqa: E402
from keras_recipes import backend as kbackend  # noqa: E402
from keras_recipes import callbacks as kcb  # noqa: E402
from keras_recipes import data as kdata  # noqa: E402
from keras_recipes.experiments import option  # noqa: E402

NAME = "transfer_vgg19"
SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
AUGMENTS = ("none", "basic", "mixup", "cutmix", "mixup-cutmix")
EXIT_BAD_INPUT, EXIT_NONFINITE = experiments.EXIT_BAD_INPUT, 3
RecipeError = experiments.RecipeError


@dataclasses.dataclass
class Defaults:
    # -- data and model ("auto": the course's run, or the embedded default offline)
    data: str = option("auto", "auto | flowers102 | tf_flowers | digits | PATH (class sub-folders)")
    weights: str = option("auto", "auto | imagenet | none | PATH (VGG19 .h5/.weights.h5); auto: "
                          "ImageNet, or VGG19 trained on digits 0-4 for --data digits")
    head: str = option("auto", "imagenet (VGG19's 4096-unit layers, 224x224) | gap | auto",
                       choices=("auto", "imagenet", "gap"))
    image_size: int = option(0, "input side in pixels, >= 32 (0: 224, or 32 on digits)",
                             minimum=0)
    # -- the two phases (the course's settings)
    head_epochs: int = option(10, "phase 1: epochs training the new head only", minimum=0)
    fine_tune_epochs: int = option(10, "phase 2: epochs training all layers", minimum=0)
    head_lr: float = option(1e-3, "phase 1 SGD learning rate", above=0)
    fine_tune_lr: float = option(1e-4, "phase 2 SGD learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, below=1)
    batch_size: int = option(0, "batch size (0: 32, or 10 on digits)", minimum=0)
    patience: int = option(5, "phase 2 early stopping on val_loss (0: off)", minimum=0)
    # -- regularization
    augment: str = option("none", " | ".join(AUGMENTS) + " (basic: flip, contrast, brightness)",
                          choices=AUGMENTS)
    label_smoothing: float = option(0.0, "label smoothing epsilon in [0, 1)", minimum=0, below=1)
    clipnorm: float = option(0.0, "clip each gradient tensor to this norm (0: off)", minimum=0)
    global_clipnorm: float = option(0.0, "clip the global gradient norm (0: off)", minimum=0)
    # -- embedded default (digits)
    source_epochs: int = option(2, "digits: epochs of the source task (digits 0-4, Adam)",
                                minimum=1)
    source_lr: float = option(1e-4, "digits: Adam learning rate of the source task", above=0)
    train_per_class: int = option(10, "digits: labelled training images per target class",
                                  minimum=1)
    scratch: str = option("auto", "auto | yes | no: also train VGG19 from scratch (auto: digits)",
                          choices=("auto", "yes", "no"))
    limit: int = option(0, "use at most N images per split (0: all)", minimum=0)
    # -- monitoring
    grad_probe: int = option(0, "held-out images whose gradients are logged each epoch "
                             "(0: the last training step's)", minimum=0)
    histogram_freq: int = option(1, "weight histograms every N epochs (0: off)", minimum=0)
    monitor_budget: float = option(0.05, "most of the training time histograms and checkpoints "
                                   "may take; epochs beyond it skip them (0: no limit)",
                                   minimum=0, below=1)
    # -- execution
    mixed_precision: bool = option(False, "mixed_float16 on GPU, mixed_bfloat16 on CPU")
    jit: bool = option(False, "jit_compile=True (XLA on tensorflow/jax, torch.compile)")
    backend: str = option(os.environ.get("KERAS_BACKEND", "torch"), "torch | tensorflow | jax")
    threads: int = option(0, "CPU compute threads (0: the framework's default)", minimum=0)
    distribute: str = option("none", "none | auto | mirrored | multi_worker | data_parallel | "
                             "ddp; --batch-size is then the global batch", choices=(
                                 "none", "auto", "mirrored", "multi_worker", "data_parallel",
                                 "ddp"))
    out: str = option("runs", "parent folder of run folders")
    resume: bool = option(False, "continue the newest run in --out from its last epoch")
    seed: int = option(0, "seed of the splits, the batches and the initial weights")
    verbose: int = option(1, "1: a progress bar per epoch, 2: one line per epoch",
                          choices=(0, 1, 2))
    smoke: bool = option(False, "tiny end-to-end run for tests (digits, 32x32, few images)")


SMOKE = {"data": "digits", "image_size": 32, "head_epochs": 1, "fine_tune_epochs": 2,
         "source_epochs": 1, "train_per_class": 2, "batch_size": 10, "limit": 10,
         "histogram_freq": 2, "patience": 2, "verbose": 2, "monitor_budget": 0.0}


def check(cfg) -> None:
    """Refuses settings that cannot run, beyond the bounds declared in Defaults."""
    if cfg.image_size and cfg.image_size < 32:
        raise RecipeError(f"Invalid value for --image-size: {cfg.image_size}. VGG19 needs "
                          "images of at least 32x32 pixels (five 2x2 poolings).")
    if cfg.head == "imagenet" and cfg.image_size not in (0, 224):
        raise RecipeError("--head imagenet keeps VGG19's fully connected layers, which take "
                          f"224x224 images; got --image-size {cfg.image_size}. Use --head gap.")
    if cfg.head_epochs + cfg.fine_tune_epochs < 1:
        raise RecipeError("--head-epochs plus --fine-tune-epochs must be at least 1.")
    if cfg.clipnorm and cfg.global_clipnorm:
        raise RecipeError("Use either --clipnorm or --global-clipnorm, not both.")
    if cfg.data not in ("auto", "flowers102", "tf_flowers", "digits"):
        if not Path(cfg.data).expanduser().is_dir():
            raise RecipeError(f"--data {cfg.data!r}: no such folder. Expected auto, flowers102, "
                              "tf_flowers, digits, or a folder FOLDER/<class>/<image>.")
    if cfg.weights not in ("auto", "imagenet", "none"):
        try:
            applications.check_weights_file(cfg.weights)
        except (OSError, ValueError) as err:
            raise RecipeError(f"--weights {cfg.weights!r}: {err} Expected auto, imagenet, none "
                              "or a VGG19 weights file.") from None


def resolve(cfg) -> dict:
    """The run's plan: what "auto" means here (the course's run, or the embedded default)."""
    data, weights, notice = cfg.data, cfg.weights, ""
    if data == "auto":
        missing = course_missing(cfg)
        if missing:
            data, weights = "digits", "auto" if weights == "imagenet" else weights
            bar, lacks = "!" * 78, "\n".join("  - " + m.splitlines()[0] for m in missing)
            notice = (f"\n{bar}\nOFFLINE: the course's run (Oxford Flowers-102 + VGG19 ImageNet "
                      f"weights) cannot run here:\n{lacks}\nPut them in the Keras cache "
                      "(~/.keras) or pass --weights PATH and --data PATH. Running the EMBEDDED "
                      f"DEFAULT instead: VGG19 trained on digits 0-4 (cached in {cfg.out}/_cache), "
                      f"fine-tuned on digits 5-9 with {cfg.train_per_class} labelled images per "
                      f"class, beside a VGG19 trained from scratch with the same step budget.\n"
                      f"{bar}\n")
        else:
            data = "flowers102"
    weights = {"auto": "source" if data == "digits" else "imagenet"}.get(weights, weights)
    size = cfg.image_size or (32 if data == "digits" else 224)
    head = cfg.head if cfg.head != "auto" else (
        "imagenet" if weights == "imagenet" and size == 224 else "gap")
    return {"data": data, "weights": weights, "head": head, "image_size": size,
            "scratch": cfg.scratch == "yes" or (cfg.scratch == "auto" and weights == "source"),
            "batch_size": cfg.batch_size or (10 if data == "digits" else 32), "notice": notice}


def course_missing(cfg) -> list[str]:
    """What the course's run lacks here (Flowers-102, ImageNet weights); [] if nothing."""
    missing = []
    if cfg.weights in ("auto", "imagenet"):
        try:
            file = applications.imagenet_weights_file("vgg19", cfg.head != "gap")
            applications.imagenet_weights_path("vgg19", file)
        except OSError as err:
            missing.append(str(err))
    try:
        kdata.oxford_flowers102(image_size=224, batch_size=32, seed=cfg.seed)
    except kdata.DatasetUnavailableError as err:
        missing.append(str(err))
    return missing


def load_data(cfg, plan):
    """The target task's splits: NumPy arrays (digits) or tf.data pipelines (image files)."""
    size, bs = plan["image_size"], plan["batch_size"]
    try:
        if plan["data"] == "digits":
            splits = kdata.load_digits(size, classes=TARGET_CLASSES, format="numpy",
                                       train_per_class=cfg.train_per_class,
                                       validation_split=0.06, seed=cfg.seed)
            return kdata.limit_splits(splits, cfg.limit, seed=cfg.seed, train=False)
        if plan["data"] == "flowers102":
            splits = kdata.oxford_flowers102(image_size=size, batch_size=bs, seed=cfg.seed)
        elif plan["data"] == "tf_flowers":
            splits = kdata.tf_flowers(image_size=size, batch_size=bs, seed=cfg.seed)
        else:
            splits = kdata.image_folder(plan["data"], image_size=size, batch_size=bs,
                                        validation_split=0.2, test_split=0.1, seed=cfg.seed)
    except kdata.DatasetUnavailableError as err:
        raise RecipeError(f"--data {plan['data']}: {err}") from None
    except (FileNotFoundError, ValueError) as err:
        raise RecipeError(f"--data {plan['data']!r}: {err}") from None
    return kdata.limit_splits(splits, cfg.limit, batch_size=bs)


def build_model(cfg, plan, num_classes, weights_file, frozen, name):
    """VGG19 with a zero-initialized head (as in Big Transfer), compiled for one variant."""
    keras.utils.set_random_seed(cfg.seed)
    try:
        net = applications.build_transfer_model(
            "vgg19", num_classes, weights=weights_file, head=plan["head"], name=f"vgg19_{name}",
            input_shape=(plan["image_size"],) * 2 + (3,), freeze_backbone=frozen,
            classifier_activation=None)
    except ValueError as err:
        raise RecipeError(f"--weights {weights_file}: {err}") from None
    net = applications.with_float32_outputs(net)
    # A random Glorot head on VGG19's all-positive features starts with large class biases
    # (initial val loss 5.6 instead of ln 5 on digits): every variant starts from zeros.
    for w in net.get_layer("predictions").weights:
        w.assign(keras.ops.zeros(w.shape, w.dtype))
    mixing = layers.mixing_layer(None if cfg.augment in ("none", "basic") else cfg.augment,
                                 num_classes=num_classes, seed=cfg.seed)
    model = net if mixing is None else models.AugmentedModel(net, mixing,
                                                             name=f"{net.name}_augmented")
    one_hot = cfg.label_smoothing > 0 or mixing is not None
    loss, metrics = models.classification_objective(num_classes, one_hot=one_hot,
                                                    label_smoothing=cfg.label_smoothing)
    clip = {k: v for k, v in (("clipnorm", cfg.clipnorm),
                              ("global_clipnorm", cfg.global_clipnorm)) if v}
    # Transfer starts at the head's rate (the fine-tuning one without a head phase);
    # scratch trains at the head's rate throughout.
    lr = cfg.fine_tune_lr if name == "transfer" and not frozen else cfg.head_lr
    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=cfg.momentum, **clip), loss=loss,
                  metrics=metrics, jit_compile=True if cfg.jit else "auto")
    # The pipeline makes labels one-hot for label smoothing alone (mixing layers do it).
    return net, model, num_classes if one_hot and model is net else None


def train_variant(name, cfg, plan, ctx, splits, run_dir, weights_file, extra_callbacks):
    """One variant (transfer or scratch): both phases in one resumable fit, then its scores."""
    epochs = cfg.head_epochs + cfg.fine_tune_epochs
    two_phases = name == "transfer" and cfg.head_epochs > 0
    print(f"\n== {name}: VGG19 ({weights_file or 'random initialization'}), {epochs} epochs"
          + (f", head only for {cfg.head_epochs} at lr {cfg.head_lr:g}, then all layers at lr "
             f"{cfg.fine_tune_lr:g}" if two_phases else f", all layers at lr {cfg.head_lr:g}"))
    with ctx.scope():
        net, model, one_hot = build_model(cfg, plan, splits.num_classes, weights_file, two_phases,
                                          name)
    budget = kcb.MonitoringBudget(cfg.monitor_budget or None)
    checkpoint = kcb.RunCheckpoint(run_dir / "state" / name, monitor="val_top1", mode="max",
                                   write=ctx.is_chief, budget=budget, finish_in_background=True)
    start = checkpoint.initial_epoch
    basic = layers.basic_augmentation(seed=cfg.seed) if cfg.augment == "basic" else None
    train, val, test, steps = kdata.fit_inputs(splits, plan["batch_size"], seed=cfg.seed,
                                               initial_epoch=start, epochs=epochs,
                                               one_hot=one_hot, augment=basic)
    probe = kdata.first_examples(val, cfg.grad_probe) if cfg.grad_probe else None
    phase_ends = [cfg.head_epochs - 1, epochs - 1] if two_phases else [epochs - 1]
    callbacks = []
    if two_phases and cfg.fine_tune_epochs:
        callbacks.append(kcb.UnfreezeSchedule("backbone", {cfg.head_epochs: "all"},
                                              learning_rate=cfg.fine_tune_lr, verbose=1))
    if cfg.patience and cfg.fine_tune_epochs:  # every variant: val_loss from epoch head_epochs
        callbacks.append(kcb.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                           start_from_epoch=cfg.head_epochs, verbose=1))
    stop = kcb.StopOnNonFinite()
    if test is not None:
        callbacks.append(kcb.EvaluateAt(test, phase_ends))
    callbacks += [stop, checkpoint, *extra_callbacks]
    log_dir = run_dir / "logs" / name
    gradients = kcb.GradientHistogram(str(log_dir), data=probe, every="epoch", verbose=1,
                                      budget=budget)
    chief = [gradients, kcb.EpochScalars(log_dir)]
    if cfg.histogram_freq:
        chief.append(kcb.WeightHistogram(log_dir, every=cfg.histogram_freq, budget=budget))
    ctx.fit(model, train, epochs=epochs, initial_epoch=start, steps_per_epoch=steps,
            validation_data=val, callbacks=callbacks, chief_callbacks=chief, shuffle=False,
            verbose=cfg.verbose)
    checkpoint.restore_best_weights(model)
    scores = {} if test is None else {
        k: float(v) for k, v in ctx.evaluate(model, test, verbose=0).items()}
    if name == "transfer":  # best.keras, and inputs and outputs to check a reload
        check_x = kdata.first_examples(splits.validation, 8)[0]
        check_y = ctx.save_model(net, run_dir / "best.keras", check_x)
        if ctx.is_chief:
            np.savez(run_dir / "best_check.npz", x=check_x, y=check_y)
    history = [{**h, "epoch": h["epoch"] + 1} for h in checkpoint.history]  # 1-based
    phases = experiments.phase_summaries(
        checkpoint.history, {"head": cfg.head_epochs, "fine-tune": epochs} if two_phases
        else {name: epochs}, keys=("val_loss", "val_top1", "val_top5", "test_top1", "test_top5"))
    es = next((c for c in callbacks if isinstance(c, kcb.EarlyStopping)), None)
    reason = ("non_finite_loss" if stop.nonfinite else
              f"early_stopping:{es.stop_reason}" if es is not None and es.stop_reason else
              "completed" if history and history[-1]["epoch"] == epochs else "stopped")
    best = checkpoint.best or {"epoch": None, "logs": {}}
    unfreeze = next((c for c in callbacks if isinstance(c, kcb.UnfreezeSchedule)), None)
    n_train = splits.counts.get("train", 0)
    seconds = sum(h["seconds"] for h in history)
    return {"history": history, "phases": phases, "stop_reason": reason,
            "images_per_second": n_train * len(history) / seconds if seconds else None,
            "nonfinite": stop.nonfinite, "sessions": checkpoint.sessions,
            "monitoring_skipped": {k.split(":")[0]: v for k, v in budget.skipped.items()},
            "unfreeze_events": getattr(unfreeze, "events", None),
            "gradient_alerts": json.loads(json.dumps(gradients.alerts, default=str)),
            "final": {"best_epoch": None if best["epoch"] is None else best["epoch"] + 1,
                      **{k: best["logs"].get(k) for k in ("val_loss", "val_top1", "val_top5")},
                      **{f"test_{k}": scores.get(k) for k in ("loss", "top1", "top5")}}}


def report(cfg, plan, ctx, splits, run_dir, source, results, status, seconds) -> None:
    """metrics.json, history.csv, curves.png, gradient_norms.png and the printed summary."""
    rows = [{"variant": name, **h} for name, res in results.items() for h in res["history"]]
    experiments.write_csv(run_dir / "history.csv", rows)
    experiments.plot_curves(run_dir / "curves.png", {n: r["history"] for n, r in results.items()},
                            marks={"unfreeze": cfg.head_epochs + 0.5} if cfg.head_epochs else None)
    kcb.plot_gradient_norms(run_dir / "logs" / "transfer", run_dir / "gradient_norms.png",
                            missing_ok=True)  # none logged: a short run's budget granted none
    weights = {"source": "VGG19 trained on digits 0-4 by this recipe (source val top-1 "
                         f"{(source or {}).get('val_top1', float('nan')):.3f})",
               "imagenet": "ImageNet", "none": "none (random initialization)"}
    summary = {"data": splits.source or plan["data"], "classes": splits.class_names,
               "counts": dict(splits.counts), "skipped_files": splits.skipped,
               "head": plan["head"],
               "weights": weights.get(plan["weights"], f"file {plan['weights']}"),
               "image_size": plan["image_size"], "backend": keras.backend.backend(),
               "device": kbackend.device_description(),
               "dtype_policy": keras.config.dtype_policy().name,
               "distribute": {"kind": ctx.kind, "replicas": ctx.num_replicas,
                              "processes": ctx.num_processes},
               "wall_seconds": seconds, "sessions": max(r["sessions"] for r in results.values()),
               "status": "complete" if status == 0 else "stopped: non-finite loss"}
    metrics = {"summary": summary, "source_task": source, "variants": results,
               "complete": status == 0}
    if {"transfer", "scratch"} <= set(results):
        t, s = results["transfer"]["final"], results["scratch"]["final"]
        metrics["transfer_minus_scratch"] = {k: t[k] - s[k] for k in ("val_top1", "test_top1")
                                             if t[k] is not None and s[k] is not None}
    experiments.save_json(run_dir / "metrics.json", metrics)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    print("\n" + "=" * 78 + f"\ndata:     {summary['data']} ({len(splits.class_names)} classes; "
          f"counts {summary['counts']})\nweights:  {summary['weights']}; head {plan['head']}; "
          f"{plan['image_size']}x{plan['image_size']}\nbackend:  {summary['backend']} on "
          f"{summary['device']}; {summary['dtype_policy']}; {ctx.kind} x{ctx.num_replicas}\n"
          f"wall:     {seconds:.0f} s; status {summary['status']}")
    for name, res in results.items():
        for ph in res["phases"]:
            print(f"{name:9s} phase {ph['phase']} (epochs {ph['epochs']}): val top-1 "
                  f"{pct(ph['val_top1'])} | test top-1 {pct(ph['test_top1'])}")
        f = res["final"]
        print(f"{name:9s} best epoch {f['best_epoch']}: val top-1 {pct(f['val_top1'])} | test "
              f"top-1 {pct(f['test_top1'])} top-5 {pct(f['test_top5'])} | {res['stop_reason']}")
    for k, v in metrics.get("transfer_minus_scratch", {}).items():
        print(f"transfer - scratch: {k} {100 * v:+.1f} points")
    print("=" * 78 + f"\noutputs in {run_dir}\nTensorBoard: tensorboard --logdir "
          f"{run_dir / 'logs'}")


def run(cfg, argv, extra_callbacks=()) -> int:
    start = time.time()
    if cfg.threads:
        kbackend.set_num_threads(cfg.threads)
    try:
        ctx = distribute.setup(cfg.distribute)
    except ValueError as err:
        raise RecipeError(f"--distribute {cfg.distribute}: {err}") from None
    if not ctx.is_chief:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (one log: the chief's)
    out = Path(cfg.out).expanduser()
    run_dir = experiments.newest_run(out, NAME) if cfg.resume else None
    if cfg.resume and run_dir is None:
        raise RecipeError(f"--resume: no run to continue in {cfg.out!r} ({NAME}-*/config.json).")
    if run_dir is not None:  # the saved configuration wins over the flags given now
        saved = json.loads((run_dir / "config.json").read_text())["config"]
        keep = ("resume", "out", "backend", "threads", "verbose", "distribute")
        cfg = Defaults(**{**saved, **{k: getattr(cfg, k) for k in keep}})
    plan = resolve(cfg)
    print(plan["notice"], end="")
    if ctx.num_replicas > 1:
        plan["batch_size"] = -(-plan["batch_size"] // ctx.num_replicas) * ctx.num_replicas
        print(f"--distribute {cfg.distribute}: {ctx.kind} over {ctx.num_replicas} replicas "
              f"({ctx.num_processes} process(es)); global batch {plan['batch_size']}")
    keras.config.set_dtype_policy(
        kbackend.mixed_precision_policy() if cfg.mixed_precision else "float32")
    splits = load_data(cfg, plan)  # bad data fails before the run folder exists
    if run_dir is None:
        run_dir = experiments.make_run_dir(out, NAME) if ctx.is_chief else Path(
            out / f".{NAME}-process{ctx.process_index}")
        if ctx.is_chief:
            experiments.save_json(run_dir / "config.json", {
                "config": dataclasses.asdict(cfg), "plan": plan, "command": " ".join(argv),
                "backend": keras.backend.backend(), "keras": keras.__version__})
    print(f"run folder: {run_dir}\nconfig: " + json.dumps(experiments.to_jsonable(
        {**dataclasses.asdict(cfg), **{k: v for k, v in plan.items() if k != "notice"}}),
        sort_keys=True))
    weights_file, source = None, None
    if plan["weights"] == "source":
        try:
            weights_file, source = applications.pretrain_on_digits(
                "vgg19", image_size=plan["image_size"], classes=SOURCE_CLASSES,
                epochs=cfg.source_epochs, learning_rate=cfg.source_lr, limit=cfg.limit,
                batch_size=-(-32 // ctx.num_replicas) * ctx.num_replicas, seed=cfg.seed,
                cache_dir=out / "_cache", context=ctx, jit_compile=True if cfg.jit else "auto",
                verbose=cfg.verbose)
        except FloatingPointError as err:
            raise RecipeError(str(err), EXIT_NONFINITE) from None
    elif plan["weights"] == "imagenet":
        try:
            weights_file = applications.imagenet_weights_path(
                "vgg19", applications.imagenet_weights_file("vgg19", plan["head"] == "imagenet"))
        except OSError as err:
            raise RecipeError(f"--weights imagenet: {err}") from None
    elif plan["weights"] != "none":
        weights_file = str(Path(plan["weights"]).expanduser().resolve())
    results, status = {}, 0
    for name in ("transfer", "scratch") if plan["scratch"] else ("transfer",):
        results[name] = train_variant(name, cfg, plan, ctx, splits, run_dir,
                                      weights_file if name == "transfer" else None,
                                      extra_callbacks)
        if results[name]["stop_reason"] == "non_finite_loss":
            status = EXIT_NONFINITE
            break
    if ctx.is_chief:
        report(cfg, plan, ctx, splits, run_dir, source, results, status, time.time() - start)
    ctx.shutdown()
    return status


def main(argv: list[str] | None = None, extra_callbacks=()) -> int:
    """Runs the recipe; returns the exit status. `extra_callbacks` join every variant's fit."""
    return experiments.run_recipe(lambda cfg, command: run(cfg, command, extra_callbacks),
                                  Defaults, argv, smoke=SMOKE, check=check,
                                  description="\n\n".join(__doc__.split("\n\n")[:2]),
                                  interrupted=": continue with --resume")


if __name__ == "__main__":
    sys.exit(main())
