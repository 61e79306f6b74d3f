"""keras_recipes.models: public names are re-exported here explicitly."""

from keras_recipes.models.augmented_model import AugmentedModel
from keras_recipes.models.classification_objective import classification_objective
from keras_recipes.models.virtual_adversarial_model import VirtualAdversarialModel

__all__: list[str] = ["AugmentedModel", "VirtualAdversarialModel", "classification_objective"]
