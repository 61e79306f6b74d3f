"""recipes/transfer_vgg19.py end to end: smoke run, kill -9 + --resume, NaN stop, bad inputs.

Time budget: one `--smoke` run as a subprocess, killed with SIGKILL at the end of a training
epoch (``tests/recipes/kill_recipe.py`` injects the kill as a callback) and resumed in this
process (a module fixture shared by the tests), then two short runs that reuse its cached
source task: an uninterrupted reference on 2 replicas (each backend's ``--distribute`` engine,
a subprocess) and a NaN stop (in-process). Nothing is downloaded: the
recipe falls back to the bundled digits. The recipe's parts (RunCheckpoint, WeightHistogram,
StopOnNonFinite, epoch_batches, ...) have tests of their own; these check the script through
its interface only (``main``: flags, exit status, outputs, extra callbacks), with library
functions replaced where the real ones would download or train VGG19 (a tiny network in its
place, the course's data and weights as stand-ins).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_recipes  # noqa: F401  (registers the classes best.keras needs)
from keras_recipes.callbacks import latest_checkpoint
from keras_recipes.callbacks.checkpoint_files import load_arrays
from keras_recipes.callbacks.event_writer import read_histograms, read_scalars
from keras_recipes.callbacks.run_checkpoint import _fit_callback_list
from tests import processes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "transfer_vgg19.py"
KILLER = ROOT / "tests" / "recipes" / "kill_recipe.py"
SMOKE = ["--smoke", "--threads", "1"]
TIMEOUT = 1800  # subprocess runs; generous for a shared machine (a 900 s limit expired here)
BACKENDS = ("torch", "tensorflow", "jax")


def _load_recipe():
    spec = importlib.util.spec_from_file_location("transfer_vgg19_recipe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3",
               KERAS_HOME=env.get("KERAS_HOME", str(Path.home() / ".keras")), **extra)
    return env


def _only_run(out: Path) -> Path:
    runs = sorted(out.glob("transfer_vgg19-*"))
    assert len(runs) == 1, runs
    return runs[0]


def _metrics(out: Path) -> dict:
    return json.loads((_only_run(out) / "metrics.json").read_text())


def _with_cache(src_out: Path, dst_out: Path) -> Path:
    """A fresh --out folder holding the smoke run's cached source task (no retraining)."""
    dst_out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src_out / "_cache", dst_out / "_cache")
    return dst_out


class _DispatchProbe(keras.callbacks.Callback):
    """Records, at each ``fit``, whether Keras runs the batch hooks asynchronously."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self.async_train = []

    def set_model(self, model):
        super().set_model(model)
        callbacks = _fit_callback_list(self)
        if callbacks is not None:
            self.async_train.append(callbacks._async_train)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`--smoke` as a user runs it (a subprocess), killed with SIGKILL at epoch 3, then resumed.

    The kill comes at the end of the training batch of epoch 3 of the transfer run
    (fine-tuning, after the unfreeze), before its validation and checkpoint; `--resume` (in
    this process, to spare a second start-up) finishes the transfer run and the from-scratch
    run.
    """
    out = tmp_path_factory.mktemp("smoke")
    # $KERAS_BACKEND names another backend: --backend must win (applied before Keras loads).
    env = _env()
    env["KERAS_BACKEND"] = next(b for b in BACKENDS if b != keras.backend.backend())
    killed = processes.run(
        [sys.executable, str(KILLER), "2", *SMOKE, "--backend", keras.backend.backend(),
         "--out", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )
    run = _only_run(out)
    checkpoints = sorted(p.name for p in (run / "state" / "transfer").glob("epoch-*"))
    metrics_before = (run / "metrics.json").exists()
    printed = io.StringIO()
    probe = _DispatchProbe()
    with contextlib.redirect_stdout(printed):
        code = recipe.main([*SMOKE, "--resume", "--out", str(out)], extra_callbacks=[probe])
    return out, killed, checkpoints, metrics_before, code, printed.getvalue(), probe


def test_smoke_run_killed_then_resumed_outputs(smoke, keras_backend):
    out, killed, checkpoints, metrics_before, code, printed, _ = smoke
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert "Traceback" not in killed.stderr
    if keras.backend.backend() != "tensorflow":  # TensorFlow only feeds the data: quiet
        for notice in ("absl::InitializeLog", "oneDNN", "cuda drivers", "cpu_feature_guard"):
            assert notice not in killed.stderr, killed.stderr[:2000]
    assert "OFFLINE" not in killed.stdout  # --smoke never tries to download
    assert killed.stdout.count("config: {") == 1  # the resolved configuration, printed once
    assert checkpoints == ["epoch-0001"] and not metrics_before  # epochs 1-2 done, 3 cut short
    assert code == 0
    assert "RunCheckpoint: 2 epoch(s) done, resuming from" in printed
    run = _only_run(out)
    for name in ("config.json", "metrics.json", "history.csv", "curves.png",
                 "gradient_norms.png", "best.keras", "best_check.npz"):
        assert (run / name).is_file(), name
    # TensorBoard: epoch scalars, gradient histograms/norms, weight histograms (epochs 0, 2),
    # each epoch written once although the run was killed and resumed.
    scalars = read_scalars(run / "logs" / "transfer" / "train")
    histograms = read_histograms(run / "logs" / "transfer" / "train")
    assert sorted(step for step, _ in scalars["epoch_loss"]) == [0, 1, 2]
    assert sorted(step for step, _ in scalars["gradient_norm/global"]) == [0, 1, 2]
    assert "gradients/backbone/block1_conv1/kernel" in histograms
    assert sorted({step for step, _ in histograms["block1_conv1/kernel/histogram"]}) == [0, 2]
    val_scalars = read_scalars(run / "logs" / "transfer" / "validation")
    assert sorted({step for step, _ in val_scalars["epoch_top1"]}) == [0, 1, 2]

    config = json.loads((run / "config.json").read_text())
    plan = config["plan"]
    assert (plan["data"], plan["weights"], plan["head"]) == ("digits", "source", "gap")
    assert (plan["image_size"], plan["batch_size"], plan["scratch"]) == (32, 10, True)
    assert config["backend"] == keras_backend and config["config"]["smoke"] is True

    m = json.loads((run / "metrics.json").read_text())
    assert m["complete"] is True
    s = m["summary"]
    assert s["backend"] == keras_backend and s["sessions"] == 2
    assert s["counts"] == {"train": 10, "validation": 10, "test": 10}
    assert s["classes"] == ["5", "6", "7", "8", "9"]
    assert m["source_task"]["images"] == 10 and m["source_task"]["cached"] is True
    # The summary: data set, weights' origin, backend, device, wall time, and val/test
    # top-1 per phase, in metrics.json and printed.
    assert "digits" in s["data"] and s["weights"].startswith("VGG19 trained on digits 0-4")
    assert s["device"] and s["wall_seconds"] > 0
    assert s["distribute"] == {"kind": "none", "replicas": 1, "processes": 1}
    for line in (f"data:     {s['data']}", f"weights:  {s['weights']}",
                 f"backend:  {keras_backend} on {s['device']}", "wall:     ",
                 "transfer  phase head (epochs 1-1): val top-1 ",
                 "transfer  phase fine-tune (epochs 2-3): val top-1 ",
                 "scratch   phase scratch (epochs 1-3): val top-1 ",
                 "transfer - scratch: test_top1 ", f"outputs in {run}",
                 f"tensorboard --logdir {run / 'logs'}"):
        assert line in printed, line
    transfer, scratch = m["variants"]["transfer"], m["variants"]["scratch"]
    assert transfer["sessions"] == 2 and scratch["sessions"] == 1
    for res in (transfer, scratch):
        hist = res["history"]
        assert [h["epoch"] for h in hist] == [1, 2, 3]
        for h in hist:
            for key in ("top1", "val_top1", "val_top5"):
                # accuracies over 10 images are multiples of 0.1
                assert abs(h[key] * 10 - round(h[key] * 10)) < 1e-4, (key, h[key])
            assert h["val_top5"] == pytest.approx(1.0)  # 5 classes: top-5 is always right
        # The best epoch is the first with the highest val top-1.
        best = max(range(3), key=lambda i: (hist[i]["val_top1"], -i))
        assert res["final"]["best_epoch"] == best + 1
        assert res["final"]["val_top1"] == pytest.approx(hist[best]["val_top1"])
        assert res["images_per_second"] > 0 and res["stop_reason"] == "completed"
    # Test scores at the end of each phase (EvaluateAt), in the history and the phases.
    assert ["test_top1" in h for h in transfer["history"]] == [True, False, True]
    assert ["test_top1" in h for h in scratch["history"]] == [False, False, True]
    # Phase 1 trains the head at 1e-3, phase 2 everything at 1e-4 (UnfreezeSchedule); the
    # resumed session re-applied the unfreeze stage from the checkpointed state (an event
    # without an epoch: it happened at the restore, not at an epoch's start).
    assert [h["learning_rate"] for h in transfer["history"]] == pytest.approx([1e-3, 1e-4, 1e-4])
    assert [h["learning_rate"] for h in scratch["history"]] == pytest.approx([1e-3] * 3)
    (event,) = transfer["unfreeze_events"]
    assert event["epoch"] is None and event["trainable_params"] == 20_024_384 + 512 * 5 + 5
    assert [p["phase"] for p in transfer["phases"]] == ["head", "fine-tune"]
    assert [p["epochs"] for p in transfer["phases"]] == ["1-1", "2-3"]
    assert [p["phase"] for p in scratch["phases"]] == ["scratch"]
    for ph in (*transfer["phases"], *scratch["phases"]):
        for key in ("val_top1", "val_top5", "test_top1", "test_top5"):
            assert ph[key] is not None and ph[key] >= 0, (ph["phase"], key)
    diff = m["transfer_minus_scratch"]["test_top1"]
    assert diff == pytest.approx(transfer["final"]["test_top1"] - scratch["final"]["test_top1"])

    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["epoch"]) for r in rows] == [
        ("transfer", "1"), ("transfer", "2"), ("transfer", "3"),
        ("scratch", "1"), ("scratch", "2"), ("scratch", "3")]
    assert float(rows[0]["val_top1"]) == pytest.approx(transfer["history"][0]["val_top1"])
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # best.keras reloads and predicts what the trained model predicted.
    model = keras.saving.load_model(run / "best.keras")
    check = np.load(run / "best_check.npz")
    np.testing.assert_allclose(model.predict(check["x"], verbose=0), check["y"],
                               rtol=1e-5, atol=1e-5)


def test_recipe_callbacks_keep_keras_async_dispatch(smoke, keras_backend):
    """No callback of the recipe makes Keras run per-batch hooks synchronously: on torch and
    jax the next training step is dispatched while a batch's hook waits for that step's loss.
    (On an H200 under jax, with a synchronous hook, the recipe's epoch took 1.72x a bare
    fit's; tensorflow never dispatches callbacks asynchronously.)"""
    from keras.src import backend as keras_backend_module

    probe = smoke[-1]
    assert len(probe.async_train) == 2  # the transfer and the from-scratch fit
    assert probe.async_train == [keras_backend_module.IS_THREAD_SAFE] * 2
    assert keras_backend_module.IS_THREAD_SAFE is (keras_backend != "tensorflow")


# The uninterrupted reference runs on 2 replicas: each backend's engine, in a fresh process.
_TWO_CPUS_THEN_RECIPE = """
import runpy, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1] + "/recipes")
sys.argv = [sys.argv[1] + "/recipes/transfer_vgg19.py", *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _two_replica_command(args: list[str]) -> tuple[list[str], dict, str]:
    """(command, environment, engine): the recipe on 2 replicas under this backend."""
    backend = keras.backend.backend()
    if backend == "jax":  # 2 XLA host devices in one process
        return ([sys.executable, str(SCRIPT), *args, "--distribute", "data_parallel"],
                _env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), "data_parallel")
    if backend == "tensorflow":  # the CPU split into 2 logical devices before TF starts
        return ([sys.executable, "-c", _TWO_CPUS_THEN_RECIPE, str(ROOT), *args, "--distribute",
                 "mirrored"], _env(), "mirrored")
    from tests.distribute.launch import free_loopback_port

    extra = {"GLOO_SOCKET_IFNAME": "lo"} if Path("/sys/class/net/lo").exists() else {}
    return ([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
             "--master_addr=127.0.0.1", f"--master_port={free_loopback_port()}", str(SCRIPT),
             *args, "--distribute", "ddp"], _env(OMP_NUM_THREADS="1", **extra), "ddp")


def _assert_same_gradient_logs(got_run: Path, want_run: Path) -> None:
    """GradientHistogram's events of two runs: same tags and steps, equal norms, histograms.

    Float tolerance: the 2-replica run sums its gradients in another order, which moves a
    few of a layer's 10^5-10^6 entries across a bucket edge, and the head's bias gradient
    (balanced classes) is rounding noise ~1e-8 of the global norm: its histogram is skipped.
    """
    got_s, want_s = (read_scalars(r / "logs" / "transfer" / "train") for r in (got_run, want_run))
    got_h, want_h = (read_histograms(r / "logs" / "transfer" / "train")
                     for r in (got_run, want_run))
    norms = sorted(t for t in want_s if t.startswith("gradient_norm/"))
    assert norms == sorted(t for t in got_s if t.startswith("gradient_norm/"))
    assert "gradient_norm/backbone/block1_conv1/kernel" in norms
    scale = max(v for _, v in want_s["gradient_norm/global"])
    for tag in norms:
        got, want = sorted(got_s[tag]), sorted(want_s[tag])
        assert [s for s, _ in got] == [s for s, _ in want], tag
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-4,
                                   atol=1e-5 * scale, err_msg=tag)
    tags = sorted(t for t in want_h if t.startswith("gradients/"))
    assert tags == sorted(t for t in got_h if t.startswith("gradients/")) and len(tags) > 30
    for tag in tags:
        norm = dict(want_s[tag.replace("gradients/", "gradient_norm/")])
        for (step, g), (_, w) in zip(sorted(got_h[tag], key=lambda p: p[0]),
                                     sorted(want_h[tag], key=lambda p: p[0]), strict=True):
            if norm[step] < 1e-4 * scale:
                continue
            assert g.shape == w.shape and g[:, 2].sum() == w[:, 2].sum(), (tag, step)
            np.testing.assert_allclose(g[:, :2], w[:, :2], rtol=1e-4,
                                       atol=1e-4 * np.abs(w[:, :2]).max(), err_msg=tag)
            assert np.abs(g[:, 2] - w[:, 2]).sum() <= 1e-4 * w[:, 2].sum() + 2, (tag, step)


def test_resumed_run_matches_uninterrupted_run_on_two_replicas(smoke, tmp_path, keras_backend):
    """The killed-and-resumed run ends with the metrics, weights and gradient logs of an
    uninterrupted run, which is also the ``--distribute`` check: it runs on 2 replicas (jax
    ``data_parallel`` over 2 XLA host devices, tensorflow ``mirrored`` over 2 logical CPUs,
    torch ``ddp`` with 2 processes under torchrun; same global batch of 10, 5 per replica),
    so it must match the resumed 1-device run within float tolerance, GradientHistogram's
    histograms and norms included (the gradients summed over the replicas).
    """
    resumed_out, code = smoke[0], smoke[4]
    assert code == 0
    out = _with_cache(resumed_out, tmp_path / "runs")
    # The transfer run is the one that was killed and resumed (the from-scratch run started
    # after the resume), so the reference skips the from-scratch run.
    args = [*SMOKE, "--scratch", "no", "--out", str(out)]
    rel = 1e-4  # the gradient is summed over 2 replicas in another order
    command, env, engine = _two_replica_command(args)
    proc = processes.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    processes_ = 2 if engine == "ddp" else 1
    assert (f"{engine} over 2 replicas ({processes_} process(es)); global batch 10"
            in proc.stdout)
    assert _metrics(out)["summary"]["distribute"] == {
        "kind": engine, "replicas": 2, "processes": processes_}
    _assert_same_gradient_logs(_only_run(out), _only_run(resumed_out))
    want, got = _metrics(out), _metrics(resumed_out)
    g, w = got["variants"]["transfer"], want["variants"]["transfer"]
    assert len(g["history"]) == len(w["history"]) == 3
    for gh, wh in zip(g["history"], w["history"], strict=True):
        for key in ("loss", "val_loss", "top1", "val_top1", "learning_rate"):
            assert gh[key] == pytest.approx(wh[key], rel=rel, abs=1e-6), (gh["epoch"], key)
    for key in ("best_epoch", "val_top1", "test_top1", "test_top5"):
        assert g["final"][key] == pytest.approx(w["final"][key], rel=1e-6), key
    assert g["final"]["test_loss"] == pytest.approx(w["final"]["test_loss"], rel=rel)
    assert want["summary"]["sessions"] == 1 and want["source_task"]["cached"] is True
    # The smoke run barely moves its loss (uniform predictions: ln 5), so the metrics alone
    # would not see a resume that lost the momentum or a weight; the last checkpoints would.
    got_ckpt, want_ckpt = (latest_checkpoint(_only_run(o) / "state" / "transfer")
                           for o in (resumed_out, out))
    assert got_ckpt.name == want_ckpt.name == "epoch-0002"
    for kind in ("model", "optimizer"):
        got_arrays, want_arrays = load_arrays(got_ckpt / kind), load_arrays(want_ckpt / kind)
        assert len(got_arrays) == len(want_arrays) > 0, kind
        for i, (a, b) in enumerate(zip(got_arrays, want_arrays, strict=True)):
            scale = float(np.max(np.abs(b))) if b.size else 0.0
            # atol floor 1e-9: a bias whose gradient is rounding noise (balanced classes)
            # holds values ~1e-10 that the 2-device jax reference sums in another order.
            np.testing.assert_allclose(a, b, rtol=10 * rel, atol=10 * rel * scale + 1e-9,
                                       err_msg=f"{kind} variable {i}")
        if kind == "optimizer":  # momentum of many weights: the comparison has teeth
            assert sum(bool(np.any(b != 0)) for b in want_arrays) >= 10


def test_nonfinite_loss_stops_and_keeps_best_model(smoke, tmp_path, capsys, keras_backend):
    out = _with_cache(smoke[0], tmp_path / "runs")
    # Batch 5: 2 steps per epoch, so the second step of epoch 2 sees the diverged weights.
    code = recipe.main([*SMOKE, "--scratch", "no", "--fine-tune-epochs", "1", "--batch-size",
                        "5", "--histogram-freq", "0", "--fine-tune-lr", "1e30",
                        "--out", str(out)])
    assert code == recipe.EXIT_NONFINITE
    text = capsys.readouterr().out
    assert "StopOnNonFinite: the loss became non-finite at epoch 2" in text
    m = _metrics(out)
    res = m["variants"]["transfer"]
    assert m["complete"] is False and m["summary"]["status"] == "stopped: non-finite loss"
    assert res["stop_reason"] == "non_finite_loss" and res["nonfinite"]["epoch"] == 1
    assert res["final"]["best_epoch"] == 1
    model = keras.saving.load_model(_only_run(out) / "best.keras")
    check = np.load(_only_run(out) / "best_check.npz")
    assert np.isfinite(model.predict(check["x"], verbose=0)).all()


def _folder(root: Path, classes: int) -> Path:
    from PIL import Image

    root.mkdir()
    for k in range(classes):
        (root / f"class{k}").mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(root / f"class{k}" / f"{i}.png")
    return root


def _garbage(path: Path) -> str:
    path.write_bytes(b"this is not hdf5")
    return str(path)


def _undecodable(root: Path) -> Path:
    """Two class folders holding only files that are not images (an empty JPEG, text)."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"")
    (root / "b" / "y.png").write_text("text")
    return root


_OTHER_ENGINE = {"torch": "mirrored", "tensorflow": "ddp", "jax": "ddp"}
BAD_INPUTS = [
    ("image_size", lambda t: ["--image-size", "16"], "at least 32x32"),
    ("missing_folder", lambda t: ["--data", str(t / "nowhere")], "no such folder"),
    ("empty_folder", lambda t: ["--data", str(_folder(t / "empty", 0))], "No images"),
    ("one_class", lambda t: ["--data", str(_folder(t / "one", 1))], "single class"),
    ("missing_weights", lambda t: ["--weights", str(t / "none.h5")], "no such file"),
    ("unreadable_weights", lambda t: ["--weights", _garbage(t / "w.h5")],
     "not a readable HDF5"),
    ("only_undecodable", lambda t: ["--data", str(_undecodable(t / "bad"))],
     "None of the 2 image files"),
    ("head_size", lambda t: ["--head", "imagenet", "--image-size", "64"], "224x224"),
    ("resume_nothing", lambda t: ["--resume", "--out", str(t / "empty_out")], "no run to"),
    ("bad_flag_value", lambda t: ["--augment", "rotate"],
     "Invalid value for --augment: 'rotate'. Expected none | basic | mixup"),
    ("out_of_range", lambda t: ["--momentum", "1"],
     "Invalid value for --momentum: 1.0. Expected a float in [0, 1)."),
    ("non_finite", lambda t: ["--head-lr", "nan"], "Invalid value for --head-lr: nan."),
    ("both_clips", lambda t: ["--clipnorm", "1", "--global-clipnorm", "1"], "not both"),
    ("distribute_kind", lambda t: ["--distribute", "horovod"], "--distribute"),
    # Another backend's engine: the engine table's refusal, before any run folder.
    ("distribute_backend", lambda t: ["--distribute", _OTHER_ENGINE[keras.backend.backend()]],
     "Invalid value for argument `kind`"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gives_clear_message_and_exit_2(case, tmp_path, capsys, keras_backend):
    _, make_args, message = case
    args = make_args(tmp_path)
    code = recipe.main([*args, "--out", str(tmp_path / "out")] if "--out" not in args else args)
    err = capsys.readouterr().err
    assert code == recipe.EXIT_BAD_INPUT
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("transfer_*"))


def test_unknown_backend_exits_before_importing_keras(keras_backend):
    proc = processes.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), "--backend", "mxnet"], env=_env(),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "error: --backend must be one of torch, tensorflow, jax. Received: 'mxnet'" in (
        proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "| keras\n" not in proc.stderr  # -X importtime lists every module imported


# ------------------------------------------------------------------ cheap unit checks
ISSUE_FLAGS = ("--data", "--weights", "--head", "--image-size", "--head-epochs",
               "--fine-tune-epochs", "--head-lr", "--fine-tune-lr", "--momentum", "--batch-size",
               "--augment", "--label-smoothing", "--clipnorm", "--mixed-precision", "--jit",
               "--backend", "--out", "--resume", "--seed", "--smoke", "--distribute")


def test_help_documents_every_flag_after_a_short_description(capsys, keras_backend):
    assert recipe.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ISSUE_FLAGS:
        assert f"\n  {flag} " in text or f"\n  {flag}, --no-" in text, flag
    for choice in ("flowers102", "tf_flowers", "mixup-cutmix", "data_parallel", "ddp"):
        assert choice in text, choice
    lines = text.splitlines()
    assert lines[0].endswith(" [options]")  # one line, not a synopsis of 30 flags
    first_flag = next(i for i, line in enumerate(lines) if line.startswith("options:"))
    assert first_flag <= 25, "\n".join(lines[:first_flag])


class _Inspected(Exception):
    """Raised by a _ModelProbe that ends the run once the model is seen."""


class _ModelProbe(keras.callbacks.Callback):
    """Passed to ``main(extra_callbacks=...)``: records each variant's model as it trains.

    With ``stop=True`` it raises `_Inspected` at the start of the first fit, before any step.
    """

    def __init__(self, stop=False):
        super().__init__()
        self.stop, self.models, self.head_at_start, self.lr_at_end = stop, [], [], []

    def on_train_begin(self, logs=None):
        net = getattr(self.model, "model", self.model)  # AugmentedModel wraps the network
        self.models.append(self.model)
        self.head_at_start.append([np.array(w) for w in net.get_layer("predictions").weights])
        if self.stop:
            raise _Inspected

    def on_train_end(self, logs=None):
        self.lr_at_end.append(_value(self.model.optimizer.learning_rate))


def _value(variable) -> float:
    return float(keras.ops.convert_to_numpy(variable))


def _run_main(args, tmp_path, probe, capsys=None):
    """main(args) with the probe; returns (exit status or None if the probe stopped it, run)."""
    policy = keras.config.dtype_policy()
    try:
        code = recipe.main([*args, "--verbose", "0", "--out", str(tmp_path / "out")],
                           extra_callbacks=[probe])
    except _Inspected:
        code = None
    finally:
        keras.config.set_dtype_policy(policy)  # --mixed-precision sets the global policy
    return code, _only_run(tmp_path / "out")


def _synthetic_splits(size, n=5, classes=3, test=True):
    from keras_recipes.data import DatasetSplits

    x = np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")
    y = (np.arange(n) % classes).astype("int32")
    return DatasetSplits(train=(x, y), validation=(x, y), test=(x, y) if test else None,
                         class_names=[str(c) for c in range(classes)], source="synthetic",
                         counts={"train": n, "validation": n, **({"test": n} if test else {})})


@pytest.fixture
def tiny_backbone(monkeypatch):
    """A tiny network in place of VGG19 (same head layer name) wherever the recipe builds one."""
    from keras_recipes import applications

    def build(arch, num_classes, **kwargs):
        assert arch == "vgg19" and kwargs["classifier_activation"] is None
        backbone = keras.Sequential([keras.Input(kwargs["input_shape"]),
                                     keras.layers.GlobalAveragePooling2D(),
                                     keras.layers.Dense(4, name="features")], name="backbone")
        backbone.trainable = not kwargs["freeze_backbone"]
        inputs = keras.Input(kwargs["input_shape"])
        outputs = keras.layers.Dense(num_classes, name="predictions")(backbone(inputs))
        return keras.Model(inputs, outputs, name=kwargs["name"])

    monkeypatch.setattr(applications, "build_transfer_model", build)


@pytest.fixture
def course_here(monkeypatch, tmp_path):
    """The course's inputs (Flowers-102, ImageNet weights) found, as tiny stand-ins."""
    from keras_recipes import applications
    from keras_recipes import data as kdata

    monkeypatch.setattr(applications, "imagenet_weights_path",
                        lambda arch, file: str(tmp_path / file.fname))
    monkeypatch.setattr(kdata, "oxford_flowers102",
                        lambda image_size, batch_size, seed: _synthetic_splits(image_size))


@pytest.fixture
def course_missing(monkeypatch):
    """The course's inputs missing (offline); the messages they give."""
    from keras_recipes import applications
    from keras_recipes import data as kdata

    missing = ["ImageNet weights: vgg19_weights_tf_dim_ordering_tf_kernels.h5 not in cache",
               "Oxford Flowers-102: 102flowers.tgz not in cache"]

    def weights_path(arch, file):
        raise OSError(missing[0])

    def flowers(**kwargs):
        raise kdata.DatasetUnavailableError(missing[1])

    monkeypatch.setattr(applications, "imagenet_weights_path", weights_path)
    monkeypatch.setattr(kdata, "oxford_flowers102", flowers)
    return missing


def test_online_default_is_the_course_run(course_here, tiny_backbone, tmp_path, capsys,
                                          keras_backend):
    """With Flowers-102 and the ImageNet weights: the course's run (docs/techniques.md §5)."""
    probe = _ModelProbe(stop=True)
    code, run = _run_main([], tmp_path, probe)
    assert code is None and "OFFLINE" not in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    plan, cfg = config["plan"], config["config"]
    assert (plan["data"], plan["weights"], plan["head"], plan["image_size"]) == (
        "flowers102", "imagenet", "imagenet", 224)
    assert (plan["batch_size"], plan["scratch"], plan["notice"]) == (32, False, "")
    assert (cfg["head_epochs"], cfg["head_lr"], cfg["fine_tune_epochs"], cfg["fine_tune_lr"],
            cfg["momentum"], cfg["patience"]) == (10, 1e-3, 10, 1e-4, 0.9, 5)
    (model,) = probe.models  # phase 1: the head alone, SGD at the head's rate
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert _value(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert _value(model.optimizer.momentum) == pytest.approx(0.9)
    assert not model.get_layer("backbone").trainable and model.get_layer("predictions").trainable
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_offline_default_notice_then_embedded_digits_transfer(course_missing, tiny_backbone,
                                                              monkeypatch, tmp_path, capsys,
                                                              keras_backend):
    from keras_recipes import applications

    pretrained = []

    def pretrain(arch, **kwargs):  # the source task (digits 0-4), not trained here
        pretrained.append((arch, kwargs["classes"], kwargs["image_size"]))
        return None, {"val_top1": 1.0}

    monkeypatch.setattr(applications, "pretrain_on_digits", pretrain)
    code, run = _run_main([], tmp_path, _ModelProbe(stop=True))
    assert code is None and pretrained == [("vgg19", (0, 1, 2, 3, 4), 32)]
    plan = json.loads((run / "config.json").read_text())["plan"]
    assert (plan["data"], plan["weights"], plan["head"], plan["image_size"]) == (
        "digits", "source", "gap", 32)
    assert (plan["batch_size"], plan["scratch"]) == (10, True)
    notice = capsys.readouterr().out
    assert "OFFLINE" in notice and "--weights PATH" in notice and "--data PATH" in notice
    assert all(m in notice for m in course_missing) and "EMBEDDED DEFAULT" in notice
    assert "digits 0-4" in notice and "digits 5-9" in notice and "from scratch" in notice
    assert "10 labelled images per class" in notice


TINY = ["--smoke", "--weights", "none"]


def test_mixing_augment_trains_the_network_inside_an_augmented_model(tiny_backbone, tmp_path,
                                                                      keras_backend):
    from keras_recipes.models import AugmentedModel

    probe = _ModelProbe()
    code, run = _run_main([*TINY, "--scratch", "no", "--augment", "mixup-cutmix"], tmp_path,
                          probe)
    assert code == 0
    (model,) = probe.models
    assert isinstance(model, AugmentedModel)
    assert type(model.augmentation).__name__ == "MixUpOrCutMix"
    # The head starts at zero (uniform predictions, loss ln 5), then trains.
    assert all(not w.any() for w in probe.head_at_start[0])
    assert any(np.array(w).any() for w in model.model.get_layer("predictions").weights)
    history = _metrics(tmp_path / "out")["variants"]["transfer"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(np.isfinite(h["loss"]) and 0 <= h["val_top5"] <= 1 for h in history)


def test_label_smoothing_clipping_and_learning_rates_per_variant(tiny_backbone, tmp_path,
                                                                 keras_backend):
    probe = _ModelProbe()
    code, _ = _run_main([*TINY, "--scratch", "yes", "--label-smoothing", "0.1",
                         "--global-clipnorm", "2"], tmp_path, probe)
    assert code == 0  # trained: the pipeline gave the smoothed loss one-hot labels
    transfer, scratch = probe.models
    for m in (transfer, scratch):
        assert isinstance(m.loss, keras.losses.CategoricalCrossentropy)
        assert m.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
        assert m.optimizer.global_clipnorm == 2.0 and m.optimizer.clipnorm is None
        assert _value(m.optimizer.momentum) == pytest.approx(0.9)
    # Transfer: head at 1e-3, then fine-tuning at 1e-4; scratch: 1e-3 throughout.
    assert probe.lr_at_end == pytest.approx([1e-4, 1e-3])


def test_fine_tuning_only_mixed_precision_and_jit(tiny_backbone, tmp_path, keras_backend):
    probe = _ModelProbe(stop=True)
    code, _ = _run_main([*TINY, "--scratch", "no", "--head-epochs", "0", "--mixed-precision",
                         "--jit"], tmp_path, probe)
    assert code is None
    (model,) = probe.models
    assert _value(model.optimizer.learning_rate) == pytest.approx(1e-4)  # no head phase
    assert model.get_layer("backbone").trainable
    assert model.get_layer("predictions").compute_dtype in ("bfloat16", "float16")
    assert model.output.dtype == "float32"  # logits stay float32 under mixed precision
    assert model.jit_compile is True


def test_variant_without_a_test_split_trains_and_reports_no_test_scores(
        tiny_backbone, monkeypatch, tmp_path, keras_backend):
    from keras_recipes import data as kdata

    monkeypatch.setattr(kdata, "load_digits", lambda size, **kw: _synthetic_splits(
        size, n=10, classes=5, test=False))
    code, run = _run_main([*TINY, "--scratch", "no", "--head-epochs", "0"], tmp_path,
                          _ModelProbe())
    assert code == 0
    res = _metrics(tmp_path / "out")["variants"]["transfer"]
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    assert not any(k.startswith("test_") for h in res["history"] for k in h)
    assert res["final"]["test_top1"] is None and res["stop_reason"] == "completed"
    assert (run / "best.keras").is_file()


def test_folder_with_undecodable_files_trains_and_reports_them(tmp_path, tiny_backbone,
                                                                keras_backend):
    from PIL import Image

    root = tmp_path / "photos"
    for k, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (40, 36), (40 * k, 20 * i, 0)).save(root / name / f"{i}.jpg")
    good = (root / "cat" / "0.jpg").read_bytes()
    (root / "cat" / "cut.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (root / "cat" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)  # AppleDouble
    (root / "dog" / "zero.jpg").write_bytes(b"")
    (root / "dog" / "renamed.png").write_text("not an image")
    with pytest.warns(RuntimeWarning, match="skipped 3 of 15 files"):
        code = recipe.main(["--data", str(root), "--weights", "none", "--image-size", "32",
                            "--head-epochs", "0", "--fine-tune-epochs", "2", "--batch-size",
                            "4", "--histogram-freq", "0", "--verbose", "0",
                            "--out", str(tmp_path / "out")])
    assert code == 0
    run = next((tmp_path / "out").glob("transfer_vgg19-*"))
    summary = json.loads((run / "metrics.json").read_text())["summary"]
    assert sorted(summary["skipped_files"]) == ["cat/cut.jpg", "dog/renamed.png", "dog/zero.jpg"]
    assert sum(summary["counts"].values()) == 12


def test_weights_of_another_architecture_exit_2_with_a_short_message(tmp_path, capsys,
                                                                    keras_backend):
    path = tmp_path / "resnet_like.weights.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).save_weights(path)
    code = recipe.main(["--smoke", "--weights", str(path), "--scratch", "no",
                        "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == recipe.EXIT_BAD_INPUT
    assert str(path) in err and "'vgg19'" in err and "'block1_conv1'" in err
    assert "Traceback" not in err and len(err) < 1200, err
