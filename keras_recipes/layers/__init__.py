"""keras_recipes.layers: public names are re-exported here explicitly."""

from keras_recipes.layers.basic_augmentation import basic_augmentation
from keras_recipes.layers.cut_mix import CutMix
from keras_recipes.layers.mix_up import MixUp
from keras_recipes.layers.mix_up_or_cut_mix import MixUpOrCutMix
from keras_recipes.layers.mixing_layer import MIXING_KINDS, mixing_layer

__all__: list[str] = [
    "MIXING_KINDS",
    "CutMix",
    "MixUp",
    "MixUpOrCutMix",
    "basic_augmentation",
    "mixing_layer",
]
