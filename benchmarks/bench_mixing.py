"""Speed of keras_recipes' MixUp / CutMix / MixUpOrCutMix against keras.layers and a floor.

For each backend (one framework per process), on a (128, 224, 224, 3) float32 batch with
(128, 1000) one-hot labels, this times, interleaved and repeated (medians):

- ours: ``keras_recipes.layers.MixUp`` / ``CutMix`` / ``MixUpOrCutMix`` called eagerly,
  ``layer(x, y, training=True)``, as a user calls it;
- keras: ``keras.layers.MixUp`` / ``CutMix`` (3.15) on ``{"images": x, "labels": y}``;
- floor: the simplest vectorized implementation of the same math in that framework
  (per-sample λ from the framework's own Beta/Gamma sampler, a random permutation, the
  blend or an integer box pasted with ``where``), ``jax.jit``-compiled on JAX,
  ``tf.function`` on TensorFlow, eager on torch;

and prints ratios (target: ours <= 1.1x floor, and faster than keras). It also times a
training step of a small CNN (``fit`` on 32x32x3 images, 10 classes) with and without
``AugmentedModel(model, MixUp(...))`` (target: mixing adds <= 3%), and of a control,
``AugmentedModel`` with an identity augmentation (no work: its difference from the plain
step is the spread of the measurement itself), in wall time and in
process CPU time (the fair figure when other jobs share the CPU). Each repeat times one
epoch of both models back to back; besides the ratio of the two medians it prints the
median and quartiles of the per-repeat ratios (paired: a slow drift of the machine moves
both members of a pair alike), and the median of the single steps of each model (each step
timed from batch begin to batch end, hundreds of them: the figure least moved by a slow
epoch; on JAX, which dispatches asynchronously, it is the steady-state rate).

Usage (from the repository root):

    python benchmarks/bench_mixing.py                      # all backends, one after another
    python benchmarks/bench_mixing.py --backends jax --repeats 5
    python benchmarks/bench_mixing.py --backends torch --repeats 0 --model-repeats 21  # step only
    python benchmarks/bench_mixing.py --backends torch --repeats 0 --tuned-malloc  # no page churn
    python benchmarks/bench_mixing.py --markdown benchmarks/results/mixing.md

Timings on a shared CPU are noisy: variants are interleaved within each repeat, the
median is reported, and the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "tensorflow", "jax")


# ---------------------------------------------------------------------------------------
# Floors: the same math, written plainly in each framework.


def _torch_floors(alpha_mix, alpha_cut, switch_prob):
    import torch

    def beta(alpha, n):
        return torch.distributions.Beta(alpha, alpha).sample((n,))

    def box_mask(lam, n, h, w):
        ratio = torch.sqrt(1.0 - lam)
        bh, bw = torch.round(ratio * h), torch.round(ratio * w)
        cy, cx = torch.randint(0, h, (n,)).float(), torch.randint(0, w, (n,)).float()
        y0 = torch.clamp(cy - torch.floor(bh / 2), 0, h)
        y1 = torch.clamp(cy - torch.floor(bh / 2) + bh, 0, h)
        x0 = torch.clamp(cx - torch.floor(bw / 2), 0, w)
        x1 = torch.clamp(cx - torch.floor(bw / 2) + bw, 0, w)
        rows, cols = torch.arange(h).float(), torch.arange(w).float()
        r = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])
        c = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])
        frac = (y1 - y0) * (x1 - x0) / (h * w)
        return r[:, :, None, None] & c[:, None, :, None], frac

    def mixup(x, y):
        n = x.shape[0]
        lam, perm = beta(alpha_mix, n), torch.randperm(n)
        lx, ly = lam.view(-1, 1, 1, 1), lam.view(-1, 1)
        return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm]

    def cutmix(x, y):
        n, h, w = x.shape[0], x.shape[1], x.shape[2]
        mask, frac = box_mask(beta(alpha_cut, n), n, h, w)
        perm = torch.randperm(n)
        f = frac.view(-1, 1)
        return torch.where(mask, x[perm], x), (1 - f) * y + f * y[perm]

    def mix_or_cut(x, y):
        n, h, w = x.shape[0], x.shape[1], x.shape[2]
        cut = torch.rand(n) < switch_prob
        c = torch.where(cut, 0.0, 1 - beta(alpha_mix, n))
        mask, frac = box_mask(beta(alpha_cut, n), n, h, w)
        mask = mask & cut.view(-1, 1, 1, 1)
        frac = torch.where(cut, frac, 0.0)
        perm = torch.randperm(n)
        xp = x[perm]
        out = torch.where(mask, xp, x + c.view(-1, 1, 1, 1) * (xp - x))
        wgt = (c + frac).view(-1, 1)
        return out, y + wgt * (y[perm] - y)

    return {"MixUp": mixup, "CutMix": cutmix, "MixUpOrCutMix": mix_or_cut}


def _jax_floors(alpha_mix, alpha_cut, switch_prob):
    import jax
    import jax.numpy as jnp

    base = jax.random.key(0)

    def box_mask(key, lam, n, h, w):
        k1, k2 = jax.random.split(key)
        ratio = jnp.sqrt(1.0 - lam)
        bh, bw = jnp.round(ratio * h), jnp.round(ratio * w)
        cy = jax.random.randint(k1, (n,), 0, h).astype("float32")
        cx = jax.random.randint(k2, (n,), 0, w).astype("float32")
        y0 = jnp.clip(cy - jnp.floor(bh / 2), 0, h)
        y1 = jnp.clip(cy - jnp.floor(bh / 2) + bh, 0, h)
        x0 = jnp.clip(cx - jnp.floor(bw / 2), 0, w)
        x1 = jnp.clip(cx - jnp.floor(bw / 2) + bw, 0, w)
        rows, cols = jnp.arange(h), jnp.arange(w)
        r = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])
        c = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])
        return r[:, :, None, None] & c[:, None, :, None], (y1 - y0) * (x1 - x0) / (h * w)

    @jax.jit
    def mixup(i, x, y):
        k1, k2 = jax.random.split(jax.random.fold_in(base, i))
        n = x.shape[0]
        lam, perm = jax.random.beta(k1, alpha_mix, alpha_mix, (n,)), jax.random.permutation(k2, n)
        lx, ly = lam.reshape(-1, 1, 1, 1), lam.reshape(-1, 1)
        return lx * x + (1 - lx) * x[perm], ly * y + (1 - ly) * y[perm]

    @jax.jit
    def cutmix(i, x, y):
        k1, k2, k3 = jax.random.split(jax.random.fold_in(base, i), 3)
        n, h, w = x.shape[:3]
        mask, frac = box_mask(k2, jax.random.beta(k1, alpha_cut, alpha_cut, (n,)), n, h, w)
        perm = jax.random.permutation(k3, n)
        f = frac.reshape(-1, 1)
        return jnp.where(mask, x[perm], x), (1 - f) * y + f * y[perm]

    @jax.jit
    def mix_or_cut(i, x, y):
        k1, k2, k3, k4, k5 = jax.random.split(jax.random.fold_in(base, i), 5)
        n, h, w = x.shape[:3]
        cut = jax.random.uniform(k1, (n,)) < switch_prob
        c = jnp.where(cut, 0.0, 1 - jax.random.beta(k2, alpha_mix, alpha_mix, (n,)))
        mask, frac = box_mask(k4, jax.random.beta(k3, alpha_cut, alpha_cut, (n,)), n, h, w)
        mask = mask & cut.reshape(-1, 1, 1, 1)
        frac = jnp.where(cut, frac, 0.0)
        perm = jax.random.permutation(k5, n)
        xp = x[perm]
        out = jnp.where(mask, xp, x + c.reshape(-1, 1, 1, 1) * (xp - x))
        return out, y + (c + frac).reshape(-1, 1) * (y[perm] - y)

    counter = iter(range(10**9))

    def counted(step):
        return lambda x, y: step(next(counter), x, y)

    return {"MixUp": counted(mixup), "CutMix": counted(cutmix),
            "MixUpOrCutMix": counted(mix_or_cut)}


def _tf_floors(alpha_mix, alpha_cut, switch_prob):
    import tensorflow as tf

    def beta(seed, alpha, n):
        g1 = tf.random.stateless_gamma((n,), seed, alpha)
        g2 = tf.random.stateless_gamma((n,), seed + 1, alpha)
        return g1 / (g1 + g2)

    def perm_of(seed, n):
        return tf.argsort(tf.random.stateless_uniform((n,), seed))

    def box_mask(seed, lam, n, h, w):
        ratio = tf.sqrt(1.0 - lam)
        bh, bw = tf.round(ratio * h), tf.round(ratio * w)
        cy = tf.floor(tf.random.stateless_uniform((n,), seed) * h)
        cx = tf.floor(tf.random.stateless_uniform((n,), seed + 1) * w)
        y0 = tf.clip_by_value(cy - tf.floor(bh / 2), 0, h)
        y1 = tf.clip_by_value(cy - tf.floor(bh / 2) + bh, 0, h)
        x0 = tf.clip_by_value(cx - tf.floor(bw / 2), 0, w)
        x1 = tf.clip_by_value(cx - tf.floor(bw / 2) + bw, 0, w)
        rows, cols = tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32)
        r = (rows[None] >= y0[:, None]) & (rows[None] < y1[:, None])
        c = (cols[None] >= x0[:, None]) & (cols[None] < x1[:, None])
        return r[:, :, None, None] & c[:, None, :, None], (y1 - y0) * (x1 - x0) / (h * w)

    @tf.function
    def mixup(seed, x, y):
        n = x.shape[0]
        lam, perm = beta(seed, alpha_mix, n), perm_of(seed + 2, n)
        lx, ly = tf.reshape(lam, (-1, 1, 1, 1)), tf.reshape(lam, (-1, 1))
        return lx * x + (1 - lx) * tf.gather(x, perm), ly * y + (1 - ly) * tf.gather(y, perm)

    @tf.function
    def cutmix(seed, x, y):
        n, h, w = x.shape[0], x.shape[1], x.shape[2]
        mask, frac = box_mask(seed + 2, beta(seed, alpha_cut, n), n, h, w)
        perm = perm_of(seed + 4, n)
        f = tf.reshape(frac, (-1, 1))
        return tf.where(mask, tf.gather(x, perm), x), (1 - f) * y + f * tf.gather(y, perm)

    @tf.function
    def mix_or_cut(seed, x, y):
        n, h, w = x.shape[0], x.shape[1], x.shape[2]
        cut = tf.random.stateless_uniform((n,), seed) < switch_prob
        c = tf.where(cut, 0.0, 1 - beta(seed + 1, alpha_mix, n))
        mask, frac = box_mask(seed + 5, beta(seed + 3, alpha_cut, n), n, h, w)
        mask = mask & tf.reshape(cut, (-1, 1, 1, 1))
        frac = tf.where(cut, frac, 0.0)
        perm = perm_of(seed + 7, n)
        xp = tf.gather(x, perm)
        out = tf.where(mask, xp, x + tf.reshape(c, (-1, 1, 1, 1)) * (xp - x))
        return out, y + tf.reshape(c + frac, (-1, 1)) * (tf.gather(y, perm) - y)

    counter = iter(range(0, 10**9, 16))

    def seeded(f):
        return lambda x, y: f(tf.constant([next(counter), 7], tf.int32), x, y)

    return {"MixUp": seeded(mixup), "CutMix": seeded(cutmix),
            "MixUpOrCutMix": seeded(mix_or_cut)}


# ---------------------------------------------------------------------------------------
# One backend, in this process.


def _sync_fn(backend):
    if backend == "jax":
        import jax

        return jax.block_until_ready
    return lambda out: out  # torch CPU and TF eager / tf.function calls return when done


def _set_threads(backend, threads):
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _time_interleaved(variants, args, repeats, sync, warmup=2, cpu=False, raw=False):
    """Median wall seconds per variant (and, with `cpu`, median process CPU seconds);
    with `raw`, the per-repeat lists instead of their medians."""
    import numpy as np

    for f in variants.values():
        for _ in range(warmup):
            sync(f(*args))
    times = {name: [] for name in variants}
    cpu_times = {name: [] for name in variants}
    order = list(variants)
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            sync(variants[name](*args))
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - start_cpu)
    if raw:
        return (times, cpu_times) if cpu else times
    wall = {name: float(np.median(t)) for name, t in times.items()}
    return (wall, {name: float(np.median(t)) for name, t in cpu_times.items()}) if cpu else wall


def _layers_benchmark(backend, args):
    import keras
    import numpy as np

    from keras_recipes.layers import CutMix, MixUp, MixUpOrCutMix

    sync = _sync_fn(backend)
    rng = np.random.default_rng(0)
    n, size, k = args.batch, args.size, args.classes
    x = keras.ops.convert_to_tensor(rng.random((n, size, size, 3), dtype="float32") * 255)
    y = keras.ops.convert_to_tensor(np.eye(k, dtype="float32")[rng.integers(0, k, n)])
    floors = {"torch": _torch_floors, "jax": _jax_floors,
              "tensorflow": _tf_floors}[backend](0.2, 1.0, 0.5)
    ours = {"MixUp": MixUp(alpha=0.2, seed=0), "CutMix": CutMix(alpha=1.0, seed=0),
            "MixUpOrCutMix": MixUpOrCutMix(0.2, 1.0, switch_prob=0.5, seed=0)}
    theirs = {"MixUp": keras.layers.MixUp(alpha=0.2, seed=0),
              "CutMix": keras.layers.CutMix(factor=1.0, seed=0)}
    rows = []
    for name in ("MixUp", "CutMix", "MixUpOrCutMix"):
        variants = {
            "ours": lambda x, y, layer=ours[name]: layer(x, y, training=True),
            "floor": floors[name],
        }
        if name in theirs:
            variants["keras"] = (lambda x, y, layer=theirs[name]:
                                 layer({"images": x, "labels": y}, training=True))
        med = _time_interleaved(variants, (x, y), args.repeats, sync)
        rows.append({"backend": backend, "layer": name, **{f"{v}_ms": 1e3 * t
                                                           for v, t in med.items()}})
    return rows


def _model_benchmark(backend, args):
    import keras
    import numpy as np

    from keras_recipes.layers import MixUp
    from keras_recipes.models import AugmentedModel

    rng = np.random.default_rng(0)
    steps, batch, k = args.model_steps, 128, 10
    x = rng.random((steps * batch, 32, 32, 3), dtype="float32")
    y = np.eye(k, dtype="float32")[rng.integers(0, k, steps * batch)]

    def cnn():
        keras.utils.set_random_seed(0)
        return keras.Sequential([
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
            keras.layers.Flatten(), keras.layers.Dense(k, activation="softmax"),
        ])

    # One network, trained through both: the same weight tensors in the same memory, so a
    # difference of layout between two instances cannot pass for the cost of mixing.
    base = cnn()

    class Identity(keras.layers.Layer):
        """The control: an augmentation that returns its inputs (no work at all)."""

        def call(self, x, y=None, training=None):
            return x, y

    models = {"plain": base, "augmented": AugmentedModel(base, MixUp(alpha=0.2, seed=0)),
              "control": AugmentedModel(base, Identity())}
    for m in models.values():
        m.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy",
                  jit_compile=backend != "torch")
        m.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # compile

    class StepTimer(keras.callbacks.Callback):
        """Wall time of each training step (batch begin to batch end), first of an epoch dropped:
        a median over hundreds of steps is not moved by the odd slow epoch of a shared CPU."""

        def __init__(self):
            super().__init__()
            self.steps = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch > 0:
                self.steps.append(time.perf_counter() - self._start)

    timers = {name: StepTimer() for name in models}
    in_step = []  # torch: wall time of the augmentation inside each training step
    if backend == "torch":
        # Eager on the CPU: the augmentation's own share of the step can be timed directly
        # (call, argument unpacking and packing included); compiled backends fuse it.
        from keras_recipes.backend import train_step as ts

        augment = ts.augment_batch

        def timed_augment(model, data):
            start = time.perf_counter()
            out = augment(model, data)
            if model is models["augmented"]:  # not the control
                in_step.append(time.perf_counter() - start)
            return out

        ts.augment_batch = timed_augment

    def epoch(m, name):
        return m.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0,
                     callbacks=[timers[name]])

    # Wall time on a shared CPU is bimodal (other jobs take the core for whole epochs, both
    # variants alike), so the process CPU time is reported next to it.
    times, cpu_times = _time_interleaved(
        {name: (lambda m=m, name=name: epoch(m, name)) for name, m in models.items()}, (),
        args.model_repeats,
        lambda out: out, warmup=1, cpu=True, raw=True)
    med = {name: float(np.median(t)) for name, t in times.items()}
    med_cpu = {name: float(np.median(t)) for name, t in cpu_times.items()}

    def paired(t):
        # Each repeat times the variants back to back: the ratio within a repeat cancels the
        # slow drifts of a shared machine that the ratio of two medians keeps.
        r = np.asarray(t["augmented"]) / np.asarray(t["plain"]) - 1
        return [float(v) for v in np.percentile(r, [25, 50, 75])]

    return {"backend": backend, "plain_step_ms": 1e3 * med["plain"] / steps,
            "augmented_step_ms": 1e3 * med["augmented"] / steps,
            "plain_step_cpu_ms": 1e3 * med_cpu["plain"] / steps,
            "augmented_step_cpu_ms": 1e3 * med_cpu["augmented"] / steps,
            "paired_overhead": paired(times), "paired_cpu_overhead": paired(cpu_times),
            "step_median_ms": {name: 1e3 * float(np.median(t.steps)) for name, t in timers.items()},
            "step_count": min(len(t.steps) for t in timers.values()),
            "control_step_ms": 1e3 * med["control"] / steps,
            "control_cpu_ms": 1e3 * med_cpu["control"] / steps,
            "in_step_ms": 1e3 * float(np.median(in_step)) if in_step else None}


def run_one(backend, args):
    _set_threads(backend, args.threads)
    result = {"layers": _layers_benchmark(backend, args) if args.repeats > 0 else []}
    if args.model_steps > 0:
        result["model"] = _model_benchmark(backend, args)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------
# Driver: one process per backend, then the table.


def _load():
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _table(results):
    lines = ["| backend | layer | ours ms | floor ms | keras ms | ours / floor | "
             "keras / floor | ours / keras |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        for r in res["layers"]:
            keras_ms = r.get("keras_ms")
            lines.append(
                f"| {r['backend']} | {r['layer']} | {r['ours_ms']:.1f} | {r['floor_ms']:.1f} | "
                + (f"{keras_ms:.1f}" if keras_ms else "-") + " | "
                + f"{r['ours_ms'] / r['floor_ms']:.2f}x | "
                + (f"{keras_ms / r['floor_ms']:.2f}x" if keras_ms else "-") + " | "
                + (f"{r['ours_ms'] / keras_ms:.2f}x" if keras_ms else "-") + " |"
            )
    notes = []
    model_lines = ["| backend | plain step ms | AugmentedModel(MixUp) step ms | overhead | "
                   "paired overhead, median [IQR] | plain step CPU ms | "
                   "AugmentedModel step CPU ms | CPU overhead | paired CPU overhead [IQR] | "
                   "median single step, plain / augmented ms (steps each) | step overhead |",
                   "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def iqr(q):
        return f"{100 * q[1]:+.1f}% [{100 * q[0]:+.1f}, {100 * q[2]:+.1f}]"

    for res in results:
        m = res.get("model")
        if m:
            over = m["augmented_step_ms"] / m["plain_step_ms"] - 1
            over_cpu = m["augmented_step_cpu_ms"] / m["plain_step_cpu_ms"] - 1
            step_over = m["step_median_ms"]["augmented"] / m["step_median_ms"]["plain"] - 1
            model_lines.append(f"| {m['backend']} | {m['plain_step_ms']:.1f} | "
                               f"{m['augmented_step_ms']:.1f} | {100 * over:+.1f}% | "
                               f"{iqr(m['paired_overhead'])} | "
                               f"{m['plain_step_cpu_ms']:.1f} | {m['augmented_step_cpu_ms']:.1f} | "
                               f"{100 * over_cpu:+.1f}% | {iqr(m['paired_cpu_overhead'])} | "
                               f"{m['step_median_ms']['plain']:.1f} / "
                               f"{m['step_median_ms']['augmented']:.1f} ({m['step_count']}) | "
                               f"{100 * step_over:+.1f}% |")
            if "control_step_ms" in m:
                step_ms = m["step_median_ms"]
                notes.append(
                    f"{m['backend']}: control, AugmentedModel with an identity augmentation (no "
                    f"work): {100 * (m['control_step_ms'] / m['plain_step_ms'] - 1):+.1f}% wall, "
                    f"{100 * (m['control_cpu_ms'] / m['plain_step_cpu_ms'] - 1):+.1f}% CPU, "
                    f"single-step median "
                    f"{100 * (step_ms['control'] / step_ms['plain'] - 1):+.1f}%"
                    " vs plain: the spread of this measurement")
            if m.get("in_step_ms"):
                notes.append(
                    f"{m['backend']}: the augmentation inside the step (timed directly, eager): "
                    f"median {m['in_step_ms']:.2f} ms = "
                    f"{100 * m['in_step_ms'] / m['step_median_ms']['plain']:.1f}% of the median "
                    "plain step")
    return "\n".join(lines), "\n".join(model_lines + ([""] + notes if notes else []))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=11,
                        help="timed calls per variant (0: skip the layer benchmark)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch / TF compute threads (1: also one XLA thread on jax)")
    parser.add_argument("--model-steps", type=int, default=10,
                        help="steps per timed epoch of the CNN benchmark (0: skip it)")
    parser.add_argument("--model-repeats", type=int, default=5)
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="run the workers with glibc's mmap and trim thresholds raised "
                             "(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_): large tensors "
                             "are then reused from the heap instead of being mapped, faulted "
                             "in and unmapped at every step")
    parser.add_argument("--markdown", default=None, help="also write the tables here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args(argv)

    if args.one:
        run_one(args.one, args)
        return

    results, load_before = [], _load()
    forwarded = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in (
        "batch", "size", "classes", "repeats", "threads", "model_steps", "model_repeats")]
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        if args.tuned_malloc:  # read by glibc at process start
            env.update(MALLOC_MMAP_THRESHOLD_=str(2**32), MALLOC_TRIM_THRESHOLD_=str(2**36))
        if backend == "jax" and args.threads == 1:  # XLA's CPU thread pool: one thread
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        print(f"--- {backend} ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--one", backend, *forwarded], env=env,
                              cwd=ROOT, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            raise SystemExit(f"{backend} failed")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    layers, model = _table(results)
    import keras

    header = (
        f"Date: {datetime.date.today().isoformat()}. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, shared with other jobs (load average 1/5/15 min: "
        f"{load_before} before, {_load()} after). Keras {keras.__version__}, "
        f"{args.threads} compute thread(s) for torch/TF"
        + (" and XLA" if args.threads == 1 else "")
        + (", glibc malloc thresholds raised (--tuned-malloc)" if args.tuned_malloc else "")
        + f", median of {args.repeats} interleaved "
        f"calls per variant, batch ({args.batch}, {args.size}, {args.size}, 3) float32, "
        f"labels ({args.batch}, {args.classes}) one-hot."
    )
    print(header)
    print(layers)
    print(model)
    if args.markdown:
        cmd = "python benchmarks/bench_mixing.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]))
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(
            f"# Mixing layers: speed\n\nCommand: `{cmd.strip()}`\n\n{header}\n\n"
            f"## Layers (eager call; floor jitted on JAX, tf.function on TF)\n\n{layers}\n\n"
            f"## Training step of a small CNN (fit, batch 128 of 32x32x3)\n\n{model}\n"
        )
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
