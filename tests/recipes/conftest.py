"""Fixtures of the recipe smoke tests."""

from pathlib import Path

import pytest

from tests.recipes.smoke_run import RECIPES, TIMEOUT, load_run, run_all

# The fixtures that run recipes with --smoke as subprocesses (this one, and `smoke` in
# test_transfer_vgg19.py) count in the per-test limit of their first test, and each waits up
# to TIMEOUT (1800 s) for its subprocess: a busy shared 2-core CPU once took over 900 s. Their
# tests get TIMEOUT + 300 s instead of pyproject's default 600 s, so that the subprocess's own
# timeout fires first and the failure shows the subprocess's output.
SMOKE_FIXTURES = ("recipe_smoke_runs", "smoke")


def pytest_collection_modifyitems(items):
    for item in items:
        if (item.get_closest_marker("timeout") is None
                and item.path.is_relative_to(Path(__file__).parent)
                and set(SMOKE_FIXTURES) & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.timeout(TIMEOUT + 300))


@pytest.fixture(scope="session")
def recipe_smoke_runs(tmp_path_factory):
    """``name -> SmokeRun`` loader over one subprocess running every recipe with --smoke."""
    out = tmp_path_factory.mktemp("recipe_smoke")
    proc = run_all(out, RECIPES)
    return lambda name: load_run(out, name, proc)
