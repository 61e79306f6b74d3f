"""Speed of ``keras_recipes.backend.loss_and_gradients``: compiled (default) vs eager.

``GradientHistogram`` calls ``loss_and_gradients`` on its probe batch every epoch, and the
recipes call it to draw gradient norms by depth, so its per-call cost is paid many times.
For each backend (one framework per process) this times, on the vanishing-gradients
recipe's model (a 20-layer, 64-unit MLP on 64 inputs, 10 classes; a probe of 100
samples):

- ``first``: the first call on a fresh model (tracing and compiling included);
- ``call``: the median of later calls, interleaving ``jit_compile=True`` (the default)
  and ``jit_compile=False`` (every op dispatched eagerly, as before 2026-11-28);
- ``21 calls``: the cost of one recipe variant's use (1 call at initialization + 20
  epochs), first call included, and its ratio compiled / eager (target: < 1).

PyTorch has no compiled path (it always runs eagerly): its two columns are the same code.

Usage (from the repository root):

    python benchmarks/bench_loss_and_gradients.py                   # all backends
    python benchmarks/bench_loss_and_gradients.py --backends jax --calls 30 --threads 1
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


def _model(keras, depth, width, n_in, n_out, seed):
    inputs = keras.Input((n_in,))
    h = inputs
    for i in range(depth):
        init = keras.initializers.HeNormal(seed=seed + i)
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(h)
    outputs = keras.layers.Dense(n_out)(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _worker(args) -> dict:
    import numpy as np

    from keras_recipes.backend import loss_and_gradients, set_num_threads

    if args.threads:
        set_num_threads(args.threads)
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.probe, 64)).astype("float32")
    y = rng.integers(0, 10, size=args.probe).astype("int32")
    first = {}
    for compiled in (True, False):  # a fresh model each: the first call of each path
        model = _model(keras, args.depth, 64, 64, 10, seed=1)
        loss_and_gradients(model, x[:2], y[:2], jit_compile=False)  # backend warm-up
        t0 = time.perf_counter()
        loss_and_gradients(model, x, y, jit_compile=compiled)
        first[compiled] = time.perf_counter() - t0
    model = _model(keras, args.depth, 64, 64, 10, seed=1)
    loss_and_gradients(model, x, y, jit_compile=True)
    loss_and_gradients(model, x, y, jit_compile=False)
    times = {True: [], False: []}
    for _ in range(args.calls):
        for compiled in (True, False):
            t0 = time.perf_counter()
            loss_and_gradients(model, x, y, jit_compile=compiled)
            times[compiled].append(time.perf_counter() - t0)
    call = {k: float(np.median(v)) for k, v in times.items()}
    per_variant = {k: first[k] + 20 * call[k] for k in (True, False)}
    return {
        "backend": keras.backend.backend(),
        "first_compiled": first[True],
        "first_eager": first[False],
        "call_compiled": call[True],
        "call_eager": call[False],
        "variant_compiled": per_variant[True],
        "variant_eager": per_variant[False],
        "ratio": per_variant[True] / per_variant[False],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--calls", type=int, default=20, help="timed calls of each path")
    parser.add_argument("--depth", type=int, default=20, help="hidden layers of the MLP")
    parser.add_argument("--probe", type=int, default=100, help="samples per call")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(args)), flush=True)
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"Invalid value for --backends: {b!r}. Expected some of {BACKENDS}.")
    rows = []
    for backend in backends:
        cmd = [sys.executable, __file__, "--worker", "--calls", str(args.calls),
               "--depth", str(args.depth), "--probe", str(args.probe),
               "--threads", str(args.threads)]
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(ROOT))
        print(f"[{backend}] timing ...", flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
            return 1
        rows.append(json.loads(lines[-1][len("RESULT "):]))
    print(f"\nloss_and_gradients, {args.depth}-layer MLP, probe {args.probe}; "
          f"threads {args.threads or 'default'}; load average {os.getloadavg()[0]:.1f}")
    print("| backend | first call compiled / eager (s) | later call compiled / eager (ms) "
          "| 21 calls compiled / eager (s) | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['first_compiled']:.2f} / {r['first_eager']:.2f} "
              f"| {1e3 * r['call_compiled']:.1f} / {1e3 * r['call_eager']:.1f} "
              f"| {r['variant_compiled']:.2f} / {r['variant_eager']:.2f} | {r['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
