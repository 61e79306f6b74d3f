"""keras_recipes.data: bundled offline data and real downloaders, as tf.data pipelines."""

from keras_recipes.data.digits import load_digits

__all__ = ["load_digits"]
