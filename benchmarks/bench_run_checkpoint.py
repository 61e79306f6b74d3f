"""Cost of RunCheckpoint per epoch: ``fit`` with it over a bare ``fit`` (goal <= 1.05).

A small convnet on 32x32x3 inputs: a nested ``backbone`` model of five Conv2D layers
(~1.57M parameters, ``trainable=False``) and a trainable head (global average pooling,
Dense 256, Dense 10; ~134k parameters), Adam, batch 32, random data. The frozen backbone
holds most of the parameters, so RunCheckpoint's hard links (an unchanged array is a
link to the previous checkpoint's file, not a new copy) matter.

One Keras backend per process (``--backend`` sets KERAS_BACKEND before keras is
imported); ``--backends a,b,c`` runs each in a subprocess of its own, one after
another, with a timeout, and prints one table. In each process:

- one model is built and compiled, and a warm-up ``fit`` (tracing) is run untimed;
- two variants are fitted ``--repeats`` times each, interleaved (bare, checkpoint,
  checkpoint, bare, bare, ...): ``bare`` is ``fit`` with no callback but the epoch
  clock, ``checkpoint`` adds ``RunCheckpoint(<fresh temporary folder>)``, so it never
  resumes (checked);
- an epoch is timed from its ``on_epoch_begin`` to the next epoch's; the last epoch
  ends when ``fit`` returns, so the wait for the last background write in
  RunCheckpoint's ``on_train_end`` is inside it; the first epoch of every fit is
  dropped (warm-up; the full first write of the checkpoint overlaps the second
  epoch, so it is timed);
- per fit, the mean of its measured epochs; per variant, the median over fits; the
  ratio is checkpoint / bare of those medians, on two clocks: wall time and process
  CPU time (``time.process_time``, all threads, the writer's included; the robust one
  when other jobs share the cores);
- then one untimed checkpoint fit that waits for each write and counts the bytes of
  the files each checkpoint added (new inodes) against the bytes of a checkpoint
  written in full (every array file but the ``best/`` links): bytes per epoch with and
  without the frozen backbone hard-linked.

Usage:

    python benchmarks/bench_run_checkpoint.py                      # torch, tensorflow, jax
    python benchmarks/bench_run_checkpoint.py --backend jax --steps 10 --repeats 4
    python benchmarks/bench_run_checkpoint.py --steps torch=20,jax=10
    python benchmarks/bench_run_checkpoint.py --quick              # does it run (seconds)
    python benchmarks/bench_run_checkpoint.py --out benchmarks/results/run_checkpoint.md

Results are recorded in ``benchmarks/results/run_checkpoint.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("bare", "checkpoint")
BATCH = 32
# Steps per epoch that give about 1 s per epoch on one thread (2-core AMD EPYC, idle).
STEPS = {"torch": 14, "tensorflow": 32, "jax": 5}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backend", default=None,
                   help="run this one backend in this process (torch, tensorflow or jax)")
    p.add_argument("--backends", default="torch,tensorflow,jax",
                   help="without --backend: run each in a subprocess of its own, in order")
    p.add_argument("--steps", default=",".join(f"{k}={v}" for k, v in STEPS.items()),
                   help="training steps per epoch, batch 32: one number for every backend, "
                        "or backend=N pairs (default %(default)s: about 1 s per epoch on one "
                        "thread of the 2-core AMD EPYC benchmark machine, idle)")
    p.add_argument("--epochs", type=int, default=5,
                   help="epochs per fit (the first is dropped)")
    p.add_argument("--repeats", type=int, default=7,
                   help="fits per variant, interleaved")
    p.add_argument("--threads", type=int, default=1,
                   help="compute threads per process (keras_recipes.backend.set_num_threads)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds per backend subprocess in --backends mode")
    p.add_argument("--tmp", default=None,
                   help="where the checkpoint folders go (default: the system temp folder)")
    p.add_argument("--quick", action="store_true",
                   help="a check that it runs: 3 steps, 3 epochs, 1 repeat")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.epochs, args.repeats = "3", 3, 1
    try:
        args.steps_of = (
            {b: int(args.steps) for b in STEPS} if "=" not in args.steps
            else {**STEPS, **{k.strip(): int(v) for k, v in
                              (kv.split("=") for kv in args.steps.split(",") if kv.strip())}})
    except ValueError:
        p.error(f"--steps: a number or backend=N pairs, got {args.steps!r}")
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch of each fit is dropped)")
    return args


# ------------------------------------------------------------------ worker
def _configure(backend: str, threads: int) -> None:
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    from keras_recipes.backend import set_num_threads

    set_num_threads(threads)  # before the first computation (jax: XLA_FLAGS)


def _model(keras):
    layers = keras.layers
    backbone = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(128, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(256, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(512, 3, padding="same", activation="relu"),
    ], name="backbone")
    backbone.trainable = False
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        backbone,
        layers.GlobalAveragePooling2D(),
        layers.Dense(256, activation="relu", name="fc"),
        layers.Dense(10, name="logits"),
    ], name="frozen_convnet")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _clock() -> tuple[float, float]:
    """(wall, process CPU) seconds."""
    return time.perf_counter(), time.process_time()


def _files(directory: Path) -> dict[tuple[int, int], int]:
    """``{(inode, mtime_ns): size}`` of every file under `directory` (links counted once)."""
    out = {}
    for path in directory.rglob("*"):
        st = path.lstat()
        if path.is_file():
            out[(st.st_ino, st.st_mtime_ns)] = st.st_size
    return out


def _full_bytes(folder: Path) -> int:
    """Bytes of a checkpoint written in full: every file but those of ``best/``."""
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and "best" not in p.relative_to(folder).parts)


def worker(backend: str, args) -> dict:
    _configure(backend, args.threads)
    sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    from keras_recipes.callbacks import RunCheckpoint, latest_checkpoint

    assert keras.backend.backend() == backend, keras.backend.backend()
    rng = np.random.default_rng(0)
    steps = args.steps_of[backend]
    n = steps * BATCH
    x = rng.random((n, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, size=(n,))
    keras.utils.set_random_seed(0)
    model = _model(keras)
    count = lambda vs: int(sum(np.prod(v.shape) for v in vs))  # noqa: E731
    frozen = count(model.get_layer("backbone").weights)
    trainable = count(model.trainable_weights)

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins = []

        def on_epoch_begin(self, epoch, logs=None):
            self.begins.append(_clock())

    def fit(callbacks):
        clock = EpochClock()
        model.fit(x, y, batch_size=BATCH, epochs=args.epochs, verbose=0,
                  callbacks=[clock, *callbacks])
        end = _clock()  # after on_train_end: RunCheckpoint's wait for its last write
        marks = [*clock.begins, end]
        assert len(clock.begins) == args.epochs, len(clock.begins)
        epochs = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks[:-1], marks[1:], strict=True)]
        return epochs

    root = Path(tempfile.mkdtemp(prefix="bench_run_checkpoint_", dir=args.tmp))
    start = time.time()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up: tracing, caches
    warmup_s = time.time() - start
    per_fit = {v: [] for v in VARIANTS}  # per fit: (mean wall, mean cpu) of measured epochs
    first = {v: [] for v in VARIANTS}
    for rep in range(args.repeats):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            callbacks = []
            folder = root / f"{variant}-{rep}"
            if variant == "checkpoint":
                ckpt = RunCheckpoint(folder, verbose=0)
                assert ckpt.initial_epoch == 0 and latest_checkpoint(folder) is None
                callbacks.append(ckpt)
            epochs = fit(callbacks)
            first[variant].append(epochs[0])
            measured = epochs[1:]
            per_fit[variant].append(tuple(
                statistics.fmean(e[i] for e in measured) for i in (0, 1)))
            if variant == "checkpoint":
                done = latest_checkpoint(folder)
                assert done is not None and done.name == f"epoch-{args.epochs - 1:04d}", done
                assert [h["epoch"] for h in ckpt.history] == list(range(args.epochs))
                shutil.rmtree(folder)
            print(f"[{backend}] repeat {rep + 1}/{args.repeats} {variant:10s} "
                  f"wall {per_fit[variant][-1][0]:.3f} s/epoch, "
                  f"cpu {per_fit[variant][-1][1]:.3f} s/epoch", file=sys.stderr, flush=True)

    # Bytes: an untimed checkpoint fit that waits for each write before the next epoch.
    folder = root / "bytes"
    ckpt = RunCheckpoint(folder, verbose=0)
    seen: list[dict] = []
    full: list[int] = []

    class CountBytes(keras.callbacks.Callback):
        def _count(self):
            ckpt.wait_for_writes()
            seen.append(_files(folder))
            full.append(_full_bytes(latest_checkpoint(folder)))

        def on_epoch_begin(self, epoch, logs=None):
            if epoch > 0:
                self._count()

        def on_train_end(self, logs=None):
            self._count()  # runs before RunCheckpoint's own on_train_end (it moves last)

    model.fit(x, y, batch_size=BATCH, epochs=args.epochs, verbose=0,
              callbacks=[CountBytes(), ckpt])
    written = [sum(size for key, size in now.items() if key not in before)
               for before, now in zip([{}, *seen[:-1]], seen, strict=True)]
    shutil.rmtree(root, ignore_errors=True)

    out = {
        "backend": backend,
        "keras": keras.__version__,
        "frozen_params": frozen,
        "trainable_params": trainable,
        "steps_per_epoch": steps,
        "warmup_fit_s": warmup_s,
        "bytes_first_epoch": written[0],
        "bytes_per_epoch_linked": statistics.median(written[1:]) if len(written) > 1
        else written[0],
        "bytes_per_epoch_full": statistics.median(full),
        "per_fit": per_fit,
    }
    for i, clock in enumerate(("wall", "cpu")):
        med = {v: statistics.median(f[i] for f in per_fit[v]) for v in VARIANTS}
        paired = [c[i] / b[i] for b, c in zip(per_fit["bare"], per_fit["checkpoint"], strict=True)]
        out[clock] = {
            "bare_s": med["bare"],
            "checkpoint_s": med["checkpoint"],
            "ratio": med["checkpoint"] / med["bare"],
            "paired_ratio_median": statistics.median(paired),
            "first_epoch_bare_s": statistics.median(e[i] for e in first["bare"]),
            "first_epoch_checkpoint_s": statistics.median(e[i] for e in first["checkpoint"]),
        }
    return out


# ------------------------------------------------------------------ driver
def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(results: list[dict]) -> list[str]:
    lines = [
        "| backend | bare s/epoch (wall) | checkpoint s/epoch (wall) | wall ratio | "
        "bare s/epoch (CPU) | checkpoint s/epoch (CPU) | CPU ratio | "
        "MB written/epoch, backbone linked | MB/epoch, written in full |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        w, c = r["wall"], r["cpu"]
        lines.append(
            f"| {r['backend']} | {w['bare_s']:.3f} | {w['checkpoint_s']:.3f} | "
            f"{w['ratio']:.3f} | {c['bare_s']:.3f} | {c['checkpoint_s']:.3f} | "
            f"{c['ratio']:.3f} | {r['bytes_per_epoch_linked'] / 1e6:.2f} | "
            f"{r['bytes_per_epoch_full'] / 1e6:.2f} |"
        )
    return lines


def report(results: list[dict], args, command: str, load: tuple[str, str],
           when: str) -> str:
    r0 = results[0]
    lines = [
        "# RunCheckpoint: fit with it over a bare fit",
        "",
        f"- command: `{command}`",
        f"- date: {when}",
        f"- machine: {os.cpu_count()} cores ({_cpu_name()}), {platform.machine()}; "
        f"{args.threads} compute thread(s) per backend process, backends one after another; "
        f"Python {platform.python_version()}, Keras {r0['keras']}",
        f"- load average (1/5/15 min): {load[0]} before, {load[1]} after",
        f"- model: convnet, 32x32x3 random inputs, batch {BATCH}, steps per epoch "
        + ", ".join(f"{r['backend']} {r['steps_per_epoch']}" for r in results)
        + " (about 1 s per epoch idle); frozen nested backbone "
        f"{r0['frozen_params']:,} parameters, trainable head {r0['trainable_params']:,} (Adam); "
        f"{args.epochs} epochs per fit (first dropped), "
        f"{args.repeats} fits per variant, interleaved; a fresh checkpoint folder per fit",
        "",
        *table(results),
        "",
        "Per fit the mean of its measured epochs (an epoch runs from its `on_epoch_begin` to "
        "the next one's; the last ends when `fit` returns, so RunCheckpoint's wait for its "
        "last background write is included); per variant the median over fits; ratio = "
        "checkpoint / bare. *CPU*: `time.process_time` of the process (all threads, the "
        "checkpoint writer's included), the measure that stays meaningful when other jobs "
        "share the cores. *MB written/epoch*: bytes of the files a checkpoint adds (new "
        "inodes; median over epochs after the first) against the bytes of a checkpoint "
        "written in full (every file but the `best/` links); first epoch "
        + ", ".join(f"{r['backend']} {r['bytes_first_epoch'] / 1e6:.2f} MB" for r in results)
        + ".",
        "",
        "Per-backend detail (paired ratio = median over repeats of checkpoint/bare of the "
        "same repeat; first epoch = the dropped one):",
        "",
        "| backend | clock | paired ratio | first epoch bare / checkpoint | warm-up fit |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for clock in ("wall", "cpu"):
            c = r[clock]
            lines.append(
                f"| {r['backend']} | {clock} | {c['paired_ratio_median']:.3f} | "
                f"{c['first_epoch_bare_s']:.2f} / {c['first_epoch_checkpoint_s']:.2f} s | "
                f"{r['warmup_fit_s']:.1f} s |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:
        result = worker(args.backend, args)
        print("RESULT " + json.dumps(result), flush=True)
        print("\n".join(table([result])))
        return 0
    load_before = _loadavg()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        cmd = [sys.executable, __file__, "--backend", backend,
               "--steps", str(args.steps_of[backend]),
               "--epochs", str(args.epochs), "--repeats", str(args.repeats),
               "--threads", str(args.threads)]
        if args.tmp:
            cmd += ["--tmp", args.tmp]
        start = time.time()
        # Its own session, so that a timeout kills it with everything it started.
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                 start_new_session=True)
        try:
            stdout, _ = child.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            print(f"[{backend}] timed out after {args.timeout:.0f} s", file=sys.stderr)
            return 1
        lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            print(f"[{backend}] failed (exit {child.returncode})", file=sys.stderr)
            return 1
        result = json.loads(lines[-1][len("RESULT "):])
        print(f"[{backend}] done in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        results.append(result)
    command = "python benchmarks/bench_run_checkpoint.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    text = report(results, args, command.strip(), (load_before, _loadavg()), when)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
