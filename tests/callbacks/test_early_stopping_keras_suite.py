"""Keras's own EarlyStopping tests, run against ours (a drop-in superset).

The source of the installed ``keras/src/callbacks/early_stopping_test.py`` is executed
unchanged in a private namespace whose ``__import__`` hands its ``from keras.src import
callbacks`` line a copy of ``keras.src.callbacks`` where ``EarlyStopping`` is ours (and its
``import pytest`` a copy whose ``mark`` knows Keras's conftest marker). Nothing is patched
globally: the real ``keras.src.callbacks`` module keeps Keras's class.
"""

import builtins
import importlib
import importlib.util
import pathlib
import types

import keras
import pytest
from keras.src import callbacks as keras_src_callbacks

from keras_recipes.callbacks import EarlyStopping

KERAS_TEST_FILE = pathlib.Path(
    importlib.util.find_spec("keras.src.callbacks.early_stopping").origin
).with_name("early_stopping_test.py")
SOURCE = KERAS_TEST_FILE.read_text()

# The test logic imports the class through this line; nothing else is changed.
assert "from keras.src import callbacks\n" in SOURCE


def _proxy(module, **overrides):
    """A module object with `module`'s attributes, some replaced (for this namespace only)."""
    proxy = types.ModuleType(module.__name__)
    proxy.__dict__.update(vars(module))
    proxy.__dict__.update(overrides)
    proxy.__getattr__ = lambda name: getattr(module, name)  # submodules not imported yet
    return proxy


class _Mark:
    """``pytest.mark`` for the exec'd source. ``requires_trainable_backend`` is a marker of
    Keras's own conftest (skip on the numpy/openvino backends); it is not registered in this
    project (``--strict-markers``), so it is rebuilt here with the same meaning."""

    def __getattr__(self, name):
        if name == "requires_trainable_backend":
            return pytest.mark.skipif(
                keras.backend.backend() in ("numpy", "openvino"),
                reason="Keras's requires_trainable_backend",
            )
        return getattr(pytest.mark, name)


_SHIMS = {
    "pytest": _proxy(pytest, mark=_Mark()),
    "keras.src": _proxy(
        importlib.import_module("keras.src"),
        callbacks=_proxy(keras_src_callbacks, EarlyStopping=EarlyStopping),
    ),
}


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = builtins.__import__(name, globals, locals, fromlist, level)  # imports submodules
    return _SHIMS[name] if level == 0 and name in _SHIMS else module


# The source's own import lines resolve through `_import` in this namespace only.
_namespace = {
    "__name__": "keras_early_stopping_test_with_ours",
    "__file__": str(KERAS_TEST_FILE),
    "__builtins__": {**vars(builtins), "__import__": _import},
}
exec(compile(SOURCE, str(KERAS_TEST_FILE), "exec"), _namespace)
assert _namespace["callbacks"].EarlyStopping is EarlyStopping
assert keras_src_callbacks.EarlyStopping is keras.callbacks.EarlyStopping  # not patched globally


class TestKerasEarlyStoppingSuite(_namespace["EarlyStoppingTest"]):
    """Keras 3.15's ``EarlyStoppingTest``, every method, with our class under test.

    No Keras test is expected to fail: none is marked xfail. Deliberate differences of
    behaviour, which Keras's tests do not exercise, each pinned in ``test_early_stopping.py``:

    - a NaN/inf monitored value never becomes ``best`` and stops training by default
      (Keras keeps a NaN first value as best and restores its weights):
      ``test_nan_first_value_never_becomes_best``;
    - with a ``baseline`` never beaten, training stops after ``patience`` epochs even if the
      metric improves each epoch (Keras never stops then):
      ``test_baseline_stops_even_when_improving_every_epoch``;
    - ``mode="auto"`` with an unknown direction raises at ``on_train_begin`` when the
      compiled metrics are built (Keras: at the first epoch end; Keras's test only asserts
      that ``fit`` raises): ``test_auto_mode_unknown_metric_fails_at_train_begin``;
    - the best weights of a Keras model are on-device copies, not NumPy host copies
      (``get_weights``): ``test_restore_in_real_fit_keeps_device_copies_valid``;
    - ``best`` is a Python float (Keras keeps the logged object, e.g. an array of shape
      (1,)): ``test_f1_score_size_one_array_is_monitored_both_sides``.
    """


def test_the_suite_runs_against_our_class():
    """The exec'd tests construct ours; the real Keras module is untouched."""
    assert _namespace["callbacks"].EarlyStopping is EarlyStopping
    assert keras_src_callbacks.EarlyStopping is not EarlyStopping
    names = [n for n in dir(TestKerasEarlyStoppingSuite) if n.startswith("test_")]
    assert len(names) >= 7 and "test_state_reset_across_fit_calls" in names
