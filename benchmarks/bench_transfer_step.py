"""Speed of the transfer recipe's training epoch: recipe vs bare ``fit`` vs a plain PyTorch loop.

Three ways to train the same VGG19 + GAP head on the same shapes, all layers
trainable (the fine-tuning phase, the expensive one), SGD momentum 0.9, one
epoch of ``--steps`` batches followed by a validation pass of ``--val-batches``:

- ``recipe``: the recipe's own training of one variant
  (``recipes/transfer_vgg19.py``: ``train_variant("transfer", ...)`` with
  ``head_epochs=0``, ``fine_tune_epochs=--epochs``, no pretrained weights), on
  synthetic NumPy splits: its model (``build_model``), its seeded
  ``keras_recipes.data.epoch_batches`` pipeline and its callbacks
  (GradientHistogram capturing gradients, WeightHistogram every
  ``--histogram-freq`` epochs, EpochScalars, EarlyStopping, StopOnNonFinite, the
  per-epoch RunCheckpoint that ``--resume`` needs), run through
  ``DistributeContext.fit`` (``distribute.setup("none")``), each fit in a fresh
  run folder (nothing to resume); UnfreezeSchedule (only with a head phase) and
  EvaluateAt (the test evaluation at the end of a phase, taken out of the fit)
  act once per phase and are not part of a steady-state epoch;
- ``bare_fit``: the same model (``build_model``) and the same batches
  (``epoch_batches``) in a plain ``model.fit``, no callbacks;
- ``recipe-<Callback>``: the recipe less the callbacks of that class name (removed
  from the fit's ``CallbackList`` before training starts), to attribute the overhead;
- ``torch_loop``: the course's trainer style written by hand in ``torch.nn``
  (VGG19 conv stack + GAP + Linear, the same caffe preprocessing, a
  ``DataLoader`` over tensors, ``zero_grad / forward / CrossEntropyLoss /
  backward / step``, top-1 and top-5 counted per batch, then an eval pass).

Variants alternate (rotated order) in one process per backend; each fit runs
``--epochs`` epochs and the first one (tracing, warm-up) is dropped; the last one
includes the callbacks' end-of-training work (background histogram and checkpoint writes
drained, files closed), so work moved off the loop is still counted; the last
checkpoint, which the recipe lets finish in the background
(``RunCheckpoint(finish_in_background=True)``), is waited for after the variant returns,
outside the timing, and that wait is printed. Printed: the median seconds per epoch,
images per second, and the ratios recipe/bare_fit (target: <= 1.05),
recipe/recipe-<Callback> (the share of that callback), bare_fit/torch_loop and
recipe/torch_loop, the median end-of-epoch seconds of each callback of the recipe's fit,
plus the input pipeline's share: the time to draw one epoch of batches from the recipe's
pipeline alone, relative to a bare epoch (the pipeline prefetches in parallel; a share
well below 100% means it cannot starve the step), and the recipe's monitoring work per
fit as its ``MonitoringBudget`` measured it (CPU seconds of each granted item, all
threads: histograms, checkpoints; plus one-time work such as compiling jax's capturing
step), which does not depend on the noise of epoch wall times.

Usage:

    python benchmarks/bench_transfer_step.py --backend torch --threads 2
    python benchmarks/bench_transfer_step.py --backend tensorflow --image-size 224 --batch-size 32
    python benchmarks/bench_transfer_step.py --backend torch --profile bare_fit  # + a cProfile

Results are recorded in ``benchmarks/results/transfer_step.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "torch"),
                   choices=("torch", "tensorflow", "jax"))
    p.add_argument("--image-size", type=int, default=32, help="side of the images (>= 32)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6, help="training batches per epoch")
    p.add_argument("--val-batches", type=int, default=2, help="validation batches per epoch")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is dropped)")
    p.add_argument("--repeats", type=int, default=3, help="fits per variant (interleaved)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    p.add_argument("--histogram-freq", type=int, default=1,
                   help="the recipe's weight-histogram frequency (its default: 1)")
    p.add_argument("--monitor-budget", type=float, default=0.05,
                   help="the recipe's --monitor-budget (its default: 0.05; 0: every epoch)")
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--variants", default="recipe,bare_fit,torch_loop",
                   help="comma-separated; recipe-<Callback> is the recipe without that callback "
                        "(e.g. recipe-GradientHistogram, recipe-RunCheckpoint, "
                        "recipe-WeightHistogram), to attribute the overhead")
    p.add_argument("--profile", default="", metavar="VARIANT",
                   help="after the timed runs, one more fit of VARIANT under cProfile (the "
                        "main thread, epochs after the first): prints the functions that take "
                        "its time (where Keras's fit spends host time beside the device)")
    p.add_argument("--profile-out", default="", metavar="PATH",
                   help="with --profile: also save the cProfile stats there (pstats, snakeviz)")
    args = p.parse_args(argv)
    if args.profile_out and not args.profile:
        p.error("--profile-out needs --profile VARIANT")
    return args


def load_recipe():
    spec = importlib.util.spec_from_file_location(
        "transfer_vgg19_recipe", ROOT / "recipes" / "transfer_vgg19.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ torch loop
def torch_vgg19(num_classes: int):
    import torch
    from torch import nn

    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
           512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(512, num_classes)
            self.register_buffer("mean", torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1))

        def forward(self, x):  # x: (N, H, W, 3) RGB 0-255, as the Keras model takes it
            x = x.permute(0, 3, 1, 2).flip(1) - self.mean  # caffe: BGR, mean subtracted
            x = self.features(x)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return Net()


class TorchLoop:
    def __init__(self, x, y, xv, yv, batch_size, num_classes, lr=1e-4):
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = torch_vgg19(num_classes).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.loss = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(0)
        self.train = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long()),
                                batch_size=batch_size, shuffle=True, generator=g)
        self.val = DataLoader(TensorDataset(torch.from_numpy(xv), torch.from_numpy(yv).long()),
                              batch_size=batch_size)
        self.amp = False

    def epoch(self):
        torch = self.torch
        self.model.train()
        top1 = top5 = seen = 0
        for xb, yb in self.train:
            xb, yb = xb.to(self.device), yb.to(self.device)
            self.opt.zero_grad()
            with torch.autocast(self.device, enabled=self.amp,
                                dtype=torch.float16 if self.device == "cuda" else torch.bfloat16):
                out = self.model(xb)
                loss = self.loss(out.float(), yb)
            loss.backward()
            self.opt.step()
            k = min(5, out.shape[1])
            best = out.topk(k, 1).indices
            top1 += (best[:, 0] == yb).sum().item()
            top5 += (best == yb[:, None]).any(1).sum().item()
            seen += len(yb)
        self.model.eval()
        with torch.no_grad():
            for xb, yb in self.val:
                out = self.model(xb.to(self.device))
                _ = (out.argmax(1) == yb.to(self.device)).sum().item()
        if self.device == "cuda":
            torch.cuda.synchronize()
        return top1 / max(seen, 1)


# ------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    recipe_mod = load_recipe()
    import keras
    import numpy as np

    from keras_recipes.backend.device import (
        device_description,
        mixed_precision_policy,
        set_num_threads,
    )
    from keras_recipes.callbacks import latest_checkpoint
    from keras_recipes.callbacks.run_checkpoint import RunCheckpoint, _fit_callback_list
    from keras_recipes.data import epoch_batches
    from keras_recipes.data.pipeline import DatasetSplits
    from keras_recipes.distribute import setup as distribute_setup

    if args.threads:
        set_num_threads(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    policy = mixed_precision_policy() if args.mixed_precision else "float32"
    keras.config.set_dtype_policy(policy)
    k, s, bs = 10, args.image_size, args.batch_size
    rng = np.random.default_rng(0)
    n, nv = args.steps * bs, args.val_batches * bs
    x = rng.uniform(0, 255, (n, s, s, 3)).astype("float32")
    y = (np.arange(n) % k).astype("int32")
    xv = rng.uniform(0, 255, (nv, s, s, 3)).astype("float32")
    yv = (np.arange(nv) % k).astype("int32")
    # The recipe's EvaluateAt (a test evaluation at the end of each phase, here in the last
    # epoch) is not part of a steady-state epoch: FitCallbacks takes it out of every recipe
    # fit. (train_variant cannot take in-memory splits without a test split: test=None
    # fails in its epoch_batches(*splits.test, ...).) Its test evaluation after the fit is
    # not timed.
    splits = DatasetSplits(train=(x, y), validation=(xv, yv), test=(xv, yv),
                           class_names=[str(i) for i in range(k)], source="synthetic",
                           counts={"train": n, "validation": nv, "test": nv})
    epochs = args.epochs
    # Phase 2 of the recipe for every epoch: head_epochs=0 trains all layers from the start,
    # for --epochs epochs (the fit's length); early stopping cannot end it.
    cfg = recipe_mod.Defaults(
        data="digits", weights="none", head="gap", image_size=s, batch_size=bs,
        head_epochs=0, fine_tune_epochs=epochs, patience=epochs + 100, grad_probe=0,
        histogram_freq=args.histogram_freq, monitor_budget=args.monitor_budget, verbose=0,
        backend=args.backend,
        mixed_precision=args.mixed_precision, scratch="no")
    try:
        recipe_mod.check(cfg)
    except recipe_mod.RecipeError as err:
        raise SystemExit(f"the recipe refuses these settings: {err}") from None
    plan = recipe_mod.resolve(cfg)
    if plan["batch_size"] != bs:  # the same shapes as the PyTorch loop, or no comparison
        raise SystemExit(f"the recipe's plan has batch size {plan['batch_size']}, not "
                         f"--batch-size {bs}")
    ctx = distribute_setup("none")
    tmp = Path(tempfile.mkdtemp(prefix="bench_transfer_"))

    class EpochTimer(keras.callbacks.Callback):
        async_safe = True  # no batch hooks: leaves Keras's async batch dispatch as it is

        def on_train_begin(self, logs=None):
            steps = self.params.get("steps")
            if steps != args.steps:  # the same shapes as the PyTorch loop, or no comparison
                raise SystemExit(f"the fit makes {steps} steps per epoch, not --steps "
                                 f"{args.steps} (batch {plan['batch_size']}, {n} images)")
            self.times, self.last = [], time.perf_counter()
            self.cpu, self.last_cpu = [], time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            now, now_cpu = time.perf_counter(), time.process_time()
            self.times.append(now - self.last)
            self.cpu.append(now_cpu - self.last_cpu)
            self.last_cpu = now_cpu
            self.last = now

        def on_train_end(self, logs=None):
            # The last epoch also pays for what the callbacks finish at the end of
            # training (e.g. background histogram and checkpoint writes drained): nothing
            # escapes the timing. This callback is the last one, so it runs after theirs.
            self.times[-1] += time.perf_counter() - self.last
            self.cpu[-1] += time.process_time() - self.last_cpu

    class ProfileWindow(keras.callbacks.Callback):
        """Profiles the epochs after the first (as timed), up to the end of training."""

        async_safe = True

        def __init__(self, profiler):
            super().__init__()
            self.profiler = profiler

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.profiler.enable()

        def on_train_end(self, logs=None):
            self.profiler.disable()

    # Callbacks of the recipe that act at the end of a phase only (not timed: see `splits`).
    ONCE_PER_PHASE = ("EvaluateAt",)

    class FitCallbacks(keras.callbacks.Callback):
        """Edits the recipe's fit from inside: the callbacks of class `without` and those in
        ONCE_PER_PHASE removed, each other callback's end-of-epoch time recorded in
        `epoch_end` (a dict), and the benchmark's own callbacks (`last`: the timer, the
        profile window) moved to the end.

        ``train_variant`` passes its extra callbacks to the fit beside its own, so the fit's
        ``CallbackList`` is found from ``set_model`` (called when Keras builds the list, before
        training starts) and given a new list (RunCheckpoint, which moves itself to the end of
        the list in its own ``set_model``, runs before this one; the list Keras is iterating
        to call ``set_model`` stays as it was)."""

        async_safe = True

        def __init__(self, without: str, epoch_end: dict | None, last: list):
            super().__init__()
            self.without, self.epoch_end, self.last = without, epoch_end, last

        def set_model(self, model):
            super().set_model(model)
            callbacks = _fit_callback_list(self)
            if callbacks is None:
                raise SystemExit("bench: the recipe's fit did not take the extra callbacks "
                                 "(no keras.callbacks.CallbackList found from set_model)")
            ours = [self, *self.last]
            listed = [cb for cb in callbacks.callbacks if not any(cb is o for o in ours)]
            kept = [cb for cb in listed if type(cb).__name__ != self.without]
            if self.without and len(kept) == len(listed):
                raise SystemExit(f"recipe-{self.without}: the recipe's fit has no callback of "
                                 "that class; it has " + ", ".join(
                                     sorted({type(cb).__name__ for cb in listed})))
            kept = [cb for cb in kept if type(cb).__name__ not in ONCE_PER_PHASE]
            for cb in kept:
                if isinstance(cb, RunCheckpoint):  # it saves the state of the others it saw
                    cb._others = [o for o in cb._others if any(o is c for c in kept)]
                if self.epoch_end is not None:
                    _time_epoch_end(cb, self.epoch_end)
            callbacks.callbacks = [*kept, self, *self.last]
            self.budget = next((cb.budget for cb in kept
                                if getattr(cb, "budget", None) is not None), None)

    def _time_epoch_end(cb, acc):
        name = type(cb).__name__
        original = cb.on_epoch_end

        def timed(epoch, logs=None):
            t0 = time.perf_counter()
            original(epoch, logs)
            if epoch > 0:  # as the epochs timed
                acc.setdefault(name, []).append(time.perf_counter() - t0)

        cb.on_epoch_end = timed

    epoch_end_seconds: dict[str, list[float]] = {}
    # The recipe's monitoring work, as its MonitoringBudget measured it (all threads):
    # owner class -> [(cost of each granted item, in order)] per fit where it was granted,
    # and each fit's seconds and total monitoring seconds.
    work_items: dict[str, list[list[float]]] = {}
    fit_seconds: list[float] = []
    fit_work: list[float] = []
    once_items: dict[str, list[float]] = {}  # owner -> one-time seconds in each fit
    # Wall seconds of each whole fit, first epoch (tracing) included: the time the recipe's
    # MonitoringBudget takes its share of.
    whole_fits: dict[str, list[float]] = {}
    # Seconds from train_variant's return (fit, then the test evaluation and best.keras)
    # until the last checkpoint, written in the background (finish_in_background), is on disk.
    drain_seconds: list[float] = []

    def recipe_fit(run: int, without: str = "", profiler=None) -> list[float]:
        timer = EpochTimer()
        window = [ProfileWindow(profiler)] if profiler is not None else []
        hooks = FitCallbacks(without, None if without else epoch_end_seconds, [timer, *window])
        run_dir = Path(tempfile.mkdtemp(prefix=f"run{run}-{without or 'recipe'}-", dir=tmp))
        with contextlib.redirect_stdout(io.StringIO()):  # the recipe's "== transfer" lines
            recipe_mod.train_variant("transfer", cfg, plan, ctx, splits, run_dir, None,
                                     extra_callbacks=[hooks, timer, *window])
        t0 = time.perf_counter()
        latest_checkpoint(run_dir / "state" / "transfer")  # waits for the background write
        drain_seconds.append(time.perf_counter() - t0)
        shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints, logs, best.keras (VGG19)
        if not without and getattr(hooks, "budget", None) is not None:
            costs_by_owner = hooks.budget.work_costs
            for owner, costs in costs_by_owner.items():
                work_items.setdefault(owner.split(":")[0], []).append(costs)
            once = hooks.budget.once_costs  # one-time work (jax: compiling the capture)
            for owner, seconds in once.items():
                once_items.setdefault(owner.split(":")[0], []).append(seconds)
            fit_seconds.append(sum(timer.times))
            fit_work.append(sum(sum(costs) for costs in costs_by_owner.values())
                            + sum(once.values()))
        name = f"recipe-{without}" if without else "recipe"
        cpu_times[name] += timer.cpu[1:]
        whole_fits.setdefault(name, []).append(sum(timer.times))
        return timer.times[1:]

    def bare_fit(run: int, profiler=None) -> list[float]:
        with ctx.scope():
            _, model, one_hot = recipe_mod.build_model(cfg, plan, k, None, False, "transfer")
        b = plan["batch_size"]
        train = epoch_batches(x, y, b, seed=cfg.seed, epochs=epochs, one_hot=one_hot,
                              engine="auto")
        val = epoch_batches(xv, yv, b, seed=None, one_hot=one_hot, engine="auto")
        timer = EpochTimer()
        window = [ProfileWindow(profiler)] if profiler is not None else []
        model.fit(train, epochs=epochs, steps_per_epoch=math.ceil(n / b), validation_data=val,
                  callbacks=[timer, *window], shuffle=False, verbose=0)
        cpu_times["bare_fit"] += timer.cpu[1:]
        whole_fits.setdefault("bare_fit", []).append(sum(timer.times))
        return timer.times[1:]

    def torch_loop(run: int, profiler=None) -> list[float]:
        loop = TorchLoop(x, y, xv, yv, bs, k)
        loop.amp = args.mixed_precision
        times, cpu = [], []
        for e in range(epochs):
            if profiler is not None and e == 1:
                profiler.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            loop.epoch()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        if profiler is not None:
            profiler.disable()
        cpu_times["torch_loop"] += cpu[1:]
        return times[1:]

    def pipeline_only() -> float:
        b = plan["batch_size"]
        train = epoch_batches(x, y, b, seed=cfg.seed, epochs=2, engine="auto")
        steps = math.ceil(n / b)
        it = iter(train)
        for _ in range(steps):  # first epoch: warm-up
            next(it)
        t0 = time.perf_counter()
        for _ in range(steps):
            next(it)
        return time.perf_counter() - t0

    runners = {
        "recipe": lambda i, profiler=None: recipe_fit(i, profiler=profiler),
        "bare_fit": bare_fit,
        "torch_loop": torch_loop,
    }
    variants = [v for v in args.variants.split(",") if v]

    def without(callback_name):
        return lambda i, profiler=None: recipe_fit(i, callback_name, profiler=profiler)

    for flag, v in [*(("--variants", v) for v in variants), ("--profile", args.profile)]:
        if v.startswith("recipe-"):  # e.g. recipe-GradientHistogram
            runners[v] = without(v.removeprefix("recipe-"))
        elif v and v not in runners:
            raise SystemExit(f"{flag}: unknown variant {v!r}; expected one of "
                             f"{sorted(runners)} or recipe-<callback class name>")
    if args.profile == "torch_loop" and args.backend != "torch":
        raise SystemExit("--profile torch_loop: the PyTorch loop runs in the torch process only "
                         f"(one framework per process). Received: --backend {args.backend}")
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu_times: dict[str, list[float]] = {v: [] for v in runners}
    for rep in range(args.repeats):
        order = variants[rep % len(variants):] + variants[: rep % len(variants)]
        for v in order:
            times[v] += runners[v](rep)
            print(f"repeat {rep + 1}/{args.repeats} {v:10s} epochs "
                  + " ".join(f"{t:.2f}" for t in times[v][-(epochs - 1):]) + " s", flush=True)
    pipe = statistics.median(pipeline_only() for _ in range(3))

    med = {v: statistics.median(t) for v, t in times.items()}
    cpu_med = {v: statistics.median(t) for v, t in cpu_times.items() if t}
    print(f"\nbackend {args.backend}, keras {keras.__version__}, {device_description()}, "
          f"policy {policy}, threads {args.threads or 'default'}; {s}x{s} images, batch {bs}, "
          f"{args.steps} steps + {args.val_batches} validation batches per epoch, "
          f"{args.repeats} x {epochs - 1} timed epochs per variant")
    print("| variant | median wall s/epoch | median CPU s/epoch (process, all threads) | "
          "train img/s (wall, epoch incl. validation) |")
    print("|---|---|---|---|")
    for v in variants:
        print(f"| {v} | {med[v]:.3f} | {cpu_med.get(v, float('nan')):.3f} | {n / med[v]:.1f} |")

    def ratio(a, b):
        return f"{med[a] / med[b]:.3f}" if a in med and b in med else "n/a"

    mean = {v: statistics.fmean(t) for v, t in times.items()}
    # The mean counts every timed epoch: with --monitor-budget some epochs skip the
    # monitoring, which a median would hide.
    if "recipe" in mean and "bare_fit" in mean:
        print(f"\nrecipe / bare_fit, mean of the timed epochs: "
              f"{mean['recipe'] / mean['bare_fit']:.3f}   (target <= 1.05)")
    print(f"recipe / bare_fit, median:      {ratio('recipe', 'bare_fit')}")
    if "recipe" in whole_fits and "bare_fit" in whole_fits:
        whole = {v: statistics.fmean(t) for v, t in whole_fits.items()}
        print("recipe / bare_fit, whole fits (first epoch included), mean: "
              f"{whole['recipe'] / whole['bare_fit']:.3f}")
    for v in variants:
        if v.startswith("recipe-"):
            print(f"recipe / {v}: {ratio('recipe', v)} (wall), "
                  f"{cpu_med['recipe'] / cpu_med[v]:.3f} (CPU): the share of "
                  f"{v.removeprefix('recipe-')}" if "recipe" in cpu_med else "")
    print(f"bare_fit / torch_loop: {ratio('bare_fit', 'torch_loop')}")
    print(f"recipe / torch_loop:   {ratio('recipe', 'torch_loop')}")

    def cpu_ratio(a, b):
        return f"{cpu_med[a] / cpu_med[b]:.3f}" if a in cpu_med and b in cpu_med else "n/a"

    print(f"CPU time: recipe / bare_fit {cpu_ratio('recipe', 'bare_fit')}, bare_fit / "
          f"torch_loop {cpu_ratio('bare_fit', 'torch_loop')}, recipe / torch_loop "
          f"{cpu_ratio('recipe', 'torch_loop')}")
    if epoch_end_seconds:
        print("recipe callbacks, median end-of-epoch seconds: " + ", ".join(
            f"{k} {statistics.median(v):.3f}" for k, v in epoch_end_seconds.items()))
    if work_items:
        print(f"recipe's monitoring work (its MonitoringBudget, all threads; "
              f"fits of {statistics.median(fit_seconds):.1f} s median):")
        fits_run = len(fit_seconds)  # an owner never granted in a fit has no entry for it
        for owner, fits in work_items.items():
            first = [costs[0] for costs in fits]
            later = [c for costs in fits for c in costs[1:]]
            print(f"  {owner}: {sum(len(c) for c in fits) / fits_run:.1f} items per fit; "
                  f"first item {statistics.median(first):.3f} s, later items "
                  + (f"{statistics.median(later):.3f} s" if later else "none")
                  + f"; {sum(sum(c) for c in fits) / fits_run:.3f} s per fit")
        for owner, seconds in once_items.items():
            print(f"  {owner}, one-time work (compilation): {len(seconds)} of {fits_run} "
                  f"fits had it, {statistics.median(seconds):.3f} s median")
        print(f"  all: {statistics.fmean(fit_work):.3f} s per fit = "
              f"{100 * statistics.fmean(fit_work) / statistics.median(fit_seconds):.1f}% of a fit")
    if drain_seconds:
        print("last checkpoint still being written when the variant returned (fit, test "
              f"evaluation, best.keras): {statistics.median(drain_seconds):.3f} s median wait")
    if "bare_fit" in med:
        print(f"input pipeline alone: {pipe:.3f} s per epoch = {100 * pipe / med['bare_fit']:.1f}% "
              "of a bare epoch (prefetched in parallel)")
    if args.profile:
        profile(runners[args.profile], args.profile, args.repeats, epochs, args.profile_out)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def profile(runner, name: str, run: int, epochs: int, out: str) -> None:
    """One more fit of one variant with cProfile on for its epochs after the first; prints
    the functions with the most time (cumulative, then own), and saves the stats to `out`."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    runner(run, profiler=profiler)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs()
    print(f"\nprofile of {name}: {epochs - 1} epoch(s) after the first, main thread, "
          f"{stats.total_tt:.2f} s of own time in all (profiling slows Python code down)")
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    print(text.getvalue())
    if out:
        stats.dump_stats(out)
        print(f"profile saved to {out}")


if __name__ == "__main__":
    sys.exit(main())
