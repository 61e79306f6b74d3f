"""tests/run_backends.py: the counts and the failures it reads from a pytest JUnit report, and
the time limits: pytest-timeout's per test, the runner's --process-timeout per pytest process."""

import os
import sys
import time
from pathlib import Path

from tests import processes
from tests.run_backends import _counts

RUNNER = Path(__file__).resolve().parent / "run_backends.py"

FAILING = """
def test_ok():
    assert 1 == 1

def test_fails():
    assert 1 == 2, "one is not two"

def test_errors(no_such_fixture):
    pass

def test_skipped():
    import pytest
    pytest.skip("not here")
"""


def test_counts_and_names_the_failures_of_a_real_pytest_run(tmp_path, keras_backend):
    (tmp_path / "test_sample.py").write_text(FAILING)
    junit = tmp_path / "junit.xml"
    proc = processes.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
         str(tmp_path / "test_sample.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    counts = _counts(junit)
    # By hand: 4 tests, 1 passes, 1 fails, 1 errors at setup, 1 is skipped.
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (1, 2, 1)
    failures = dict(counts["failures"])
    assert set(failures) == {"FAILURE test_sample::test_fails", "ERROR test_sample::test_errors"}
    assert "one is not two" in failures["FAILURE test_sample::test_fails"]
    assert "no_such_fixture" in failures["ERROR test_sample::test_errors"]


def test_missing_report_counts_nothing(tmp_path, keras_backend):
    assert _counts(tmp_path / "absent.xml") == {
        "passed": 0, "failed": 0, "skipped": 0, "failures": []}


SLEEPS_FOREVER = """
import time

def test_ok():
    pass

def test_sleeps_forever():
    time.sleep(10**6)
"""

# The test starts a child in a session of its own (as torchrun starts its ranks), which starts a
# grandchild, and a child in pytest's own process group; then waits for the first child forever.
CHILDREN_HANG = """
import os, subprocess, sys

def test_ok():
    pass

def test_child_group_hangs():
    code = ("import subprocess, time; c = subprocess.Popen(['sleep', '1000']); "
            "print(c.pid, flush=True); time.sleep(1000)")
    detached = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                                stdout=subprocess.PIPE, text=True)
    same_group = subprocess.Popen(["sleep", "1000"])
    grandchild = detached.stdout.readline().strip()
    with open(os.environ["PLANTED_PIDS"], "w") as f:
        f.write(f"{os.getpid()} {detached.pid} {same_group.pid} {grandchild}")
    detached.wait()
"""


def _run_planted(tmp_path, source: str, backend: str, process_timeout: float,
                 test_timeout: float, env=None):
    """``run_backends.py`` on one planted test file, with these limits."""
    test_file = tmp_path / "planted" / "test_planted.py"
    test_file.parent.mkdir()
    test_file.write_text(source)
    start = time.monotonic()
    proc = processes.run(
        [sys.executable, str(RUNNER), "--backends", backend,
         "--process-timeout", str(process_timeout), "--", "--timeout", str(test_timeout),
         str(test_file)],
        env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=120,
    )
    return proc, proc.stdout.splitlines(), time.monotonic() - start


def test_a_test_that_hangs_fails_at_its_limit_and_is_named_at_the_end(tmp_path, keras_backend):
    proc, lines, seconds = _run_planted(tmp_path, SLEEPS_FOREVER, keras_backend,
                                        process_timeout=60, test_timeout=2)
    # pytest-timeout's limit (2 s), not the process deadline (60 s): the process goes on.
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert seconds < 60 and "DEADLINE" not in proc.stdout, proc.stdout[-3000:]
    assert lines[-1] == "total: 1 passed, 1 failed, 0 skipped", lines[-5:]
    named = [ln for ln in lines[-4:] if "test_sleeps_forever" in ln]
    assert named and "Timeout (>2.0s)" in named[0], lines[-5:]


def test_a_hung_process_is_killed_at_its_deadline_with_all_its_children(tmp_path,
                                                                        keras_backend):
    pids_file = tmp_path / "pids"
    proc, lines, seconds = _run_planted(
        tmp_path, CHILDREN_HANG, keras_backend, process_timeout=4, test_timeout=0,
        env={"PLANTED_PIDS": str(pids_file)})
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert seconds < 60, seconds
    assert lines[-1] == "total: 1 passed, 1 failed, 0 skipped", lines[-5:]
    assert any(ln.startswith("DEADLINE ") and "test_child_group_hangs" in ln
               and "--process-timeout 4 s" in ln for ln in lines[-4:]), lines[-5:]
    # The block printed at the deadline: the running test and the process's last lines.
    running = [ln for ln in lines if "test running: " in ln]
    assert running and running[0].endswith("test_planted.py::test_child_group_hangs"), running
    assert any("| " in ln and "test_planted.py::test_ok PASSED" in ln for ln in lines)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 4  # pytest, its two children and the grandchild
    assert not [p for p in pids if processes.alive(p)], pids
