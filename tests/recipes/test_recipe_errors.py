"""The recipes refuse bad input with a one-line message and no run folder (in-process, cheap)."""

import importlib.util
import os
import sys

import pytest

from tests.recipes.smoke_run import RECIPES, ROOT


def _load(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", RECIPES)
def test_missing_data_folder_exits_with_a_message(name, tmp_path, keras_backend, capsys):
    recipe = _load(name)
    missing = tmp_path / "no_such_folder"
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as e:
        recipe.main(["--data", str(missing), "--out", str(out), "--smoke"])
    assert isinstance(e.value.code, str) and e.value.code.startswith("error: cannot load --data")
    assert str(missing) in e.value.code and "does not exist" in e.value.code
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("name", RECIPES)
def test_unknown_option_and_backend_mismatch_exit_2(name, tmp_path, keras_backend, capsys):
    recipe = _load(name)
    with pytest.raises(SystemExit) as e:
        recipe.main(["--no-such-option"])
    assert e.value.code == 2 and "--no-such-option" in capsys.readouterr().err
    other = next(b for b in ("torch", "tensorflow", "jax") if b != keras_backend)
    with pytest.raises(SystemExit) as e:
        recipe.main(["--backend", other, "--out", str(tmp_path)])
    assert e.value.code == 2 and "KERAS_BACKEND" in capsys.readouterr().err


def test_bootstrap_chooses_the_backend_before_keras(monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "recipes"))
    try:
        from _bootstrap import choose_backend
    finally:
        sys.path.remove(str(ROOT / "recipes"))
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert choose_backend(["--smoke", "--backend=jax"]) == "jax"
    assert choose_backend(["--backend", "tensorflow", "--seeds", "0"]) == "tensorflow"
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert choose_backend(["--smoke"]) == "jax"  # no flag: $KERAS_BACKEND
    with pytest.raises(SystemExit) as e:
        choose_backend(["--backend", "mxnet"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "error: --backend must be one of torch, tensorflow, jax. Received: 'mxnet'" in err
