"""One compiled model reused by many runs, each starting as a fresh model would."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import keras

__all__ = ["CompiledModels"]


class CompiledModels:
    """Compiled models by key, each restarted from given weights for every run.

    A comparison trains many variants of one architecture (initializations, seeds,
    stopping rules). Building and compiling a model per run makes TensorFlow trace and JAX
    compile the training step again each time (seconds per run on a CPU). ``get(key,
    weights)`` returns the key's model, built and compiled once by ``build(key)``, with
    `weights` loaded (``set_weights``) and everything else as at its first ``get``: the
    optimizer's variables (zero moments, iteration 0, the learning rate) and the model's
    other variables (the seed states of random layers such as ``Dropout``). A ``fit`` after
    ``get`` therefore computes what ``fit`` on a freshly built and compiled model with
    these weights computes, while the compiled step is reused.

    Example:

    >>> import keras, numpy as np
    >>> def build(units):
    ...     model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    ...     model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    ...     return model
    >>> models = CompiledModels(build)
    >>> x, y = np.ones((4, 3), "float32"), np.zeros((4, 2), "float32")
    >>> start = build(2).get_weights()
    >>> first = models.get(2, start).fit(x, y, epochs=3, verbose=0).history["loss"]
    >>> again = models.get(2, start).fit(x, y, epochs=3, verbose=0).history["loss"]
    >>> bool(np.allclose(first, again)), len(models)
    (True, 1)

    Args:
        build: ``build(key) -> keras.Model``, a compiled model (``compile`` called).

    Raises:
        ValueError: if `build` is not callable, or (in ``get``) returns a model that is
            not compiled.
    """

    def __init__(self, build: Callable[[Hashable], keras.Model]):
        if not callable(build):
            raise ValueError(
                "Invalid value for argument `build`. Expected a callable key -> compiled "
                f"keras.Model. Received: build={build!r}"
            )
        self._build = build
        self._models: dict[Hashable, tuple[keras.Model, list[Any], list[Any]]] = {}

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._models

    def get(self, key: Hashable, weights: list) -> keras.Model:
        """The model of `key` with `weights` and a fresh optimizer and seed state.

        Args:
            key: which model (passed to ``build`` the first time).
            weights: the initial weights, as ``model.get_weights()`` returns them.

        Returns:
            The compiled ``keras.Model`` (the same object for every call with `key`).
        """
        if key not in self._models:
            model = self._build(key)
            if not isinstance(model, keras.Model) or getattr(model, "optimizer", None) is None:
                raise ValueError(
                    "Invalid value for argument `build`. Expected it to return a compiled "
                    f"keras.Model. Received: {model!r} for key={key!r}"
                )
            # Slots built now, eagerly: TensorFlow would otherwise create them inside the
            # first traced step.
            model.optimizer.build(model.trainable_variables)
            weight_ids = {id(v) for v in model.weights}
            others = [v for v in model.variables if id(v) not in weight_ids]
            self._models[key] = (
                model,
                [(v, keras.ops.convert_to_numpy(v)) for v in model.optimizer.variables],
                [(v, keras.ops.convert_to_numpy(v)) for v in others],
            )
        model, optimizer_state, other_state = self._models[key]
        model.set_weights(weights)
        for variable, value in optimizer_state + other_state:
            variable.assign(value)
        return model
