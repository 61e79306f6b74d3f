"""The smoke runs of the recipes in ``recipes/``, and checks of their run folders.

The small recipes run with ``--smoke`` in ONE subprocess
(``tests/recipes/run_smoke_recipes.py``, each as ``__main__`` with its own
``sys.argv``, as a user runs ``python recipes/<name>.py --smoke``): importing
Keras and the backend once instead of once per recipe keeps the recipes' smoke tests
within their time budget. Each test then checks its own recipe's run folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from tests import processes

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1800  # a guard against hangs only: a busy shared CPU can take 10x the idle time


@dataclass
class SmokeRun:
    run_dir: Path
    config: dict
    metrics: dict
    results: str
    stdout: str
    stderr: str  # the whole smoke process's (shared by the recipes it ran)

    def table_rows(self) -> dict[str, list[str]]:
        """The Markdown table of results.md as {first cell: cells}."""
        rows = {}
        for line in self.results.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and not set(line) <= set("|-") and len(cells) > 1:
                rows[cells[0]] = cells
        return rows


RECIPES = ("vanishing_gradients", "gradient_clipping", "regularization_ablation",
           "early_stopping", "semi_supervised_vat")


def run_all(out: Path, names: tuple[str, ...] = RECIPES) -> subprocess.CompletedProcess:
    """Runs the recipes' smoke runs in one subprocess under this process's backend."""
    threads = int(os.environ.get("KERAS_RECIPES_TEST_THREADS", "1") or 1)
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=keras.backend.backend(),
        KERAS_RECIPES_TEST_THREADS=str(threads),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        MPLBACKEND="Agg",
    )
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, str(threads))
    return processes.run(
        [sys.executable, str(ROOT / "tests" / "recipes" / "run_smoke_recipes.py"), str(out),
         *names],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )


def load_run(out: Path, name: str, proc: subprocess.CompletedProcess) -> SmokeRun:
    """The run folder of one recipe's smoke run, after checking that it succeeded."""
    status_file = out / f"{name}.status.json"
    log = f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert status_file.is_file(), f"{name} did not run:\n{log}"
    status = json.loads(status_file.read_text())
    stdout = (out / f"{name}.log").read_text()
    failure = f"{stdout[-2000:]}\n{status['traceback']}"
    assert status["returncode"] == 0, f"{name} --smoke failed:\n{failure}"
    match = re.search(r"Run folder: (\S+)", stdout)
    assert match, stdout[-2000:]
    run_dir = Path(match.group(1))
    assert run_dir.parent == out / name and run_dir.is_dir()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["smoke"] is True and config["backend"] == keras.backend.backend()
    # The resolved configuration is printed once, as the log's record of what ran.
    printed = [line for line in stdout.splitlines() if line.startswith("config: ")]
    assert len(printed) == 1 and json.loads(printed[0][len("config: "):]) == config
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["backend"] == keras.backend.backend()
    assert np.isfinite(metrics["wall_time_s"]) and metrics["wall_time_s"] > 0
    return SmokeRun(run_dir, config, metrics, (run_dir / "results.md").read_text(), stdout,
                    proc.stderr)


def assert_png(path: Path, min_size: int = 2000) -> None:
    """A real, non-blank PNG image."""
    from PIL import Image

    assert path.is_file() and path.stat().st_size >= min_size, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype="float32")
    assert pixels.shape[0] >= 100 and pixels.shape[1] >= 100
    assert pixels.std() > 5.0, f"{path} looks blank"


def assert_tensorboard(log_dir: Path, tags: tuple[str, ...], steps: int) -> dict:
    """Event files under ``log_dir`` hold each tag at ``steps`` steps; returns the scalars."""
    from keras_recipes.callbacks.event_writer import read_scalars

    scalars = read_scalars(log_dir)
    for tag in tags:
        assert tag in scalars, (tag, sorted(scalars)[:20])
        assert len(scalars[tag]) == steps, (tag, scalars[tag])
        assert all(np.isfinite(v) for _, v in scalars[tag]), (tag, scalars[tag])
    return scalars


def assert_summary(summary: dict) -> None:
    """A per-seed summary: finite values, and mean/sd that are theirs."""
    values = np.asarray(summary["values"], dtype="float64")
    assert values.size >= 1 and np.all(np.isfinite(values)), summary
    np.testing.assert_allclose(summary["mean"], values.mean(), rtol=1e-9, atol=1e-12)
    sd = values.std(ddof=1) if values.size > 1 else 0.0
    np.testing.assert_allclose(summary["sd"], sd, rtol=1e-9, atol=1e-12)


_LOAD_ALONE = """
import sys
import keras
import numpy as np
model = keras.saving.load_model(sys.argv[1])
x = np.random.default_rng(0).uniform(0, 1, (2,) + tuple(model.input_shape[1:])).astype("float32")
y = np.asarray(model.predict(x, verbose=0))
assert "keras_recipes" not in sys.modules, "keras_recipes was imported"
assert np.isfinite(y).all() and y.shape[0] == 2, y
print("loaded", [type(layer).__module__.split(".")[0] for layer in model._flatten_layers()])
"""


def assert_loads_with_keras_alone(path: Path) -> None:
    """A recipe's saved model loads and predicts in a process that never imports keras_recipes."""
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    proc = processes.run([sys.executable, "-c", _LOAD_ALONE, str(path)], env=env,
                         cwd=path.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    modules = proc.stdout.split("loaded", 1)[1]
    assert "keras_recipes" not in modules and "'keras'" in modules, modules
