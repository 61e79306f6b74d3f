"""RunCheckpoint: a killed and resumed run ends as an uninterrupted one; Keras's loses state.

The kill tests run ``tests/callbacks/checkpoint_worker.py`` in a subprocess that SIGKILLs
itself (mid-epoch, or while a checkpoint is being written), then resume it in this process
and compare with an uninterrupted run: every model and optimizer variable, the loss of
every epoch and the early-stopping epoch.
"""

from __future__ import annotations

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

from keras_recipes.callbacks import EarlyStopping, RunCheckpoint, latest_checkpoint
from tests import processes
from tests.callbacks import checkpoint_worker as worker

ROOT = Path(__file__).resolve().parents[2]


def _killed(directory: Path, kind: str, kill: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT))
    proc = processes.run([sys.executable, str(Path(worker.__file__)), str(directory), kind, kill],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return worker.train(str(tmp_path_factory.mktemp("reference")))


def _assert_same_run(got, want):
    assert got["stopped_epoch"] == want["stopped_epoch"] == 5
    assert got["best_epoch"] == want["best_epoch"] == 2
    assert got["epochs_run"] == want["epochs_run"] == 6
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
    assert len(got["weights"]) == len(want["weights"])
    for a, b in zip(got["weights"], want["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert len(got["optimizer"]) == len(want["optimizer"])
    for a, b in zip(got["optimizer"], want["optimizer"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_uninterrupted_reference_stops_at_the_scripted_epoch(reference, keras_backend):
    assert reference["stopped_epoch"] == 5 and reference["epochs_run"] == 6
    # The unfrozen backbone's momentum is in the optimizer: the comparisons have teeth.
    assert sum(bool(np.any(a != 0)) for a in reference["optimizer"]) >= 4


# after_epoch: before the first batch of epoch 3, once epoch 2's checkpoint is on disk and
# UnfreezeSchedule has just swapped the optimizer; mid_epoch: before batch 2 of epoch 4;
# mid_write: while epoch 3's arrays are written, before its state.json.
@pytest.mark.parametrize("kill", ["3:0", "4:2", "write:3"],
                         ids=["after_epoch", "mid_epoch", "mid_write"])
def test_sigkill_then_resume_matches_the_uninterrupted_run(kill, reference, tmp_path,
                                                           keras_backend):
    directory = tmp_path / "state"
    _killed(directory, "ours", kill)
    newest = latest_checkpoint(directory)
    if kill.startswith("write:"):  # epoch 3's folder was cut short: epoch 2's is trusted
        assert newest.name == "epoch-0002"
        assert [p.name for p in directory.glob(".epoch-0003.tmp")] == [".epoch-0003.tmp"]
    else:
        assert newest.name == f"epoch-{int(kill.split(':')[0]) - 1:04d}"
    assert RunCheckpoint(directory).initial_epoch == int(newest.name[-4:]) + 1
    _assert_same_run(worker.train(str(directory)), reference)


def test_keras_backup_and_restore_loses_early_stopping_state(reference, tmp_path,
                                                             keras_backend):
    """Killed after epoch 3 (patience 3, best epoch 2): Keras's backup restores the weights
    and the epoch but not EarlyStopping's `wait` and `best`, so the resumed run takes the
    first resumed epoch as its best and stops 3 epochs late; RunCheckpoint stops where the
    uninterrupted run does (previous test)."""
    directory = tmp_path / "keras"
    _killed(directory, "keras", "4:2")
    resumed = worker.train(str(directory), kind="keras")
    assert resumed["stopped_epoch"] == 7 != reference["stopped_epoch"]
    assert resumed["best_epoch"] == 4


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def test_frozen_arrays_are_hard_links_and_best_weights_are_the_best_epochs(tmp_path,
                                                                           keras_backend):
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.zeros((8, 1), "float32")
    model = _model()
    model.layers[0].trainable = False
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([np.array(keras.ops.convert_to_numpy(v.value))
                         for v in self.model.variables])
            logs["val_score"] = [0.5, 0.9, 0.7][epoch]

    checkpoint = RunCheckpoint(tmp_path / "c", monitor="val_score", mode="max", verbose=0)
    model.fit(x, y, epochs=2, shuffle=False, verbose=0, callbacks=[checkpoint, Record()])
    first = latest_checkpoint(tmp_path / "c")
    in_memory = _model()  # the best epoch's host copies kept by the instance itself
    assert checkpoint.restore_best_weights(in_memory) == 1
    for v, want in zip(in_memory.variables, seen[1], strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), want)
    # Only the newest checkpoint is kept: remember the first one's files by inode.
    first_inodes = [os.stat(first / "model" / f"v{i:05d}.npy").st_ino for i in (0, 2)]
    model.fit(x, y, epochs=3, shuffle=False, verbose=0, callbacks=[checkpoint, Record()])
    last = latest_checkpoint(tmp_path / "c")
    assert (first.name, last.name) == ("epoch-0001", "epoch-0002")
    assert not first.exists()
    assert [h["epoch"] for h in checkpoint.history] == [0, 1, 2]
    assert checkpoint.best["epoch"] == 1 and checkpoint.best["value"] == pytest.approx(0.9)
    # Record ran before RunCheckpoint although listed after it: its score was saved.
    assert [h["val_score"] for h in checkpoint.history] == pytest.approx([0.5, 0.9, 0.7])
    # The frozen kernel is the same file (a hard link), the trained one was written anew.
    assert os.stat(last / "model" / "v00000.npy").st_ino == first_inodes[0]
    assert os.stat(last / "model" / "v00002.npy").st_ino != first_inodes[1]
    state = json.loads((last / "state.json").read_text())
    assert state["sessions"] == 2 and state["epoch"] == 2
    fresh = _model()
    assert RunCheckpoint(tmp_path / "c").restore_best_weights(fresh) == 1
    for v, want in zip(fresh.variables, seen[1], strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), want)


def test_finished_early_stopped_run_resumed_trains_no_more(tmp_path, keras_backend):
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = float(epoch)  # worse every epoch: stop after patience 1

    def fit():
        return _model().fit(x, y, epochs=10, verbose=0, shuffle=False, callbacks=[
            Score(), EarlyStopping("val_score", patience=1, mode="min"),
            RunCheckpoint(tmp_path / "c", monitor="val_score", verbose=0)])

    assert len(fit().history["loss"]) == 2
    assert RunCheckpoint(tmp_path / "c").stopped
    assert fit().history.get("loss", []) == []


def test_nonfinite_epoch_is_not_checkpointed(tmp_path, keras_backend):
    x = np.full((4, 3), 1e3, "float32")
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(1e30), loss="mse")
    checkpoint = RunCheckpoint(tmp_path / "c", monitor="loss", verbose=0)
    model.fit(x, x[:, :1], epochs=3, batch_size=4, verbose=0, callbacks=[checkpoint])
    losses = [h["loss"] for h in checkpoint.history]
    finite = [loss is not None for loss in losses]
    assert finite[0] and not all(finite)
    assert latest_checkpoint(tmp_path / "c").name == f"epoch-{finite.index(False) - 1:04d}"


@pytest.mark.parametrize("kwargs,match", [({"directory": ""}, "directory"),
                                          ({"directory": "d", "mode": "up"}, "mode")])
def test_bad_arguments_name_the_argument(kwargs, match, keras_backend):
    with pytest.raises(ValueError, match=f"argument `{match}`"):
        RunCheckpoint(**kwargs)


def test_checkpoint_of_another_model_is_refused_naming_the_variable(tmp_path, keras_backend):
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    _model().fit(x, y, epochs=1, verbose=0, callbacks=[RunCheckpoint(tmp_path / "c")])
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5), keras.layers.Dense(1)])
    other.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="has shape"):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[RunCheckpoint(tmp_path / "c")])


def test_damaged_newest_checkpoint_is_skipped_with_a_warning_naming_it(tmp_path,
                                                                      keras_backend):
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    _model().fit(x, y, epochs=2, verbose=0, shuffle=False,
                 callbacks=[RunCheckpoint(tmp_path / "c", verbose=0)])
    good = latest_checkpoint(tmp_path / "c")
    assert good.name == "epoch-0001"
    damaged = tmp_path / "c" / "epoch-0007"
    shutil.copytree(good, damaged)
    (damaged / "state.json").write_text('{"epoch": 7, "hist')  # cut short
    with pytest.warns(UserWarning, match="damaged checkpoint .*epoch-0007"):
        assert latest_checkpoint(tmp_path / "c") == good
    (damaged / "state.json").unlink()
    with pytest.warns(UserWarning, match="epoch-0007.*missing or unreadable"):
        checkpoint = RunCheckpoint(tmp_path / "c", verbose=0)
    assert checkpoint.initial_epoch == 2  # resumes from the good one
    history = _model().fit(x, y, epochs=3, verbose=0, shuffle=False, callbacks=[checkpoint])
    assert len(history.history["loss"]) == 1


def test_folder_that_is_not_a_checkpoint_folder_is_refused(tmp_path, keras_backend):
    folder = tmp_path / "backup"
    folder.mkdir()
    RunCheckpoint(folder)  # empty: fine
    (folder / "training_metadata.json").write_text("{}")  # BackupAndRestore's, say
    with pytest.raises(ValueError, match=r"argument `directory`.*not a RunCheckpoint folder "
                                         r"\(it holds training_metadata.json"):
        RunCheckpoint(folder)


def _data():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    return x, x[:, :1] * 0.5


@pytest.fixture
def gated_writes(monkeypatch):
    """``gated_writes(epoch, action)``: the writer of that epoch's checkpoint runs `action`
    (wait on an event, raise) before its first file."""
    import threading

    from keras_recipes.callbacks import run_checkpoint

    real = run_checkpoint.save_arrays
    release = threading.Event()
    actions = {}

    def save_arrays(folder, values, previous):
        action = actions.get(Path(folder).parent.name)
        if action is not None:
            action(release)
        real(folder, values, previous)

    monkeypatch.setattr(run_checkpoint, "save_arrays", save_arrays)
    try:
        yield lambda epoch, action: actions.__setitem__(f".epoch-{epoch:04d}.tmp", action)
    finally:
        release.set()  # never leave a writer thread waiting


def test_finish_in_background_returns_before_the_last_write_lands(tmp_path, gated_writes,
                                                                  keras_backend):
    import threading

    from keras_recipes.callbacks.checkpoint_files import load_arrays

    reached, gate = threading.Event(), []
    gated_writes(2, lambda release: gate.append(release) or reached.set() or release.wait(60))
    x, y = _data()
    model = _model()
    checkpoint = RunCheckpoint(tmp_path / "c", verbose=0, finish_in_background=True)
    model.fit(x, y, epochs=3, verbose=0, shuffle=False, callbacks=[checkpoint])
    # fit has returned; the last checkpoint is being written (held at its gate)
    assert reached.wait(30) and checkpoint._writer.is_alive()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [".epoch-0002.tmp",
                                                                  "epoch-0001"]
    gate[0].set()
    assert latest_checkpoint(tmp_path / "c").name == "epoch-0002"  # waits for the write
    assert not checkpoint._writer.is_alive()
    checkpoint.wait_for_writes()
    assert RunCheckpoint(tmp_path / "c", verbose=0).initial_epoch == 3
    saved = load_arrays(tmp_path / "c" / "epoch-0002" / "model")
    for a, v in zip(saved, model.variables, strict=True):
        np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(v))


@pytest.mark.parametrize("background", [False, True])
def test_failed_write_is_warned_and_raised_keeping_the_previous_checkpoint(
        background, tmp_path, gated_writes, keras_backend):
    def disk_full(release):
        raise OSError(28, "No space left on device")

    gated_writes(1, disk_full)
    x, y = _data()
    checkpoint = RunCheckpoint(tmp_path / "c", verbose=0, finish_in_background=background)
    with pytest.warns(RuntimeWarning, match="could not write the checkpoint of epoch 1 in "
                                            ".*No space left on device"):
        with pytest.raises(OSError, match=r"Could not write the checkpoint in .*c: "):
            _model().fit(x, y, epochs=2, verbose=0, shuffle=False, callbacks=[checkpoint])
            checkpoint.wait_for_writes()  # (background: fit returned first)
    assert latest_checkpoint(tmp_path / "c").name == "epoch-0000"
    checkpoint.wait_for_writes()  # raised once


def test_program_ending_right_after_fit_waits_for_the_background_write(tmp_path,
                                                                       keras_backend):
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
import keras, numpy as np
from keras_recipes.callbacks import RunCheckpoint, run_checkpoint
real = run_checkpoint.save_arrays
def slow(folder, values, previous):
    if ".epoch-0001.tmp" in str(folder):
        time.sleep(1.5)
    real(folder, values, previous)
run_checkpoint.save_arrays = slow
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
checkpoint = RunCheckpoint({str(tmp_path / "c")!r}, verbose=0, finish_in_background=True)
model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=2, verbose=0, callbacks=[checkpoint])
print("writing" if checkpoint._writer.is_alive() else "written", flush=True)
"""
    out = processes.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, KERAS_BACKEND=keras_backend))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "writing"  # the program ended during the write
    assert latest_checkpoint(tmp_path / "c").name == "epoch-0001"
    assert not list((tmp_path / "c").glob(".epoch-*"))
