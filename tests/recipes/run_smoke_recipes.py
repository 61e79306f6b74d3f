"""Runs several recipe scripts with ``--smoke`` in ONE Python process, one after the other.

Usage: ``python tests/recipes/run_smoke_recipes.py OUT NAME [NAME ...]``

Each recipe runs exactly as ``python recipes/<NAME>.py --smoke --threads N --out
OUT/<NAME>`` would (``runpy`` with ``__name__ == "__main__"`` and its own
``sys.argv``), its stdout going to ``OUT/<NAME>.log`` and its outcome (exit
status, traceback, CPU seconds) to ``OUT/<NAME>.status.json``. Sharing the
process means Keras, the backend, matplotlib and TensorFlow's lazy import (Keras
imports it to save a ``.keras`` file) are loaded once instead of once per recipe:
about 10-20 CPU seconds saved per recipe, which is most of a smoke test's cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    out, names = Path(argv[0]), argv[1:]
    # As for `python recipes/<NAME>.py`, whose folder Python puts first on sys.path: the
    # scripts import recipes/_bootstrap.py (the backend choice made before Keras loads).
    sys.path.insert(0, str(ROOT / "recipes"))
    threads = os.environ.get("KERAS_RECIPES_TEST_THREADS", "1") or "1"
    failures = 0
    for name in names:
        script = ROOT / "recipes" / f"{name}.py"
        run_out = out / name
        sys.argv = [str(script), "--smoke", "--threads", threads, "--out", str(run_out)]
        status = {"name": name, "returncode": 0, "traceback": None}
        start, cpu = time.perf_counter(), time.process_time()
        with open(out / f"{name}.log", "w") as log, contextlib.redirect_stdout(log):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as e:
                status["returncode"] = e.code if isinstance(e.code, int) else 1
                status["traceback"] = traceback.format_exc()
            except BaseException:  # noqa: BLE001  (reported to the test, never swallowed)
                status["returncode"] = 1
                status["traceback"] = traceback.format_exc()
        status["wall_s"] = time.perf_counter() - start
        status["cpu_s"] = time.process_time() - cpu
        failures += status["returncode"] != 0
        (out / f"{name}.status.json").write_text(json.dumps(status, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
