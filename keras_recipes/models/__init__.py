"""keras_recipes.models: public names are re-exported here explicitly."""

from keras_recipes.models.augmented_model import AugmentedModel

__all__: list[str] = ["AugmentedModel"]
