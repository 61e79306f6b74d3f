"""Training-step time of virtual adversarial training (VAT) over the plain step, per backend.

For each backend (one framework per process), on the regularization recipe's CNN (16x16x3
images in [0, 1]; conv 16 and conv 32, 3x3, each with ReLU and 2x2 max pooling; dense 64;
10 logits) and batches of 64, this times ``model.fit`` on in-memory arrays, one epoch of
``--steps`` batches per variant and repeat, the variants interleaved (a fresh random order
in each repeat):

- plain: the network compiled and fit by itself;
- vat1: ``keras_recipes.models.VirtualAdversarialModel(net, epsilon=2.0,
  power_iterations=1, from_logits=True)`` around the same network (the same weight
  tensors), compiled with the same loss and optimizer;
- vat2: the same with ``power_iterations=2`` (one more forward and backward pass);

and prints the median step time of each, the ratios vat / plain of the medians, the median
and quartiles of the per-repeat (paired) ratios, the ratio in process CPU time, and the ratio
of the median single steps (each step timed from batch begin to batch end by a callback,
the first of each epoch dropped). The first ``fit`` of every variant (tracing, compiling)
and one whole warm-up epoch are not timed. A VAT step runs the clean forward pass, one
forward and one backward pass per power iteration (with respect to the input), the
perturbed forward pass, and the backward pass through the clean and perturbed passes:
expect roughly 2-3x the plain step with one power iteration (3x if a backward pass costs
two forward passes). On TensorFlow each ``fit`` call has a fixed cost that dilutes the
epoch-based ratios; the single-step ratios are the step's own.

Usage (from the repository root):

    python benchmarks/bench_vat_step.py                          # all backends
    python benchmarks/bench_vat_step.py --backends jax --repeats 15 --threads 1
    python benchmarks/bench_vat_step.py --threads 1 --json vat_step.json

Timings on a shared CPU are noisy: variants are interleaved within each repeat, medians are
reported, and the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "tensorflow", "jax")
VARIANTS = ("plain", "vat1", "vat2")


def _cnn(keras, size, classes, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    h = inputs
    for filters in (16, 32):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(classes)(h)
    return keras.Model(inputs, outputs, name="cnn")


def _worker(args) -> dict:
    import numpy as np

    from keras_recipes.backend import set_num_threads

    if args.threads:
        set_num_threads(args.threads)
    import keras

    from keras_recipes.models import VirtualAdversarialModel

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    n = args.steps * args.batch
    x = rng.random((n, args.size, args.size, 3), dtype="float32")
    y = rng.integers(0, 10, size=n).astype("int32")

    # One network, trained through every variant: the same weight tensors in the same
    # memory, so a difference of layout between two instances cannot pass for VAT's cost.
    net = _cnn(keras, args.size, 10, seed=0)
    models = {"plain": net}
    for k in (1, 2)[: args.power_iterations]:
        models[f"vat{k}"] = VirtualAdversarialModel(
            net, epsilon=args.epsilon, power_iterations=k, from_logits=True, seed=0)
    for m in models.values():
        m.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x[: args.batch], y[: args.batch], batch_size=args.batch, epochs=1,
              verbose=0)  # tracing and compiling: not timed
    jit = {name: str(m.jit_compile) for name, m in models.items()}

    class StepTimer(keras.callbacks.Callback):
        """Wall time of each step (batch begin to batch end), the first of an epoch dropped."""

        def __init__(self):
            super().__init__()
            self.steps = []
            self.active = False

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.active and batch > 0:
                self.steps.append(time.perf_counter() - self._start)

    timers = {name: StepTimer() for name in models}

    def epoch(name):
        models[name].fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0,
                         callbacks=[timers[name]])

    for name in models:  # one warm-up epoch each (allocator, caches)
        epoch(name)
    for t in timers.values():
        t.active = True
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    order = list(models)
    shuffle = np.random.default_rng(1)
    for _ in range(args.repeats):
        shuffle.shuffle(order)
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            epoch(name)
            wall[name].append((time.perf_counter() - start) / args.steps)
            cpu[name].append((time.process_time() - start_cpu) / args.steps)

    def med(t):
        return float(np.median(t))

    result = {"backend": backend, "keras": keras.__version__, "jit_compile": jit,
              "step_ms": {k: 1e3 * med(v) for k, v in wall.items()},
              "step_cpu_ms": {k: 1e3 * med(v) for k, v in cpu.items()},
              "single_step_ms": {k: 1e3 * med(t.steps) for k, t in timers.items()},
              "single_steps": min(len(t.steps) for t in timers.values()),
              "paired": {}}
    for name in models:
        if name != "plain":
            r = np.asarray(wall[name]) / np.asarray(wall["plain"])
            result["paired"][name] = [float(v) for v in np.percentile(r, [25, 50, 75])]
    return result


def _table(rows, variants):
    vats = [v for v in variants if v != "plain"]
    head = ("| backend | plain ms/step | "
            + " | ".join(f"{v} ms/step" for v in vats) + " | "
            + " | ".join(f"{v} / plain (medians) | {v} / plain paired, median [IQR] | "
                         f"{v} / plain CPU | {v} / plain single steps" for v in vats) + " |")
    lines = [head, "|---|" + "---:|" * (1 + len(vats) + 4 * len(vats))]
    for r in rows:
        ms, cpu, one = r["step_ms"], r["step_cpu_ms"], r["single_step_ms"]
        cells = [r["backend"], f"{ms['plain']:.1f}"] + [f"{ms[v]:.1f}" for v in vats]
        for v in vats:
            q = r["paired"][v]
            cells += [f"{ms[v] / ms['plain']:.2f}x", f"{q[1]:.2f}x [{q[0]:.2f}, {q[2]:.2f}]",
                      f"{cpu[v] / cpu['plain']:.2f}x", f"{one[v] / one['plain']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load():
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--repeats", type=int, default=11,
                        help="timed epochs per variant (interleaved)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per timed epoch")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=16, help="image side (RGB)")
    parser.add_argument("--epsilon", type=float, default=2.0, help="VAT perturbation norm")
    parser.add_argument("--power-iterations", type=int, default=2, choices=(1, 2),
                        help="1: time vat1 only; 2: also vat2")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU compute threads (0: the framework's default; 1: also one "
                             "XLA thread on jax)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(args)), flush=True)
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"Invalid value for --backends: {b!r}. Expected some of {BACKENDS}.")
    load_before, rows = _load(), []
    forwarded = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
        "repeats", "steps", "batch", "size", "epsilon", "power_iterations", "threads")]
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if backend == "jax" and args.threads == 1:  # XLA's CPU thread pool: one thread
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        print(f"[{backend}] timing ...", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", *forwarded], env=env,
                              cwd=ROOT, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            return 1
        rows.append(json.loads(lines[-1][len("RESULT "):]))
        rows[-1]["process_s"] = time.perf_counter() - start
    variants = VARIANTS[: 1 + args.power_iterations]
    print(f"\nVirtualAdversarialModel step vs plain step: CNN on {args.size}x{args.size}x3, "
          f"batch {args.batch}, epsilon {args.epsilon}; {args.steps} steps per timed epoch, "
          f"median of {args.repeats} interleaved epochs per variant; threads "
          f"{args.threads or 'default'}; load average 1/5/15 min {load_before} before, "
          f"{_load()} after")
    print(_table(rows, variants))
    for r in rows:
        jit = ", ".join(f"{k} {v}" for k, v in r["jit_compile"].items())
        print(f"{r['backend']}: jit_compile {jit}; "
              f"{r['single_steps']} single steps per variant; process {r['process_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": {k: v for k, v in vars(args).items() if k not in ("worker", "json")},
             "load_before": load_before, "load_after": _load(), "results": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
