"""keras_recipes.layers: public names are re-exported here explicitly."""

from keras_recipes.layers.cut_mix import CutMix
from keras_recipes.layers.mix_up import MixUp
from keras_recipes.layers.mix_up_or_cut_mix import MixUpOrCutMix

__all__: list[str] = ["CutMix", "MixUp", "MixUpOrCutMix"]
