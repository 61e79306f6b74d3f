"""AugmentedModel: a model whose fit() mixes each batch inside the training step."""

from __future__ import annotations

import keras

from keras_recipes.backend.train_step import augmented_train_step

__all__ = ["AugmentedModel"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class AugmentedModel(keras.Model):
    """Wraps a model so that ``fit`` augments each ``(x, y)`` batch on the device.

    The augmentation (``MixUp``, ``CutMix``, ``MixUpOrCutMix`` or any layer
    called as ``augmentation(x, y, training=True) -> (x, y)``) runs inside the
    compiled training step of each backend: ``jax.jit`` (its seed state is
    threaded through the step's state, so every step draws anew), a
    ``tf.function`` (also with ``jit_compile=True``) or torch. The data
    pipeline stays plain, and the mixed labels never leave the device.

    ``evaluate``, ``predict`` and ``__call__`` run the wrapped model alone, as
    if it were used directly (``evaluate`` takes the same labels as ``fit``:
    sparse ones are made one-hot by the augmentation's ``dense_targets``);
    ``save`` stores the wrapper and the wrapped model together, and
    ``AugmentedModel.model`` is the wrapped model, to export or save on its own.
    ``sample_weight`` stays with the anchor sample of each pair: mixed sample
    ``i`` (image ``i`` with a share of its partner's) keeps weight ``w_i``, so
    the loss is ``mean_i w_i·loss(y_mix_i, f(x_mix_i))``, not a weight mixed
    like the labels.

    Example:

    >>> import keras, numpy as np
    >>> from keras_recipes.layers import MixUp
    >>> net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
    ...                         keras.layers.Dense(3, activation="softmax")])
    >>> model = AugmentedModel(net, MixUp(alpha=0.4, num_classes=3, seed=0))
    >>> model.compile(optimizer="sgd", loss="categorical_crossentropy")
    >>> x, y = np.ones((6, 8, 8, 1), "float32"), np.array([0, 1, 2, 0, 1, 2])
    >>> _ = model.fit(x, y, batch_size=6, epochs=1, verbose=0)  # sparse y, mixed one-hot
    >>> model.model is net, model.predict(x, verbose=0).shape
    (True, (6, 3))

    Args:
        model: the ``keras.Model`` to train.
        augmentation: a ``keras.layers.Layer`` called on each training batch
            as ``augmentation(x, y, training=True)`` and returning ``(x, y)``
            (or ``augmentation(x, training=True)`` when there are no labels).
        **kwargs: ``keras.Model`` arguments (``name``).

    Call arguments:
        inputs: the wrapped model's inputs.
        training: passed on to the wrapped model.

    Returns:
        The wrapped model's outputs.

    Raises:
        ValueError: if ``model`` is not a ``keras.Model`` or ``augmentation``
            is not a ``keras.layers.Layer``.

    References:
        - Keras guide, customizing what happens in ``fit()``.
          https://keras.io/guides/custom_train_step_in_jax/
    """

    def __init__(self, model, augmentation, **kwargs):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value for argument `model`. Expected a keras.Model. "
                f"Received: model={model!r}"
            )
        if not isinstance(augmentation, keras.layers.Layer):
            raise ValueError(
                "Invalid value for argument `augmentation`. Expected a keras.layers.Layer "
                "called as augmentation(x, y, training=True). "
                f"Received: augmentation={augmentation!r}"
            )
        super().__init__(**kwargs)
        self.model = model
        self.augmentation = augmentation

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def train_step(self, *args):
        return augmented_train_step(self, *args)

    def _targets(self, y):
        # Labels of evaluate() (and of Keras's symbolic build) have not been through the
        # augmentation: give them its target format (sparse -> one-hot), unmixed.
        convert = getattr(self.augmentation, "dense_targets", None)
        return y if convert is None or y is None else convert(y)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x=x, y=self._targets(y), y_pred=y_pred,
                                    sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, self._targets(y), y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "augmentation": keras.saving.serialize_keras_object(self.augmentation),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                      custom_objects=custom_objects)
        augmentation = keras.saving.deserialize_keras_object(config.pop("augmentation"),
                                                             custom_objects=custom_objects)
        return cls(model, augmentation, **config)
