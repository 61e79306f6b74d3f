"""tests/run_backends.py: the counts and the failures it reads from a pytest JUnit report."""

import subprocess
import sys

from tests.run_backends import _counts

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
    proc = subprocess.run(
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
