"""Fixtures of the recipe smoke tests."""

import pytest

from tests.recipes.smoke_run import RECIPES, load_run, run_all


@pytest.fixture(scope="session")
def recipe_smoke_runs(tmp_path_factory):
    """``name -> SmokeRun`` loader over one subprocess running every recipe with --smoke."""
    out = tmp_path_factory.mktemp("recipe_smoke")
    proc = run_all(out, RECIPES)
    return lambda name: load_run(out, name, proc)
