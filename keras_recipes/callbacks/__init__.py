"""keras_recipes.callbacks: public names are re-exported here explicitly."""

from keras_recipes.callbacks.early_stopping import EarlyStopping
from keras_recipes.callbacks.gradient_histogram import GradientHistogram
from keras_recipes.callbacks.plot_gradient_norms import plot_gradient_norms
from keras_recipes.callbacks.unfreeze_schedule import UnfreezeSchedule

__all__: list[str] = [
    "EarlyStopping",
    "GradientHistogram",
    "UnfreezeSchedule",
    "plot_gradient_norms",
]
