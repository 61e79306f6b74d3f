"""keras_recipes.callbacks: public names are re-exported here explicitly."""

from keras_recipes.callbacks.early_stopping import EarlyStopping
from keras_recipes.callbacks.epoch_scalars import EpochScalars
from keras_recipes.callbacks.evaluate_at import EvaluateAt
from keras_recipes.callbacks.gradient_histogram import GradientHistogram
from keras_recipes.callbacks.monitoring_budget import MonitoringBudget
from keras_recipes.callbacks.plot_gradient_norms import plot_gradient_norms
from keras_recipes.callbacks.run_checkpoint import RunCheckpoint, latest_checkpoint
from keras_recipes.callbacks.stop_on_non_finite import StopOnNonFinite
from keras_recipes.callbacks.unfreeze_schedule import UnfreezeSchedule
from keras_recipes.callbacks.weight_histogram import WeightHistogram

__all__: list[str] = [
    "EarlyStopping",
    "EpochScalars",
    "EvaluateAt",
    "GradientHistogram",
    "MonitoringBudget",
    "RunCheckpoint",
    "StopOnNonFinite",
    "UnfreezeSchedule",
    "WeightHistogram",
    "latest_checkpoint",
    "plot_gradient_norms",
]
