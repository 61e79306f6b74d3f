"""keras_recipes.callbacks: public names are re-exported here explicitly."""

from keras_recipes.callbacks.early_stopping import EarlyStopping

__all__: list[str] = [
    "EarlyStopping",
]
