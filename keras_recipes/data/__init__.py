"""keras_recipes.data: bundled offline data and real downloaders (tf.data or NumPy batches)."""

from keras_recipes.data.check_images import ImageCheck, check_images
from keras_recipes.data.digits import load_digits
from keras_recipes.data.download import DatasetUnavailableError
from keras_recipes.data.flowers import FLOWERS102_NAMES, oxford_flowers102, tf_flowers
from keras_recipes.data.image_folder import files_to_dataset, image_folder
from keras_recipes.data.pipeline import (
    DatasetSplits,
    FitInputs,
    epoch_batches,
    first_examples,
    fit_inputs,
    limit_splits,
    map_batches,
    to_dataset,
)
from keras_recipes.data.semi_supervised import SemiSupervisedBatches, semi_supervised_batches

__all__ = [
    "FLOWERS102_NAMES",
    "DatasetSplits",
    "DatasetUnavailableError",
    "FitInputs",
    "ImageCheck",
    "SemiSupervisedBatches",
    "check_images",
    "epoch_batches",
    "files_to_dataset",
    "first_examples",
    "fit_inputs",
    "image_folder",
    "limit_splits",
    "load_digits",
    "map_batches",
    "oxford_flowers102",
    "semi_supervised_batches",
    "tf_flowers",
    "to_dataset",
]
