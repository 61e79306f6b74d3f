"""Every `>>>` example in the package's docstrings runs, under each backend."""

import doctest
import importlib
import pkgutil

import pytest

import keras_recipes

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(keras_recipes.__path__, prefix="keras_recipes.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name, globs=dict(vars(module))):
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
