"""Runs the whole test suite once under each Keras backend, each in its own process.

A few pytest processes per backend (``OWN_PROCESS``: the recipe tests, the distribute tests, and
the rest of the suite together); a process never mixes backends (importing Keras fixes the
backend). ``--jobs`` such processes run at a time over all backends, heaviest first, so both
cores stay busy to the end.

Usage (from the repository root):

    python tests/run_backends.py                  # torch, tensorflow and jax
    python tests/run_backends.py --backends torch # one backend
    python tests/run_backends.py -- -k mix_up     # extra pytest arguments after --

Single backend with plain pytest: ``KERAS_BACKEND=jax python -m pytest``.

Each test id carries its backend (``test_x[torch]``). A backend whose package
is not installed is reported as SKIPPED in a banner and in the totals, and
``--require-all`` turns that into a failure. The last line reads
``total: N passed, N failed, N skipped``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "tensorflow", "jax")
PACKAGES = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def _counts(junit: Path) -> dict:
    """Passed/failed/skipped counts of one pytest process, and its failures as
    ``(test id, first line of the message)`` pairs."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    if not junit.exists():
        return counts
    root = ET.parse(junit).getroot()
    for suite in root.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts["failed"] += failed
        counts["skipped"] += skipped
        counts["passed"] += tests - failed - skipped
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
                lines = (node.get("message") or "").strip().splitlines()
                message = lines[0] if lines else ""
                # pytest's "E   ..." lines: the exception (a setup error's message alone
                # only names the file and line).
                raised = [ln[1:].strip() for ln in (node.text or "").splitlines()
                          if ln.startswith("E ")]
                if raised and raised[0] not in message:
                    message = f"{message} | {raised[0]}" if message else raised[0]
                counts["failures"].append((f"{tag.upper()} {test_id}", message))
    return counts


# Test paths that run in a pytest process of their own; everything else under tests/ shares one
# process per backend (one Keras import instead of one per folder: ~7-13 s of CPU each).
# tests/distribute must start fresh: its conftest gives the process 2 devices before TensorFlow
# or JAX initializes. The recipe tests are the heaviest and are split for load balance.
OWN_PROCESS = ("tests/recipes/test_transfer_vgg19.py", "tests/recipes", "tests/distribute")


def _groups(pytest_args: list[str]) -> list[list[str]]:
    """The pytest processes of one backend: OWN_PROCESS paths, then the rest of tests/
    together; extra arguments that name paths are run as given, in one process."""
    if any(Path(a.split("::")[0]).exists() for a in pytest_args if not a.startswith("-")):
        return [[]]
    groups = []
    for path in OWN_PROCESS:
        ignore = [f"--ignore={p}" for p in OWN_PROCESS if p != path and p.startswith(path)]
        groups.append([path, *ignore])
    groups.append(["tests", *(f"--ignore={p}" for p in OWN_PROCESS)])
    return groups


# Folders that take longest run first, so that the last minutes do not leave a core idle
# (longest-processing-time-first scheduling over all (backend, folder) jobs).
HEAVY_FIRST = ("tests", "tests/recipes/test_transfer_vgg19.py", "tests/recipes",
               "tests/distribute")
SLOW_BACKEND_FIRST = ("jax", "tensorflow", "torch")


def _env(backend: str, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_RECIPES_TEST_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, str(threads))
    env.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    return env


def _run_job(job: dict, pytest_args: list[str], threads: int, workdir: Path, lock) -> dict:
    """One pytest process: one backend, one test folder (or the paths given after --)."""
    backend, group = job["backend"], job["group"]
    junit = workdir / f"junit-{backend}-{job['index']}.xml"
    cmd = [
        sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
        f"--junitxml={junit}", *pytest_args, *group,
    ]
    start = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=_env(backend, threads), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        with lock:
            sys.stdout.write(f"[{backend}] {line}")
            sys.stdout.flush()
    code = proc.wait()
    return {
        "backend": backend,
        "group": (group[0] if group else "")
        or " ".join(a for a in pytest_args if Path(a.split("::")[0]).exists()),
        "rc": 0 if code in (0, 5) else code,  # 5: this folder collected nothing under a filter
        "seconds": time.time() - start,
        **_counts(junit),
    }


def _jobs(backends: list[str], pytest_args: list[str]) -> list[dict]:
    def weight(group: list[str]) -> int:
        return HEAVY_FIRST.index(group[0]) if group and group[0] in HEAVY_FIRST else 99

    groups = sorted(_groups(pytest_args), key=weight)
    order = sorted(backends, key=SLOW_BACKEND_FIRST.index)
    return [
        {"backend": b, "group": g, "index": i}
        for i, g in enumerate(groups)
        for b in order
    ]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated backends to run (default: all three)")
    parser.add_argument("--jobs", type=int, default=3,
                        help="pytest processes run at the same time, over all backends and "
                             "test folders (default: 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="compute threads per backend process (default: 1)")
    parser.add_argument("--require-all", action="store_true",
                        help="fail when a requested backend is not installed")
    args = parser.parse_args(argv)
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in wanted if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; expected some of {list(BACKENDS)}")

    missing = [b for b in wanted if importlib.util.find_spec(PACKAGES[b]) is None]
    present = [b for b in wanted if b not in missing]
    for b in missing:
        print("=" * 78)
        print(f"BACKEND SKIPPED: {b} -- the '{PACKAGES[b]}' package is not installed.")
        print("Its tests did NOT run. Install it (pip install -e '.[jax,dev]') to run them.")
        print("=" * 78)

    lock = threading.Lock()
    done: list[dict] = []
    pending = _jobs(present, extra)
    wall_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:

        def worker():
            while True:
                with lock:
                    if not pending:
                        return
                    job = pending.pop(0)
                res = _run_job(job, extra, args.threads, Path(tmp), lock)
                with lock:
                    done.append(res)

        threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    wall = time.time() - wall_start

    print("=" * 78)
    print("seconds per pytest process (backend x test path):")
    folders = sorted({r["group"] for r in done})
    print(f"  {'path':<40}" + "".join(f"{b:>12}" for b in present))
    for f in folders:
        cells = {r["backend"]: r["seconds"] for r in done if r["group"] == f}
        print(f"  {f[:40]:<40}" + "".join(f"{cells.get(b, 0):>12.0f}" for b in present))
    results = []
    for b in present:
        rs = [r for r in done if r["backend"] == b]
        results.append({
            "backend": b,
            "rc": next((r["rc"] for r in rs if r["rc"]), 0),
            "seconds": sum(r["seconds"] for r in rs),
            **{k: sum(r[k] for r in rs) for k in ("passed", "failed", "skipped")},
        })

    print("=" * 78)
    print(f"{'backend':<12}{'passed':>8}{'failed':>8}{'skipped':>9}{'seconds':>10}  exit")
    total = {"passed": 0, "failed": 0, "skipped": 0}
    ok = True
    for r in sorted(results, key=lambda r: BACKENDS.index(r["backend"])):
        print(f"{r['backend']:<12}{r['passed']:>8}{r['failed']:>8}{r['skipped']:>9}"
              f"{r['seconds']:>10.0f}  {r['rc']}")
        for k in total:
            total[k] += r[k]
        if r["rc"] != 0:
            ok = False
        if r["passed"] + r["failed"] == 0:
            print(f"  {r['backend']}: no test ran")
            ok = False
    for b in missing:
        print(f"{b:<12}{'BACKEND NOT INSTALLED: SKIPPED':>35}")
        if args.require_all:
            ok = False
    print(f"wall time {wall:.0f} s ('seconds' above: summed over that backend's processes)")
    failures = [f for r in done for f in r["failures"]]
    if failures:
        # Repeated here, at the end, so that a log cut to its tail still names what failed.
        print("=" * 78)
        for test_id, message in failures:
            print(f"{test_id}: {message[:300]}")
    print("=" * 78)
    print(f"total: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
