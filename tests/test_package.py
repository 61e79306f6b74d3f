"""The package's public surface: export lists, registration, version."""

import importlib
import inspect
import re
from pathlib import Path

import keras
import pytest

import keras_recipes

SUBPACKAGES = (
    "layers",
    "callbacks",
    "regularizers",
    "initializers",
    "applications",
    "data",
    "models",
    "backend",
    "distribute",
)

# The Keras object kinds that `keras.saving` serializes: a public class of one of these kinds must
# be registered under the `keras_recipes` package (the "every public class registered";
# a class without `get_config`, such as a data container or an error, cannot be registered).
KERAS_KINDS = (
    keras.layers.Layer,
    keras.callbacks.Callback,
    keras.regularizers.Regularizer,
    keras.initializers.Initializer,
    keras.constraints.Constraint,
    keras.losses.Loss,
    keras.metrics.Metric,
    keras.optimizers.Optimizer,
    keras.optimizers.schedules.LearningRateSchedule,
)


def public_classes():
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"keras_recipes.{sub}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                yield sub, name, obj


def test_every_subpackage_has_an_explicit_export_list():
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"keras_recipes.{sub}")
        exported = module.__all__
        assert len(exported) == len(set(exported)), f"keras_recipes.{sub}.__all__ repeats a name"
        missing = [n for n in exported if not hasattr(module, n)]
        assert not missing, f"keras_recipes.{sub}.__all__ names {missing}, which do not exist"


def test_every_public_keras_object_is_registered():
    kinds_seen = set()
    for sub, name, cls in public_classes():
        if not issubclass(cls, KERAS_KINDS):
            continue
        kinds_seen.update(k.__name__ for k in KERAS_KINDS if issubclass(cls, k))
        expected = f"keras_recipes>{name}"
        assert keras.saving.get_registered_name(cls) == expected, f"{sub}.{name} not registered"
        assert keras.saving.get_registered_object(expected) is cls
    # the check above must have had something to check (it cannot pass on an empty package)
    assert {"Layer", "Callback", "Regularizer", "Initializer"} <= kinds_seen


@pytest.mark.parametrize("sub", ["layers", "regularizers", "initializers"])
def test_registered_objects_deserialize_by_name(sub):
    module = importlib.import_module(f"keras_recipes.{sub}")
    for name in module.__all__:
        cls = getattr(module, name)
        if not (inspect.isclass(cls) and issubclass(cls, KERAS_KINDS)):
            continue
        obj = cls()
        config = keras.saving.serialize_keras_object(obj)
        assert config["registered_name"] == f"keras_recipes>{name}"
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is cls
        assert again.get_config() == obj.get_config()


def test_version_is_pep440_and_in_the_changelog():
    version = keras_recipes.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", version), version
    changelog = (Path(__file__).parents[1] / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog or f"## [{version}]" in changelog
