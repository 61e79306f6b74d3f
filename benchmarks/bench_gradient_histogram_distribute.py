"""Cost of GradientHistogram's captured gradients under data parallelism, per engine.

On the small CNN of ``bench_callbacks.py`` (~650k parameters, 32x32x3 digits, global
batch 32, 2 replicas), each engine in its own process(es), two variants fitted in
rotated order on the same model:

- ``none``: the engine's ``fit`` with no callback;
- ``gh``: the same with ``GradientHistogram(log_dir)`` at its defaults (gradients of the
  last step of each epoch, captured from the training step and summed over the replicas;
  histograms, norms and update ratios of every weight; chief only).

Engines (those that run on one CPU host):

- ``mirrored``: ``setup("mirrored")``, tensorflow, the CPU split into 2 logical devices;
- ``keras_mirrored``: Keras's own ``fit`` inside a ``tf.distribute.MirroredStrategy``
  scope over the same 2 logical devices (no ``keras_recipes.distribute``);
- ``multi_worker``: ``setup("multi_worker")``, tensorflow, 2 worker processes (TF_CONFIG);
- ``data_parallel``: ``setup("data_parallel")``, jax, 2 XLA host devices;
- ``ddp``: ``setup("ddp")``, torch, 2 processes under ``torchrun`` (gloo).

Each fit runs ``--epochs`` epochs; an epoch is timed from one ``on_epoch_begin`` to the
next, so it includes every callback's epoch-end work; the first epoch (tracing, capture
installation) and the last (no next epoch) are dropped. Printed per engine: the median
epoch of each variant (wall clock, the chief's) and overhead = gh / none - 1.

Usage:

    python benchmarks/bench_gradient_histogram_distribute.py
    python benchmarks/bench_gradient_histogram_distribute.py --engines ddp,mirrored --repeats 5
    python benchmarks/bench_gradient_histogram_distribute.py \\
        --out benchmarks/results/gradient_histogram_distribute.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"mirrored": "tensorflow", "keras_mirrored": "tensorflow",
           "multi_worker": "tensorflow", "data_parallel": "jax", "ddp": "torch"}
VARIANTS = ("none", "gh")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--epochs", type=int, default=5,
                   help="epochs per fit (the first and the last are dropped)")
    p.add_argument("--repeats", type=int, default=3, help="fits per variant, interleaved")
    p.add_argument("--train-size", type=int, default=512, help="training images per epoch")
    p.add_argument("--timeout", type=float, default=900, help="seconds per engine")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ worker
def _configure(engine: str) -> None:
    """One compute thread per replica; 2 replicas per process where the engine has one."""
    backend = ENGINES[engine]
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if backend == "jax":
        os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=2 "
                                   "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
    elif backend == "torch":
        import torch

        torch.set_num_threads(1)
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(2)
        if engine in ("mirrored", "keras_mirrored"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


class _KerasMirrored:
    """Keras's own fit in a MirroredStrategy scope, with the context's fit signature."""

    kind, num_replicas, is_chief = "keras_mirrored", 2, True

    def __init__(self):
        import tensorflow as tf

        self.strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def scope(self):
        return self.strategy.scope()

    def fit(self, model, x, y, *, callbacks=(), chief_callbacks=(), **kwargs):
        return model.fit(x, y, callbacks=[*callbacks, *chief_callbacks], **kwargs)


def worker(engine: str, args) -> dict | None:
    _configure(engine)
    import keras
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_callbacks import _model

    from keras_recipes.callbacks import GradientHistogram
    from keras_recipes.data import load_digits
    from keras_recipes.distribute import setup

    context = _KerasMirrored() if engine == "keras_mirrored" else setup(engine)
    x, y = load_digits(format="numpy", validation_split=0.1, test_split=0.1).train
    reps = int(np.ceil(args.train_size / len(x)))
    x, y = np.concatenate([x] * reps)[: args.train_size], np.concatenate([y] * reps)[
        : args.train_size]
    keras.utils.set_random_seed(0)
    with context.scope():
        model = _model(keras)

    class EpochBoundaries(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.starts = []

        def on_epoch_begin(self, epoch, logs=None):
            self.starts.append(time.perf_counter())

    tmp = Path(tempfile.mkdtemp(prefix="bench_gh_distribute_"))
    kwargs = {"batch_size": 32, "verbose": 0, "shuffle": False}
    context.fit(model, x, y, epochs=1, **kwargs)  # warm-up (tracing, caches)
    epochs = {v: [] for v in VARIANTS}
    first = {v: [] for v in VARIANTS}
    for rep in range(args.repeats):
        for variant in VARIANTS[rep % 2:] + VARIANTS[: rep % 2]:
            timer = EpochBoundaries()
            chief = [GradientHistogram(tmp / f"{variant}_{rep}", verbose=0)] if (
                variant == "gh") else []
            context.fit(model, x, y, epochs=args.epochs, callbacks=[timer],
                        chief_callbacks=chief, **kwargs)
            spans = np.diff(timer.starts).tolist()  # epoch k = start(k+1) - start(k)
            first[variant].append(spans[0])
            epochs[variant] += spans[1:]
    if not context.is_chief:
        return None
    med = {v: statistics.median(t) for v, t in epochs.items()}
    return {"engine": engine, "backend": keras.backend.backend(),
            "replicas": context.num_replicas,
            "params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            "steps_per_epoch": int(np.ceil(len(x) / 32)),
            "epochs_measured": len(epochs["none"]),
            "epoch_none_s": med["none"], "epoch_gh_s": med["gh"],
            "overhead": med["gh"] / med["none"] - 1.0,
            "first_epoch_none_s": statistics.median(first["none"]),
            "first_epoch_gh_s": statistics.median(first["gh"])}


# ------------------------------------------------------------------ driver
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(engine: str, args, result: Path) -> list[subprocess.Popen]:
    base = ["--worker", engine, "--json", str(result), "--epochs", str(args.epochs),
            "--repeats", str(args.repeats), "--train-size", str(args.train_size)]
    env = dict(os.environ, KERAS_BACKEND=ENGINES[engine], PYTHONPATH=str(ROOT))
    if engine == "ddp":
        if Path("/sys/class/net/lo").exists():
            env["GLOO_SOCKET_IFNAME"] = "lo"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
               "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", __file__, *base]
        return [subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)]
    if engine == "multi_worker":
        workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
        procs = []
        for index in range(2):
            config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            procs.append(subprocess.Popen([sys.executable, __file__, *base], cwd=ROOT,
                                          env=dict(env, TF_CONFIG=json.dumps(config)),
                                          start_new_session=True))
        return procs
    return [subprocess.Popen([sys.executable, __file__, *base], env=env, cwd=ROOT,
                             start_new_session=True)]


def _wait(procs: list[subprocess.Popen], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes):
                return False
            if all(c == 0 for c in codes):
                return True
            time.sleep(0.5)
        return False
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()


def report(results: list[dict], args, command: str) -> str:
    r0 = results[0]
    lines = [
        "# GradientHistogram under data parallelism: epoch cost per engine",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()} CPU, {os.cpu_count()} cores visible; one compute "
        "thread per replica; engines run one after another; Python "
        + platform.python_version(),
        f"- model: small CNN, {r0['params']:,} parameters, 32x32x3 digits, global batch 32 "
        f"(16 per replica), {r0['steps_per_epoch']} steps per epoch; {args.epochs} epochs per "
        f"fit (first and last dropped), {args.repeats} fits per variant, interleaved",
        "",
        "| engine | backend | replicas | epoch, no callback | epoch, GradientHistogram | "
        "overhead | first epoch none / gh |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['engine']} | {r['backend']} | {r['replicas']} | {r['epoch_none_s']:.3f} s | "
            f"{r['epoch_gh_s']:.3f} s | {100 * r['overhead']:+.1f}% | "
            f"{r['first_epoch_none_s']:.2f} / {r['first_epoch_gh_s']:.2f} s |")
    lines += [
        "",
        "Wall clock of the chief, medians over the measured epochs (an epoch runs from one "
        "`on_epoch_begin` to the next: it includes GradientHistogram's epoch-end work of "
        "fetching the summed gradients, histograms, norms and writing). *first epoch* holds "
        "the retracing of the train function with the capture.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(ROOT))
        result = worker(args.worker, args)
        if result is not None:
            Path(args.json).write_text(json.dumps(result))
        return 0
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_gh_distribute_"))
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine not in ENGINES:
            print(f"--engines: unknown engine {engine!r}; expected some of "
                  f"{', '.join(ENGINES)}", file=sys.stderr)
            return 2
        start, path = time.time(), tmp / f"{engine}.json"
        if not _wait(_launch(engine, args, path), args.timeout) or not path.exists():
            print(f"[{engine}] failed or timed out", file=sys.stderr)
            return 1
        result = json.loads(path.read_text())
        print(f"[{engine}] done in {time.time() - start:.0f} s: {result}", flush=True)
        results.append(result)
    command = "python benchmarks/bench_gradient_histogram_distribute.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = report(results, args, command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
