"""recipes/transfer_vgg19.py end to end: smoke run, kill -9 + --resume, NaN stop, bad inputs.

Time budget: one `--smoke` run as a subprocess, killed with SIGKILL in mid-epoch and resumed
in this process (a module fixture shared by the tests), then two short in-process runs that
reuse its cached source task: an uninterrupted reference and a NaN stop. Nothing is
downloaded: the recipe falls back to the bundled digits.
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
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_recipes  # noqa: F401  (registers the classes best.keras needs)
from keras_recipes.callbacks.event_writer import read_histograms, read_scalars
from tests import processes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "transfer_vgg19.py"
SMOKE = ["--smoke", "--threads", "1"]
TIMEOUT = 1800  # subprocess runs; generous for a shared machine (a 900 s limit expired here)


def _load_recipe():
    spec = importlib.util.spec_from_file_location("transfer_vgg19_recipe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.pop(recipe.KILL_ENV, None)
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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`--smoke` as a user runs it (a subprocess), killed with SIGKILL in mid-epoch, then resumed.

    The kill comes in epoch 3 of the transfer run (fine-tuning, after the unfreeze), at the end
    of its training batch, before its validation and checkpoint; `--resume` (in this process,
    to spare a second start-up) finishes the transfer run and the from-scratch run.
    """
    out = tmp_path_factory.mktemp("smoke")
    # $KERAS_BACKEND names another backend: --backend must win (applied before Keras loads).
    other = next(b for b in recipe.BACKENDS if b != keras.backend.backend())
    env = _env(**{recipe.KILL_ENV: "transfer:2:0"})
    env["KERAS_BACKEND"] = other
    killed = processes.run(
        [sys.executable, str(SCRIPT), *SMOKE, "--backend", keras.backend.backend(),
         "--out", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )
    run = _only_run(out)
    checkpoints = sorted(p.name for p in (run / "state" / "transfer").glob("epoch-*"))
    metrics_before = (run / "metrics.json").exists()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = recipe.main([*SMOKE, "--resume", "--out", str(out)])
    return out, killed, checkpoints, metrics_before, code, printed.getvalue()


def test_smoke_run_killed_then_resumed_outputs(smoke, keras_backend):
    out, killed, checkpoints, metrics_before, code, printed = smoke
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert "Traceback" not in killed.stderr
    assert "OFFLINE" not in killed.stdout  # --smoke never tries to download
    # The resolved configuration is printed once (and saved: config.json below); each phase
    # change prints a one-line summary.
    assert killed.stdout.count("config: {") == 1
    assert "\ntransfer phase head (epochs 1-1): val top-1 " in killed.stdout
    assert checkpoints == ["epoch-0001"] and not metrics_before  # epochs 1-2 done, 3 cut short
    assert code == 0
    run = _only_run(out)
    for name in ("config.json", "metrics.json", "history.csv", "curves.png",
                 "gradient_norms.png", "best.keras", "best_check.npz"):
        assert (run / name).is_file(), name
    # TensorBoard: epoch scalars, gradient histograms/norms, weight histograms (epochs 0, 2).
    scalars = read_scalars(run / "logs" / "transfer" / "train")
    histograms = read_histograms(run / "logs" / "transfer" / "train")
    assert sorted({step for step, _ in scalars["epoch_loss"]}) == [0, 1, 2]
    assert sorted({step for step, _ in scalars["gradient_norm/global"]}) == [0, 1, 2]
    assert "gradients/backbone/block1_conv1/kernel" in histograms
    assert sorted({step for step, _ in histograms["block1_conv1/kernel/histogram"]}) == [0, 2]
    val_scalars = read_scalars(run / "logs" / "transfer" / "validation")
    assert sorted({step for step, _ in val_scalars["epoch_top1"]}) == [0, 1, 2]

    config = json.loads((run / "config.json").read_text())
    resolved = config["resolved"]
    assert (resolved["data"], resolved["weights"], resolved["head"]) == ("digits", "source", "gap")
    assert (resolved["image_size"], resolved["batch_size"], resolved["scratch"]) == (32, 10, "yes")
    assert config["backend"] == keras_backend

    m = json.loads((run / "metrics.json").read_text())
    assert m["complete"] is True
    s = m["summary"]
    assert s["backend"] == keras_backend and s["sessions"] == 2
    assert s["counts"] == {"train": 10, "validation": 10, "test": 10}
    assert s["classes"] == ["5", "6", "7", "8", "9"]
    assert m["source_task"]["images"] == 10 and m["source_task"]["cached"] is False
    # The summary: data set, weights' origin, backend, device, wall time, images/s, and
    # val/test top-1/top-5 per phase, in metrics.json and printed.
    assert "digits" in s["data"] and s["weights"].startswith("VGG19 trained on digits 0-4")
    assert s["device"] and s["wall_seconds"] > 0
    assert s["distribute"] == {"kind": "none", "replicas": 1, "processes": 1}
    for line in (f"data:     {s['data']}", f"weights:  {s['weights']}",
                 f"backend:  {keras_backend} on {s['device']}", "wall:     ",
                 "transfer  phase head (epochs 1-1): val top-1 ",
                 "transfer  phase fine-tune (epochs 2-3): val top-1 ",
                 "scratch   phase scratch (epochs 1-3): val top-1 ",
                 "transfer - scratch: test top-1 ", f"outputs in {run}",
                 f"  {run / 'best.keras'}", f"tensorboard --logdir {run / 'logs'}"):
        assert line in printed, line
    transfer, scratch = m["variants"]["transfer"], m["variants"]["scratch"]
    # Same initial head for both variants (the controlled comparison).
    assert transfer["initial_head_fingerprint"] == scratch["initial_head_fingerprint"]
    for res in (transfer, scratch):
        hist = res["history"]
        assert [h["epoch"] for h in hist] == [1, 2, 3]
        for h in hist:
            for key in ("top1", "val_top1", "val_top5"):
                # accuracies over 10 images are multiples of 0.1
                assert abs(h[key] * 10 - round(h[key] * 10)) < 1e-4, (key, h[key])
            assert h["val_top5"] == pytest.approx(1.0)  # 5 classes: top-5 is always right
        best = max(range(3), key=lambda i: (hist[i]["val_top1"], -i))
        assert res["final"]["best_epoch"] == best + 1
        assert res["final"]["val_top1"] == pytest.approx(hist[best]["val_top1"])
        assert res["images_per_second"] > 0
    # Phase 1 trains the head at 1e-3, phase 2 everything at 1e-4 (UnfreezeSchedule), and the
    # resumed session re-applied the unfreeze stage from the checkpointed state.
    assert [h["phase"] for h in transfer["history"]] == ["head", "fine-tune", "fine-tune"]
    assert [h["learning_rate"] for h in transfer["history"]] == pytest.approx([1e-3, 1e-4, 1e-4])
    (event,) = transfer["unfreeze_events"]
    assert event["epoch"] is None and event["trainable_params"] == 20_024_384 + 512 * 5 + 5
    assert [p["phase"] for p in transfer["phases"]] == ["head", "fine-tune"]
    for ph in (*transfer["phases"], *scratch["phases"]):
        for key in ("val_top1", "val_top5", "test_top1", "test_top5", "images_per_second"):
            assert ph[key] is not None and ph[key] >= 0, (ph["phase"], key)
    # The from-scratch run gets the transfer run's step budget: same epochs, same images.
    assert sum(h["train_seconds"] * h["images_per_second"] for h in scratch["history"]) == (
        pytest.approx(sum(h["train_seconds"] * h["images_per_second"]
                          for h in transfer["history"]), rel=1e-6))
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


def test_resumed_run_matches_uninterrupted_run(smoke, tmp_path, keras_backend):
    """The killed-and-resumed run ends with the metrics of an uninterrupted run.

    Under jax the uninterrupted reference is also the ``--distribute`` check: it runs on 2
    XLA host devices (``data_parallel``, same global batch of 10, 5 per replica), so it
    must match the resumed 1-device run within float tolerance.
    """
    resumed_out, _, _, _, code, _ = smoke
    assert code == 0
    out = _with_cache(resumed_out, tmp_path / "runs")
    # The transfer run is the one that was killed and resumed (the from-scratch run started
    # after the resume), so the reference skips the from-scratch run.
    args = [*SMOKE, "--scratch", "no", "--out", str(out)]
    rel = 1e-5
    if keras_backend == "jax":
        proc = processes.run(
            [sys.executable, str(SCRIPT), *args, "--distribute", "data_parallel"],
            env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), cwd=ROOT,
            capture_output=True, text=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "data_parallel over 2 replicas (1 process(es)); global batch 10" in proc.stdout
        assert _metrics(out)["summary"]["distribute"] == {
            "kind": "data_parallel", "replicas": 2, "processes": 1}
        rel = 1e-4  # the gradient is summed over 2 devices in another order
    else:
        assert recipe.main(args) == 0
    want, got = _metrics(out), _metrics(resumed_out)
    for name in ("transfer",):
        g, w = got["variants"][name], want["variants"][name]
        assert len(g["history"]) == len(w["history"]) == 3
        for gh, wh in zip(g["history"], w["history"], strict=True):
            for key in ("loss", "val_loss", "top1", "val_top1", "learning_rate"):
                assert gh[key] == pytest.approx(wh[key], rel=rel, abs=1e-6), (name, gh["epoch"],
                                                                              key)
        for key in ("best_epoch", "val_top1", "test_top1", "test_top5"):
            assert g["final"][key] == pytest.approx(w["final"][key], rel=1e-6), (name, key)
        assert g["final"]["test_loss"] == pytest.approx(w["final"]["test_loss"], rel=rel)
    assert want["summary"]["sessions"] == 1 and want["source_task"]["cached"] is True
    # The smoke run barely moves its loss (uniform predictions: ln 5), so the metrics alone
    # would not see a resume that lost the momentum or a weight; the last checkpoints would.
    for kind in ("model", "optimizer"):
        got_arrays, want_arrays = (
            recipe._load_arrays(recipe._latest_checkpoint(_only_run(o) / "state" / "transfer"),
                                kind) for o in (resumed_out, out))
        assert len(got_arrays) == len(want_arrays) > 0, kind
        for i, (a, b) in enumerate(zip(got_arrays, want_arrays, strict=True)):
            scale = float(np.max(np.abs(b))) if b.size else 0.0
            # atol floor 1e-9: a bias whose gradient is rounding noise (balanced classes)
            # holds values ~1e-10 that the 2-device jax reference sums in another order.
            np.testing.assert_allclose(a, b, rtol=10 * rel, atol=10 * rel * scale + 1e-9,
                                       err_msg=f"{kind} variable {i}")
        if kind == "optimizer":  # momentum of many weights: the comparison has teeth
            moved = sum(bool(np.any(b != 0)) for b in want_arrays)
            assert moved >= 10, moved


def test_nonfinite_loss_stops_and_keeps_best_model(smoke, tmp_path, capsys, keras_backend):
    ref_out = smoke[0]
    out = _with_cache(ref_out, tmp_path / "runs")
    with pytest.warns(RuntimeWarning, match="non-finite gradient"):  # GradientHistogram's alert
        # Batch 5: 2 steps per epoch, so the second step of epoch 2 sees the diverged weights.
        code = recipe.main([*SMOKE, "--scratch", "no", "--fine-tune-epochs", "1",
                            "--batch-size", "5",
                            "--histogram-freq", "0", "--fine-tune-lr", "1e30", "--out", str(out)])
    assert code == recipe.EXIT_NONFINITE
    text = capsys.readouterr().out
    assert "non-finite at epoch 2" in text and "best model before it is kept" in text
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


BAD_INPUTS = [
    ("image_size", lambda t: ["--image-size", "16"], "at least 32x32"),
    ("missing_folder", lambda t: ["--data", str(t / "nowhere")], "no such folder"),
    ("empty_folder", lambda t: ["--data", str(_folder(t / "empty", 0))], "No images"),
    ("one_class", lambda t: ["--data", str(_folder(t / "one", 1))], "single class"),
    ("missing_weights", lambda t: ["--weights", str(t / "none.h5")], "no such file"),
    ("unreadable_weights", lambda t: ["--weights", _garbage(t / "w.h5")],
     "not a readable HDF5"),
    ("head_size", lambda t: ["--head", "imagenet", "--image-size", "64"], "224x224"),
    ("resume_nothing", lambda t: ["--resume", "--out", str(t / "empty_out")], "no run to"),
    ("bad_flag_value", lambda t: ["--augment", "rotate"], "--augment"),
    ("distribute_kind", lambda t: ["--distribute", "horovod"], "--distribute"),
    # Another backend's engine: the engine table's refusal, before any run folder.
    ("distribute_backend", lambda t: ["--distribute", _OTHER_ENGINE[keras.backend.backend()]],
     "Invalid value for argument `kind`"),
]
_OTHER_ENGINE = {"torch": "mirrored", "tensorflow": "ddp", "jax": "ddp"}


def _garbage(path: Path) -> str:
    path.write_bytes(b"this is not hdf5")
    return str(path)


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
        [sys.executable, str(SCRIPT), "--backend", "mxnet"], env=_env(), cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "Unknown backend 'mxnet'" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ cheap unit checks
ISSUE_FLAGS = ("--data", "--weights", "--head", "--image-size", "--head-epochs",
               "--fine-tune-epochs", "--head-lr", "--fine-tune-lr", "--momentum", "--batch-size",
               "--augment", "--label-smoothing", "--clipnorm", "--mixed-precision", "--jit",
               "--backend", "--out", "--resume", "--seed", "--smoke", "--distribute")


def test_help_documents_every_flag(capsys, keras_backend):
    assert recipe.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ISSUE_FLAGS:
        assert f"\n  {flag} " in text or f"\n  {flag}, --no-" in text, flag
    for choice in ("flowers102", "tf_flowers", "mixup-cutmix", "data_parallel", "ddp"):
        assert choice in text, choice


def _recipe(**kwargs):
    cfg = recipe.Defaults(backend=keras.backend.backend(), **kwargs)
    recipe.check_config(cfg)
    return recipe.Recipe(cfg, None, None)


def test_online_default_is_the_course_run(monkeypatch, keras_backend):
    """With Flowers-102 and the ImageNet weights available: the course's run (COURSE.md §5)."""
    r = _recipe()
    monkeypatch.setattr(recipe.Recipe, "_course_missing", lambda self, weights: [])
    plan = r.resolve()
    assert (plan.data, plan.weights, plan.head, plan.image_size) == (
        "flowers102", "imagenet", "imagenet", 224)
    assert (plan.batch_size, plan.scratch, plan.notice) == (32, False, "")
    cfg = r.cfg
    assert (cfg.head_epochs, cfg.head_lr, cfg.fine_tune_epochs, cfg.fine_tune_lr,
            cfg.momentum) == (10, 1e-3, 10, 1e-4, 0.9)
    r.plan, r.progress = plan, {"source": None}
    epochs, phases, lr, _ = r.variant_plan("transfer")
    assert (epochs, lr) == (20, 1e-3)
    assert phases == [("head", 0, 10), ("fine-tune", 10, 20)]


def test_offline_default_notice_then_embedded_digits_transfer(monkeypatch, keras_backend):
    missing = ["ImageNet weights: vgg19_weights_tf_dim_ordering_tf_kernels.h5 not in cache",
               "Oxford Flowers-102: 102flowers.tgz not in cache"]
    monkeypatch.setattr(recipe.Recipe, "_course_missing", lambda self, weights: missing)
    r = _recipe()
    plan = r.resolve()
    assert (plan.data, plan.weights, plan.head, plan.image_size) == (
        "digits", "source", "gap", 32)
    assert (plan.batch_size, plan.scratch) == (10, True)
    notice = plan.notice
    assert "OFFLINE" in notice and "--weights PATH" in notice and "--data PATH" in notice
    assert all(m in notice for m in missing) and "EMBEDDED DEFAULT" in notice
    assert "digits 0-4" in notice and "digits 5-9" in notice and "from scratch" in notice
    # The embedded task: target digits 5-9 with few labels per class, source digits 0-4.
    assert recipe.TARGET_CLASSES == (5, 6, 7, 8, 9) and recipe.SOURCE_CLASSES == (0, 1, 2, 3, 4)
    assert r.cfg.train_per_class == 10


def _tiny_net(k=5, size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(k, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _attach_numpy(r, k=5, n=10, size=8):
    from keras_recipes.data import DatasetSplits

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    y = (np.arange(n) % k).astype("int32")
    r.target = DatasetSplits(train=(x, y), validation=(x, y), test=(x, y),
                             class_names=[str(i) for i in range(k)], source="synthetic",
                             counts={"train": n, "validation": n, "test": n})
    r.is_numpy, r.num_classes = True, k
    r.plan = recipe.Plan(data="digits", weights="none", head="gap", image_size=size,
                         scratch=False, batch_size=5)
    return x, y


@pytest.mark.parametrize("augment,layer", [("mixup", "MixUp"), ("cutmix", "CutMix"),
                                           ("mixup-cutmix", "MixUpOrCutMix")])
def test_mixing_layers_when_asked(augment, layer, keras_backend):
    from keras_recipes.models import AugmentedModel

    r = _recipe(augment=augment)
    x, y = _attach_numpy(r)
    net = _tiny_net()
    model = r._compile_model(net, 0.1)
    assert isinstance(model, AugmentedModel) and model.model is net
    assert type(model.augmentation).__name__ == layer
    assert r.onehot_pipeline is False  # the mixing layer makes sparse labels one-hot itself
    before = [np.array(w) for w in net.get_weights()]
    train, steps, val, _, _ = r._pipelines(0, 1)
    hist = model.fit(train, epochs=1, steps_per_epoch=steps, validation_data=val,
                     shuffle=False, verbose=0)
    assert np.isfinite(hist.history["loss"][0]) and "val_top5" in hist.history
    assert any(not np.allclose(a, b) for a, b in zip(before, net.get_weights(), strict=True))


def test_label_smoothing_and_basic_augmentation_pipelines(keras_backend):
    r = _recipe(label_smoothing=0.1, augment="basic")
    x, y = _attach_numpy(r)
    model = r._compile_model(_tiny_net(), 0.1)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert r.onehot_pipeline is True
    train, steps, val, test, _ = r._pipelines(0, 1)
    xb, yb = next(iter(train))
    xv, yv = next(iter(val))
    assert steps == 2 and np.asarray(yb).shape == (5, 5)  # one-hot labels from the pipeline
    np.testing.assert_array_equal(np.asarray(yv), np.eye(5, dtype="float32")[y[:5]])
    np.testing.assert_array_equal(np.asarray(xv), x[:5])  # validation is never augmented
    order = np.random.default_rng([r.cfg.seed, 0]).permutation(len(x))[:5]
    assert not np.allclose(np.asarray(xb), x[order])  # training batches are (flip/contrast)
    np.testing.assert_array_equal(np.argmax(np.asarray(yb), 1), y[order])


def test_mixed_precision_keeps_float32_logits_and_jit_flag(keras_backend):
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        net = recipe._float32_logits(_tiny_net(), "mixed_bfloat16")
        r = _recipe(jit=True)
        _attach_numpy(r)
        model = r._compile_model(net, 0.1)
    finally:
        keras.config.set_dtype_policy(policy)
    assert net.get_layer("predictions").compute_dtype == "bfloat16"
    assert net.output.dtype == "float32"
    assert model.jit_compile is True


@pytest.mark.parametrize("given", ["auto", "none"])
def test_distribute_kind_resolved_by_the_engine_table(given, keras_backend):
    ctx = recipe._distribute_context(given)
    assert (ctx.kind, ctx.num_replicas, ctx.is_chief) == ("none", 1, True)


def test_weight_histograms_reuse_the_buckets_of_unchanged_weights(tmp_path, keras_backend):
    """Frozen weights are not bucketed again; every histogram still equals np.histogram's."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    frozen = keras.layers.Dense(6, name="frozen", bias_initializer="random_normal")
    head = keras.layers.Dense(3, name="head", bias_initializer="random_normal")
    model = keras.Model(inputs, head(frozen(inputs)))
    frozen.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    y = np.random.default_rng(1).standard_normal((8, 3)).astype("float32")
    callback = recipe.weight_histograms(str(tmp_path), 1)
    callback.set_model(model)
    expected = {}  # tag -> per-epoch values
    for epoch in range(3):
        model.train_on_batch(x, y)
        callback.on_epoch_end(epoch)
        for w in model.weights:
            expected.setdefault(w.path + "/histogram", []).append(
                np.array(keras.ops.convert_to_numpy(w.value)))
    callback.on_train_end()

    assert callback.reused == 2 * 2  # the frozen kernel and bias, at epochs 1 and 2
    written = read_histograms(tmp_path / "train")
    assert set(written) == set(expected)
    for tag, per_epoch in expected.items():
        assert [step for step, _ in written[tag]] == [0, 1, 2]
        for (_, buckets), values in zip(written[tag], per_epoch, strict=True):
            counts, edges = np.histogram(values, bins=30)  # independent reference
            np.testing.assert_array_equal(buckets[:, 2], counts)
            np.testing.assert_allclose(buckets[:, 0], edges[:-1], rtol=1e-6, atol=1e-7)
    head_kernel = [b for _, b in written["head/kernel/histogram"]]
    assert not np.array_equal(head_kernel[0], head_kernel[2])  # the trained weight changed


def test_checkpoint_links_unchanged_variables_and_reloads_every_value(tmp_path, keras_backend):
    """A variable equal to the last checkpoint's is hard-linked, not written again."""
    from types import SimpleNamespace

    frozen = keras.Variable(np.arange(6, dtype="float32").reshape(2, 3), trainable=False)
    trained = keras.Variable(np.ones(4, "float32"))
    step = keras.Variable(0, dtype="int64", trainable=False)
    cls = recipe._make_checkpoint_class()
    fake = SimpleNamespace(_last={})
    folders = []
    for epoch in range(3):
        values = cls._snapshot(fake, "model", [frozen, trained, step])
        assert [changed for _, changed in values] == (
            [True, True, True] if epoch == 0 else [False, True, True])
        folder = tmp_path / f"epoch-{epoch}"
        folder.mkdir()
        recipe._save_arrays(folder / "model", values, folders[-1] / "model" if folders else None)
        folders.append(folder)
        loaded = recipe._load_arrays(folder, "model")
        for got, var in zip(loaded, (frozen, trained, step), strict=True):
            np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(var.value))
        trained.assign(trained.value * 2.0)  # what an optimizer step does, in place on torch
        step.assign(epoch + 1)
    first, last = (recipe._array_file(f / "model", 0) for f in (folders[0], folders[-1]))
    assert os.path.samefile(first, last)  # the frozen weight: one file, linked
    assert not os.path.samefile(recipe._array_file(folders[0] / "model", 1),
                                recipe._array_file(folders[1] / "model", 1))
    # The snapshot of epoch 0 kept its values although `trained` was updated afterwards.
    np.testing.assert_array_equal(recipe._load_arrays(folders[0], "model")[1], np.ones(4))
    assert recipe._load_arrays(tmp_path, "absent") is None


def test_recipe_callbacks_keep_keras_async_dispatch(tmp_path, keras_backend):
    """No callback of the recipe makes Keras run per-batch hooks synchronously: on torch and
    jax the next training step is dispatched while a batch's hook (the NaN guard) waits for
    that step's loss. (On an H200 under jax, with the hook synchronous, the recipe's epoch
    took 1.72x a bare fit's; tensorflow never dispatches callbacks asynchronously.)"""
    from keras.src import backend as keras_backend_module

    r = _recipe(image_size=32, histogram_freq=1, grad_probe=0)
    x, y = _attach_numpy(r, size=32)
    splits = r.target
    plan = recipe.Plan(data="digits", weights="none", head="gap", image_size=32, scratch=False,
                       batch_size=5)
    r.attach(plan, splits, True, tmp_path / "run")
    net, model, fp = r.build_model("transfer", None)
    _, _, _, test, probe = r._pipelines(0, 1)
    cbs, chief, _ = r.make_callbacks("transfer", test, probe, None, fp)
    callbacks = [*cbs, *chief]
    assert any(type(cb).__name__ == "_RunCheckpoint" for cb in callbacks)
    listed = keras.callbacks.CallbackList(callbacks, model=model)
    assert listed._async_train is keras_backend_module.IS_THREAD_SAFE
    assert keras_backend_module.IS_THREAD_SAFE is (keras_backend != "tensorflow")
def test_nan_guard_stops_training_without_syncing_the_model_state(tmp_path, keras_backend):
    """The checkpoint's per-batch hook runs in Keras's worker thread (async dispatch); on jax,
    reading ``Callback.model`` there syncs the training state into the variables while the
    main thread's next step donates those buffers. A CI run failed so ("Buffer has been
    deleted or donated" in the NaN-stop test). The hook must set the stop flag without it."""
    r = _recipe(image_size=32, histogram_freq=0, grad_probe=0)
    _attach_numpy(r, size=32)
    plan = recipe.Plan(data="digits", weights="none", head="gap", image_size=32, scratch=False,
                       batch_size=5)
    r.attach(plan, r.target, True, tmp_path / "run")
    net, model, fp = r.build_model("transfer", None)
    _, _, _, test, probe = r._pipelines(0, 1)
    cbs, chief, _ = r.make_callbacks("transfer", test, probe, None, fp)
    (checkpoint,) = [cb for cb in (*cbs, *chief) if type(cb).__name__ == "_RunCheckpoint"]
    checkpoint.set_model(model)
    syncs = []
    model.jax_state_sync = lambda: syncs.append(threading.get_ident())  # the jax property's hook
    model.stop_training = False
    checkpoint.on_epoch_begin(0)
    worker = threading.Thread(target=checkpoint.on_train_batch_end, args=(3, {"loss": 1.5}))
    worker.start()
    worker.join()
    assert model.stop_training is False and checkpoint.nonfinite is None
    worker = threading.Thread(target=checkpoint.on_train_batch_end,
                              args=(4, {"loss": np.float32("nan")}))
    worker.start()
    worker.join()
    assert model.stop_training is True
    assert checkpoint.nonfinite == {"epoch": 0, "batch": 4}
    assert syncs == []  # under jax `self.model` would have called it from the worker


