"""Runs the whole test suite once under each Keras backend, each in its own process.

A few pytest processes per backend (``OWN_PROCESS``: the recipe tests, the distribute tests, and
the rest of the suite together); a process never mixes backends (importing Keras fixes the
backend). ``--jobs`` such processes run at a time over all backends, heaviest first, so both
cores stay busy to the end.

Usage (from the repository root):

    python tests/run_backends.py                  # torch, tensorflow and jax
    python tests/run_backends.py --backends torch # one backend
    python tests/run_backends.py -- -k mix_up     # extra pytest arguments after --
    python tests/run_backends.py --process-timeout 3600 -- --timeout 900   # other limits

Single backend with plain pytest: ``KERAS_BACKEND=jax python -m pytest``.

Each test id carries its backend (``test_x[torch]``). A backend whose package
is not installed is reported as SKIPPED in a banner and in the totals, and
``--require-all`` turns that into a failure. The last line reads
``total: N passed, N failed, N skipped``.

Time limits: each test has pytest-timeout's (``timeout`` in pyproject.toml; ``-- --timeout S``
for one run); each pytest process has ``--process-timeout`` (default ``PROCESS_TIMEOUT``): past
it the process is killed with every process it started (it runs in a session of its own; its
children that left its process group are found by descent and by an inherited marker
variable), it counts as one failure, and the output names the test that was running and shows
the process's last lines.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: tests/ is on the path, not the root
    sys.path.insert(0, str(ROOT))

from tests.processes import kill_tree  # noqa: E402

BACKENDS = ("torch", "tensorflow", "jax")
PACKAGES = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
# Default --process-timeout: above the largest per-test limit (2100 s: the recipe tests that wait
# on a smoke subprocess; pyproject's default is 600 s), so that pytest-timeout names a hung
# test first and the process goes on; and short enough for CI's 90 minutes (the whole run takes
# ~15 min with 3 processes at a time: a process that hangs from its start ends within ~55 min).
PROCESS_TIMEOUT = 2400
# Set to a value of its own in each pytest process's environment: every process it starts
# inherits it, so that the process's orphans can be found and killed.
MARKER_VAR = "KERAS_RECIPES_TEST_PROCESS"
RUNNING: dict[int, str] = {}  # pid -> marker of the pytest processes running now


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


# A line of `pytest -v` that starts a test (``path.py::name[torch] ``, the result follows on the
# same line) and one that ends it (`` PASSED``, ...).
TEST_LINE = re.compile(r"^(\S+?\.py::\S+)(?: (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b)?")
OUTCOME = {"PASSED": "passed", "XPASS": "failed", "FAILED": "failed", "ERROR": "failed",
           "SKIPPED": "skipped", "XFAIL": "skipped"}
TAIL_LINES = 40  # lines of a killed process shown at its deadline


class _Output:
    """Reads a pytest process's output as it comes (partial lines too: `pytest -v` writes a
    test's id before running it and its result after), echoes each line with the backend's
    prefix, and keeps the last lines, the test that started last and the results seen."""

    def __init__(self, stream, backend: str, lock):
        self.stream, self.backend, self.lock = stream, backend, lock
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.partial = ""
        self.running: str | None = None
        self.results: dict[str, str] = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _line(self, line: str, complete: bool) -> None:
        match = TEST_LINE.match(line)
        if match:
            self.running = match.group(1)
            if match.group(2):
                self.results[match.group(1)] = match.group(2)
        if complete:
            self.tail.append(line)
            with self.lock:
                sys.stdout.write(f"[{self.backend}] {line}\n")
                sys.stdout.flush()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = self.stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            text = decoder.decode(chunk, final=not chunk)
            *lines, self.partial = (self.partial + text).split("\n")
            for line in lines:
                self._line(line, complete=True)
            if self.partial:
                self._line(self.partial, complete=False)
            if not chunk:
                if self.partial:
                    self._line(self.partial, complete=True)
                    self.partial = ""
                return

    def finish(self, seconds: float = 10) -> None:
        """Waits for the end of the output (a process that escaped the kill and holds the pipe
        is not waited for longer than ``seconds``)."""
        self.thread.join(seconds)

    def last_lines(self) -> list[str]:
        return [*self.tail, *([self.partial] if self.partial else [])]

    def counts(self) -> dict:
        """Counts from the results printed so far (the JUnit report of a killed process is
        never written)."""
        counts = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
        for test_id, result in self.results.items():
            counts[OUTCOME[result]] += 1
            if OUTCOME[result] == "failed":
                counts["failures"].append((f"{result} {test_id}", "(see the output above)"))
        return counts


def _run_job(job: dict, pytest_args: list[str], threads: int, workdir: Path, lock,
             process_timeout: float = 0) -> dict:
    """One pytest process: one backend, one test folder (or the paths given after --).

    Past ``process_timeout`` seconds (0: none) the process is killed with everything it started
    (its process group, its descendants and their groups, and any process that inherited its
    marker variable), and counts as one failure naming the test that was running.
    """
    backend, group = job["backend"], job["group"]
    junit = workdir / f"junit-{backend}-{job['index']}.xml"
    cmd = [
        sys.executable, "-u", "-m", "pytest", "-v", "-p", "no:cacheprovider",
        f"--junitxml={junit}", *pytest_args, *group,
    ]
    env = _env(backend, threads)
    marker = f"{MARKER_VAR}={uuid.uuid4().hex}"
    env[MARKER_VAR] = marker.split("=", 1)[1]
    name = (group[0] if group else "") or " ".join(
        a for a in pytest_args if Path(a.split("::")[0]).exists())
    start = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    with lock:
        RUNNING[proc.pid] = marker
    output = _Output(proc.stdout, backend, lock)
    timed_out = False
    try:
        code = proc.wait(timeout=process_timeout or None)
    except subprocess.TimeoutExpired:
        timed_out = True
        killed = kill_tree(proc.pid, marker=marker)
        code = proc.wait()
    except BaseException:  # Ctrl-C: take the process and its children along
        kill_tree(proc.pid, marker=marker)
        raise
    else:
        # Processes a test left behind (detached from pytest's group) stop here, not at the
        # end of the suite.
        leftovers = kill_tree(None, marker=marker)
        if leftovers:
            with lock:
                print(f"[{backend}] {name}: killed {len(leftovers)} process(es) that its tests "
                      f"left running")
    with lock:
        RUNNING.pop(proc.pid, None)
    output.finish()
    proc.stdout.close()
    result = {
        "backend": backend,
        "group": name,
        "rc": 0 if code in (0, 5) else code,  # 5: this folder collected nothing under a filter
        "seconds": time.time() - start,
        **_counts(junit),
    }
    if timed_out:
        running = output.running if output.running not in output.results else None
        counts = output.counts()
        counts["failed"] += 1
        what = running or f"no test (between tests, or collecting: {name})"
        last = output.last_lines()
        counts["failures"].append((
            f"DEADLINE {running or name}",
            f"pytest process killed after --process-timeout {process_timeout:g} s "
            f"({len(killed)} processes); its last line: {last[-1].strip() if last else ''}"))
        result.update(counts, rc=code or -9)
        with lock:
            print("=" * 78)
            print(f"[{backend}] DEADLINE: the pytest process of {name} ran past "
                  f"--process-timeout {process_timeout:g} s; killed it with its process group "
                  f"and every process it started ({len(killed)} in all).")
            print(f"[{backend}] test running: {what}")
            print(f"[{backend}] its last {len(last)} lines:")
            for line in last:
                print(f"[{backend}] | {line}")
            print("=" * 78)
            sys.stdout.flush()
    return result


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
    parser.add_argument("--process-timeout", type=float, default=PROCESS_TIMEOUT,
                        metavar="SECONDS",
                        help="deadline of each pytest process: past it the process is killed "
                             "with everything it started and counts as failed, naming the test "
                             f"that was running (default: {PROCESS_TIMEOUT}; 0: none). The "
                             "limit per test is pytest-timeout's: pass `-- --timeout SECONDS`")
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
                res = _run_job(job, extra, args.threads, Path(tmp), lock, args.process_timeout)
                with lock:
                    done.append(res)

        threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            # The pytest processes run in sessions of their own: Ctrl-C does not reach them.
            with lock:
                pending.clear()
                running = dict(RUNNING)
            for pid, marker in running.items():
                kill_tree(pid, marker=marker)
            for t in threads:
                t.join()
            print("interrupted: every pytest process was killed")
            return 130
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
