"""VirtualAdversarialModel: fit() adds the virtual adversarial training (VAT) loss."""

from __future__ import annotations

import keras

from keras_recipes.backend.train_step import augmented_train_step
from keras_recipes.regularizers.virtual_adversarial import (
    check_float,
    check_power_iterations,
    virtual_adversarial_loss,
)

__all__ = ["VirtualAdversarialModel"]


@keras.saving.register_keras_serializable(package="keras_recipes")
class VirtualAdversarialModel(keras.Model):
    """Wraps a classifier so that ``fit`` minimizes ``loss + α·KL(p(y|x) ‖ p(y|x + r_adv))``.

    Virtual adversarial training (Miyato et al., 2019): in every training step,
    for each input ``x`` of the batch, ``r_adv`` (L2 norm ``epsilon``) is the
    direction in which the prediction changes most
    (:func:`keras_recipes.regularizers.virtual_adversarial_perturbation`, by
    ``power_iterations`` steps of power iteration from a fresh random vector),
    and ``alpha`` times the mean KL divergence between the clean prediction
    (held constant) and the prediction at ``x + r_adv`` is added to the
    compiled loss. The term needs no labels: it smooths the model around every
    input it sees.

    It runs inside the compiled training step of each backend (``jax.jit``,
    with the random state threaded through the step so every step draws anew;
    a ``tf.function``, also with ``jit_compile=True``; torch). The extra forward
    passes see the batch in training mode but update no state: batch-norm
    moving statistics are those of the clean batch alone, and the perturbed
    passes of one step share one dropout mask (not the clean pass's, as in the
    paper's code). The VAT loss is logged as ``vat_loss`` (the logged ``loss``
    is the total).

    **Semi-supervised learning**: give the unlabelled rows a ``sample_weight``
    of 0 (and any valid label, e.g. 0: it is not read). The compiled loss ignores
    them, the VAT term uses every row of the batch. This keeps one batch, one
    tensor and one data pipeline (arrays, ``tf.data``, generators) on every
    backend; mix labelled and unlabelled rows in each batch in the proportion
    you want. Compile with ``reduction="mean_with_sample_weight"`` in the loss
    to average the supervised term over the labelled rows only (the default
    ``"sum_over_batch_size"`` divides by the whole batch).

    ``evaluate``, ``predict`` and ``__call__`` run the wrapped model alone.
    ``save`` stores wrapper and model; ``VirtualAdversarialModel.model`` is the
    wrapped model. To combine VAT with MixUp or CutMix, wrap an
    :class:`keras_recipes.models.AugmentedModel`:
    ``VirtualAdversarialModel(AugmentedModel(net, MixUp(...)), epsilon=...)``
    mixes each batch first, then adds the VAT term on the mixed images. It also
    works under :class:`keras_recipes.callbacks.UnfreezeSchedule` (the backbone
    is found inside the wrapper).

    Example (semi-supervised: rows 4 to 7 are unlabelled):

    >>> import keras, numpy as np
    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                         keras.layers.Dense(3)])
    >>> model = VirtualAdversarialModel(net, epsilon=1.0, alpha=1.0, from_logits=True, seed=0)
    >>> model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True, reduction="mean_with_sample_weight"))
    >>> x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    >>> y = np.array([0, 1, 2, 0, 0, 0, 0, 0])  # rows 4-7: any label, weight 0
    >>> weight = np.array([1, 1, 1, 1, 0, 0, 0, 0], "float32")
    >>> history = model.fit(x, y, sample_weight=weight, batch_size=8, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['loss', 'vat_loss']
    >>> model.predict(x, verbose=0).shape, model.model is net
    ((8, 3), True)

    Args:
        model: the ``keras.Model`` to train: one input tensor, one output of
            class probabilities (or logits with ``from_logits=True``) on the
            last axis.
        epsilon: the L2 norm of each sample's perturbation (float > 0), in
            the units of the model's inputs (over all non-batch axes): e.g.
            2.0 for 28×28 images in [0, 1], 8.0 for 32×32×3 ZCA-whitened
            images in the paper.
        alpha: the weight of the VAT loss (float >= 0); the paper uses 1.
        xi: the finite-difference step of the power iteration (float > 0), in
            the units of the inputs; raised per sample to the smallest step the
            model's compute dtype resolves (``virtual_adversarial_perturbation``).
            1e-3 suits images in [0, 1].
        power_iterations: power-iteration steps per training step (int >= 1).
        from_logits: whether the model outputs logits.
        seed: int seed of the perturbations' random starts (``None``: a random one).
        **kwargs: ``keras.Model`` arguments (``name``).

    Call arguments:
        inputs: the wrapped model's inputs.
        training: passed on to the wrapped model.

    Returns:
        The wrapped model's outputs.

    Raises:
        ValueError: if ``model`` is not a ``keras.Model``, for a bad
            ``epsilon``, ``alpha``, ``xi`` or ``power_iterations`` (at
            construction), or for inputs that are not one tensor (in ``fit``).

    References:
        - Miyato, Maeda, Koyama, Ishii, "Virtual Adversarial Training: A
          Regularization Method for Supervised and Semi-Supervised Learning",
          IEEE TPAMI 2019. https://arxiv.org/abs/1704.03976
    """

    def __init__(self, model, epsilon, alpha=1.0, xi=1e-6, power_iterations=1,
                 from_logits=False, seed=None, **kwargs):
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Invalid value for argument `model`. Expected a keras.Model. "
                f"Received: model={model!r}"
            )
        epsilon = check_float(epsilon, "epsilon")
        alpha = check_float(alpha, "alpha", allow_zero=True)
        xi = check_float(xi, "xi")
        power_iterations = check_power_iterations(power_iterations)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(
                "Invalid value for argument `seed`. Expected None or an int. "
                f"Received: seed={seed!r}"
            )
        super().__init__(**kwargs)
        self.model = model
        self.epsilon = epsilon
        self.alpha = alpha
        self.xi = xi
        self.power_iterations = power_iterations
        self.from_logits = bool(from_logits)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="vat_seed_generator")
        self.vat_loss_tracker = keras.metrics.Mean(name="vat_loss")
        self._in_test_step = False

    @property
    def augmentation(self):
        """The wrapped ``AugmentedModel``'s augmentation layer, else ``None``."""
        return getattr(self.model, "augmentation", None)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def train_step(self, *args):
        if self.augmentation is not None:  # mix the batch first, as AugmentedModel does
            return augmented_train_step(self, *args)
        return super().train_step(*args)

    def test_step(self, *args):
        self._in_test_step = True
        try:
            return super().test_step(*args)
        finally:
            self._in_test_step = False

    def get_metrics_result(self):
        results = super().get_metrics_result()
        if self._in_test_step:  # evaluate reports the wrapped model's metrics only
            results.pop(self.vat_loss_tracker.name, None)
        return results

    def _targets(self, y):
        # A wrapped AugmentedModel's target format (sparse -> one-hot) for its loss.
        convert = getattr(self.model, "_targets", None)
        return y if convert is None or y is None else convert(y)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=self._targets(y), y_pred=y_pred,
                                    sample_weight=sample_weight, training=training)
        if not training or x is None or y_pred is None:
            return loss
        if len(keras.tree.flatten(x)) != 1 or len(keras.tree.flatten(y_pred)) != 1:
            raise ValueError(
                "VirtualAdversarialModel expects a model with one input tensor and one output. "
                f"Received: inputs with {len(keras.tree.flatten(x))} tensors and outputs with "
                f"{len(keras.tree.flatten(y_pred))}"
            )
        x, y_pred = keras.tree.flatten(x)[0], keras.tree.flatten(y_pred)[0]
        vat = virtual_adversarial_loss(
            self.model, x, y_pred, self.seed_generator, epsilon=self.epsilon, xi=self.xi,
            power_iterations=self.power_iterations, from_logits=self.from_logits, training=True)
        self.vat_loss_tracker.update_state(keras.ops.stop_gradient(vat),
                                           sample_weight=keras.ops.shape(x)[0])
        return loss + keras.ops.cast(self.alpha * vat, loss.dtype)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, self._targets(y), y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.model),
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "xi": self.xi,
            "power_iterations": self.power_iterations,
            "from_logits": self.from_logits,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"),
                                                      custom_objects=custom_objects)
        return cls(model, **config)
