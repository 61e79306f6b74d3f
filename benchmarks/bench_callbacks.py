"""Cost of GradientHistogram per epoch, and of its histogram writing vs Keras's TensorBoard.

On a small CNN (~650k parameters, 32x32x3 digits, batch 32), one Keras backend
per process, four variants fitted in rotated order on the same model:

- ``none``: ``fit`` with no callback;
- ``gh``: ``GradientHistogram(log_dir)`` at its defaults (gradients captured
  from the last training step of each epoch, histograms + norms + update
  ratios of every weight, TensorBoard events);
- ``tb0``: ``keras.callbacks.TensorBoard(histogram_freq=0)`` (epoch scalars);
- ``tb1``: ``keras.callbacks.TensorBoard(histogram_freq=1)`` (+ weight histograms).

Each fit runs ``--epochs`` epochs; the first epoch of every fit (tracing,
capture installation, event-file creation) is dropped and reported apart.
Times are taken on two clocks: process CPU time (robust when other jobs share
the cores) and wall time.
Printed per backend:

- epoch overhead = median epoch(gh) / median epoch(none) - 1 (target <= 5%);
- writing: median time inside ``GradientHistogram.on_epoch_end`` (fetching the
  captured gradients, NumPy histograms, norms, update ratios and writing, all
  of it) against the time Keras's TensorBoard spends on histograms, i.e.
  median ``on_epoch_end`` of ``tb1`` minus that of ``tb0`` (both write the same
  number of arrays of the same sizes: one per weight); ratio target >= 5x.

Usage (each backend in its own process, one table at the end):

    python benchmarks/bench_callbacks.py                       # torch, tensorflow, jax
    python benchmarks/bench_callbacks.py --backends torch --epochs 6 --repeats 5
    python benchmarks/bench_callbacks.py --out benchmarks/results/callbacks.md

Results are recorded in ``benchmarks/results/callbacks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("none", "gh", "tb0", "tb1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="torch,tensorflow,jax")
    p.add_argument("--epochs", type=int, default=4, help="epochs per fit (the first is dropped)")
    p.add_argument("--repeats", type=int, default=3, help="fits per variant, interleaved")
    p.add_argument("--threads", type=int, default=1, help="compute threads per process")
    p.add_argument("--train-size", type=int, default=512, help="training images per epoch")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ worker
def _configure(backend: str, threads: int) -> None:
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if backend == "jax":
        os.environ["XLA_FLAGS"] = (
            f"--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
        )
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _model(keras):
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Rescaling(1 / 255.0),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(576, activation="relu", name="fc"),
        layers.Dense(10, name="logits"),
    ], name="cnn")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _clock() -> tuple[float, float]:
    """(wall, process CPU) seconds. CPU time is the robust one on a shared machine."""
    return time.perf_counter(), time.process_time()


def _timed(callback, store: list) -> None:
    inner = callback.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        w, c = _clock()
        inner(epoch, logs)
        w1, c1 = _clock()
        store.append((w1 - w, c1 - c))

    callback.on_epoch_end = on_epoch_end


def worker(backend: str, args) -> dict:
    _configure(backend, args.threads)
    import keras
    import numpy as np

    from keras_recipes.callbacks import GradientHistogram
    from keras_recipes.data import load_digits

    splits = load_digits(format="numpy", validation_split=0.1, test_split=0.1)
    x, y = splits.train
    reps = int(np.ceil(args.train_size / len(x)))
    x, y = np.concatenate([x] * reps)[: args.train_size], np.concatenate([y] * reps)[
        : args.train_size
    ]
    keras.utils.set_random_seed(0)
    model = _model(keras)
    params = int(sum(np.prod(v.shape) for v in model.trainable_weights))

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = _clock()

        def on_epoch_end(self, epoch, logs=None):
            w, c = _clock()
            self.times.append((w - self._t[0], c - self._t[1]))

    epoch_times = {v: [] for v in VARIANTS}
    first_epoch = {v: [] for v in VARIANTS}
    hook_times = {v: [] for v in VARIANTS}
    tmp = Path(tempfile.mkdtemp(prefix="bench_callbacks_"))
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # warm-up (compile, caches)
    for rep in range(args.repeats):
        order = VARIANTS[rep % len(VARIANTS):] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            log_dir = tmp / f"{variant}_{rep}"
            callbacks = []
            if variant == "gh":
                callbacks.append(GradientHistogram(log_dir, verbose=0))
            elif variant in ("tb0", "tb1"):
                callbacks.append(keras.callbacks.TensorBoard(
                    log_dir, histogram_freq=int(variant == "tb1"), write_graph=False,
                    profile_batch=0))
            for cb in callbacks:
                _timed(cb, hook_times[variant])
            timer = EpochTimer()
            model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0,
                      callbacks=[*callbacks, timer])
            first_epoch[variant].append(timer.times[0])
            epoch_times[variant] += timer.times[1:]
            if callbacks:
                hook_times[variant][-args.epochs] = None  # first epoch dropped
    out = {
        "backend": backend,
        "params": params,
        "steps_per_epoch": int(np.ceil(len(x) / 32)),
        "epochs_measured": len(epoch_times["none"]),
    }
    for i, clock in enumerate(("wall", "cpu")):
        med = {v: statistics.median(t[i] for t in times) for v, times in epoch_times.items()}
        hooks = {v: statistics.median(t[i] for t in hook_times[v] if t is not None)
                 for v in ("gh", "tb0", "tb1")}
        tb_hist = hooks["tb1"] - hooks["tb0"]
        out[clock] = {
            "epoch_none_s": med["none"],
            "epoch_gh_s": med["gh"],
            "overhead": med["gh"] / med["none"] - 1.0,
            "first_epoch_none_s": statistics.median(t[i] for t in first_epoch["none"]),
            "first_epoch_gh_s": statistics.median(t[i] for t in first_epoch["gh"]),
            "gh_hook_ms": hooks["gh"] * 1e3,
            "tb_hist_ms": tb_hist * 1e3,
            "write_speedup": tb_hist / hooks["gh"],
        }
    return out


# ------------------------------------------------------------------ driver
def report(results: list[dict], args, command: str) -> str:
    lines = [
        "# GradientHistogram: epoch overhead and histogram writing vs keras TensorBoard",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()} CPU, {os.cpu_count()} cores visible, "
        f"{args.threads} compute thread(s) per backend process, backends run one after "
        "another; Python " + platform.python_version(),
        f"- model: small CNN, {results[0]['params']:,} parameters, 32x32x3 digits, batch 32, "
        f"{results[0]['steps_per_epoch']} steps per epoch; {args.epochs} epochs per fit "
        f"(first dropped), {args.repeats} fits per variant, interleaved",
        "",
        "| backend | clock | epoch, no callback | epoch, GradientHistogram | overhead | "
        "first epoch none / gh | GH on_epoch_end | TensorBoard histograms | writing speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for clock in ("cpu", "wall"):
            c = r[clock]
            lines.append(
                f"| {r['backend']} | {clock} | {c['epoch_none_s']:.3f} s | "
                f"{c['epoch_gh_s']:.3f} s | {100 * c['overhead']:+.1f}% | "
                f"{c['first_epoch_none_s']:.2f} / {c['first_epoch_gh_s']:.2f} s | "
                f"{c['gh_hook_ms']:.1f} ms | {c['tb_hist_ms']:.1f} ms | "
                f"{c['write_speedup']:.1f}x |"
            )
    lines += [
        "",
        "*cpu*: process CPU time (all threads of the process), the measure that stays "
        "meaningful when other jobs share the cores; *wall*: elapsed time. "
        "Medians over the measured epochs. *TensorBoard histograms* = median "
        "`on_epoch_end` of `TensorBoard(histogram_freq=1)` minus that of "
        "`TensorBoard(histogram_freq=0)`; *GH on_epoch_end* is everything "
        "GradientHistogram does per epoch (fetch, histograms, norms, update ratios, write).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(ROOT))
        print("RESULT " + json.dumps(worker(args.worker, args)), flush=True)
        return 0
    results = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        cmd = [sys.executable, __file__, "--worker", backend, "--epochs", str(args.epochs),
               "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--train-size", str(args.train_size)]
        start = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            print(f"[{backend}] failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            return 1
        result = json.loads(lines[-1][len("RESULT "):])
        print(f"[{backend}] done in {time.time() - start:.0f} s: {result}", flush=True)
        results.append(result)
    command = "python benchmarks/bench_callbacks.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    text = report(results, args, command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
