"""keras_recipes.regularizers: public names are re-exported here explicitly."""

from keras_recipes.regularizers.model_penalty import add_weight_penalty, remove_weight_penalty
from keras_recipes.regularizers.virtual_adversarial import virtual_adversarial_perturbation
from keras_recipes.regularizers.weight_penalty import WeightPenalty

__all__: list[str] = [
    "WeightPenalty",
    "add_weight_penalty",
    "remove_weight_penalty",
    "virtual_adversarial_perturbation",
]
