"""keras_recipes.initializers: public names are re-exported here explicitly."""

from keras_recipes.initializers.gain import gain
from keras_recipes.initializers.he import He
from keras_recipes.initializers.initialization_report import (
    InitializationReport,
    initialization_report,
)
from keras_recipes.initializers.lsuv import lsuv
from keras_recipes.initializers.scaling import compute_fans
from keras_recipes.initializers.xavier import Xavier

__all__: list[str] = [
    "He",
    "InitializationReport",
    "Xavier",
    "compute_fans",
    "gain",
    "initialization_report",
    "lsuv",
]
