"""keras_recipes.applications: public names are re-exported here explicitly."""

from keras_recipes.applications.digits_pretraining import pretrain_on_digits
from keras_recipes.applications.float32_outputs import with_float32_outputs
from keras_recipes.applications.freezing import (
    find_layer,
    freeze,
    is_batch_norm,
    selectable_layers,
    unfreeze,
)
from keras_recipes.applications.imagenet_preprocessing import (
    ImageNetPreprocessing,
    imagenet_preprocessing,
)
from keras_recipes.applications.imagenet_weights import (
    imagenet_weights_file,
    imagenet_weights_path,
    keras_cache_dir,
)
from keras_recipes.applications.transfer_model import (
    backbone_names,
    build_transfer_model,
    preprocessing_mode,
)
from keras_recipes.applications.weights_file import check_weights_file

__all__: list[str] = [
    "ImageNetPreprocessing",
    "backbone_names",
    "build_transfer_model",
    "check_weights_file",
    "find_layer",
    "freeze",
    "imagenet_preprocessing",
    "imagenet_weights_file",
    "imagenet_weights_path",
    "is_batch_norm",
    "keras_cache_dir",
    "preprocessing_mode",
    "pretrain_on_digits",
    "selectable_layers",
    "unfreeze",
    "with_float32_outputs",
]
