"""recipes/transfer_vgg19.py end to end: smoke run, kill -9 + --resume, NaN stop, bad inputs.

Time budget: one `--smoke` run as a subprocess, killed with SIGKILL in mid-epoch and resumed
in this process (a module fixture shared by the tests), then two short in-process runs that
reuse its cached source task: an uninterrupted reference and a NaN stop. Nothing is
downloaded: the recipe falls back to the bundled digits.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_recipes  # noqa: F401  (registers the classes best.keras needs)
from keras_recipes.callbacks.event_writer import read_histograms, read_scalars

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "transfer_vgg19.py"
SMOKE = ["--smoke", "--threads", "1"]
TIMEOUT = 900


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

    The kill comes at the end of batch 1 of epoch 3 of the transfer run (fine-tuning, after the
    unfreeze); `--resume` (in this process, to spare a second start-up) finishes the transfer
    run and the from-scratch run.
    """
    out = tmp_path_factory.mktemp("smoke")
    killed = subprocess.run(
        [sys.executable, str(SCRIPT), *SMOKE, "--out", str(out)],
        env=_env(**{recipe.KILL_ENV: "transfer:2:0"}), cwd=ROOT, capture_output=True,
        text=True, timeout=TIMEOUT,
    )
    run = _only_run(out)
    checkpoints = sorted(p.name for p in (run / "state" / "transfer").glob("epoch-*"))
    metrics_before = (run / "metrics.json").exists()
    code = recipe.main([*SMOKE, "--resume", "--out", str(out)])
    return out, killed, checkpoints, metrics_before, code


def test_smoke_run_killed_then_resumed_outputs(smoke, keras_backend):
    out, killed, checkpoints, metrics_before, code = smoke
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert "Traceback" not in killed.stderr
    assert "OFFLINE" not in killed.stdout  # --smoke never tries to download
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
    assert (resolved["image_size"], resolved["batch_size"], resolved["scratch"]) == (32, 5, "yes")
    assert config["backend"] == keras_backend

    m = json.loads((run / "metrics.json").read_text())
    assert m["complete"] is True
    s = m["summary"]
    assert s["backend"] == keras_backend and s["sessions"] == 2
    assert s["counts"] == {"train": 10, "validation": 10, "test": 10}
    assert s["classes"] == ["5", "6", "7", "8", "9"]
    assert m["source_task"]["images"] == 10 and m["source_task"]["cached"] is False
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
    resumed_out, _, _, _, code = smoke
    assert code == 0
    out = _with_cache(resumed_out, tmp_path / "runs")
    # The transfer run is the one that was killed and resumed (the from-scratch run started
    # after the resume), so the reference skips the from-scratch run.
    assert recipe.main([*SMOKE, "--scratch", "no", "--out", str(out)]) == 0
    want, got = _metrics(out), _metrics(resumed_out)
    for name in ("transfer",):
        g, w = got["variants"][name], want["variants"][name]
        assert len(g["history"]) == len(w["history"]) == 3
        for gh, wh in zip(g["history"], w["history"], strict=True):
            for key in ("loss", "val_loss", "top1", "val_top1", "learning_rate"):
                assert gh[key] == pytest.approx(wh[key], rel=1e-5, abs=1e-6), (name, gh["epoch"],
                                                                                key)
        for key in ("best_epoch", "val_top1", "test_top1", "test_top5"):
            assert g["final"][key] == pytest.approx(w["final"][key], rel=1e-6), (name, key)
        assert g["final"]["test_loss"] == pytest.approx(w["final"]["test_loss"], rel=1e-5)
    assert want["summary"]["sessions"] == 1 and want["source_task"]["cached"] is True


def test_nonfinite_loss_stops_and_keeps_best_model(smoke, tmp_path, capsys, keras_backend):
    ref_out = smoke[0]
    out = _with_cache(ref_out, tmp_path / "runs")
    with pytest.warns(RuntimeWarning, match="non-finite gradient"):  # GradientHistogram's alert
        code = recipe.main([*SMOKE, "--scratch", "no", "--fine-tune-epochs", "1",
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
]


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
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", "mxnet"], env=_env(), cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "Unknown backend 'mxnet'" in proc.stderr and "Traceback" not in proc.stderr
