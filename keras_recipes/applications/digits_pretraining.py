"""A backbone pretrained on bundled digits: an offline stand-in for ImageNet weights."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras

from keras_recipes.applications.float32_outputs import with_float32_outputs
from keras_recipes.applications.transfer_model import build_transfer_model

__all__ = ["pretrain_on_digits"]


def pretrain_on_digits(
    backbone: str = "vgg19",
    *,
    image_size: int = 32,
    classes: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 2,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    validation_split: float = 0.06,
    limit: int = 0,
    seed: int = 0,
    cache_dir: str | os.PathLike = "runs/_cache",
    context=None,
    jit_compile: bool | str = "auto",
    verbose: int = 1,
) -> tuple[str, dict]:
    """Trains `backbone` from scratch on some digit classes and caches its weights.

    Where neither ImageNet weights nor a download are at hand, a transfer-learning
    recipe can still transfer: a backbone trained here on digits 0-4 (a *source
    task*) is fine-tuned on digits 5-9. The backbone's weights go to
    ``cache_dir/<key>.weights.h5`` (the key names every setting, the Keras dtype
    policy included) with a JSON summary beside it; a later call with the same
    settings returns them without training.

    Example:

    >>> import tempfile
    >>> path, info = pretrain_on_digits(  # doctest: +SKIP
    ...     image_size=32, epochs=1, limit=20, cache_dir=tempfile.mkdtemp(), verbose=0)
    >>> info["cached"], path.endswith(".weights.h5")  # doctest: +SKIP
    (False, True)

    Args:
        backbone: a ``build_transfer_model`` backbone name.
        image_size: input side in pixels.
        classes: the digits of the source task.
        epochs, learning_rate, batch_size: Adam training of the whole network.
        validation_split: share of each class held out (val top-1 is reported).
        limit: use at most this many training and validation images (0: all).
        seed: seed of the split, the initial weights and the batch order.
        cache_dir: where the weights are cached.
        context: a ``keras_recipes.distribute`` context (default: one device); only its
            chief process writes the cache.
        jit_compile: passed to ``compile``.
        verbose: 1 progress bars and a line of summary, 0 silent.

    Returns:
        ``(path of the backbone's .weights.h5, info)``; `info` holds ``val_top1``,
        ``epochs``, ``images``, ``seconds``, ``backend``, ``history`` and ``cached``.

    Raises:
        FloatingPointError: if the loss became non-finite (lower the learning rate).
    """
    from keras_recipes.data import epoch_batches, limit_splits, load_digits

    if context is None:
        from keras_recipes.distribute import setup

        context = setup("none")
    source = load_digits(image_size, classes=list(classes), validation_split=validation_split,
                         seed=seed, format="numpy")
    source = limit_splits(source, limit, seed=seed)
    policy = keras.config.dtype_policy().name
    x, y = source.train
    key = (f"{backbone}-digits{''.join(str(c) for c in classes)}-{image_size}px-e{epochs}"
           f"-lr{learning_rate:g}-b{batch_size}-n{len(x)}-seed{seed}-{policy}")
    cache = Path(cache_dir).expanduser()
    path, info_path = cache / f"{key}.weights.h5", cache / f"{key}.json"
    if path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if verbose:
            print(f"source task: reusing cached {backbone} trained on digits "
                  f"{classes[0]}-{classes[-1]} ({path}; val top-1 {info['val_top1']:.3f})")
        return str(path), {**info, "cached": True}
    if verbose:
        print(f"\n== source task: {backbone} from random initialization on digits "
              f"{classes[0]}-{classes[-1]} ({len(x)} images, {epochs} epochs, Adam lr "
              f"{learning_rate:g}); cached for later runs in {cache}")
    keras.utils.set_random_seed(seed)
    with context.scope():
        model = build_transfer_model(backbone, len(classes), input_shape=(image_size,) * 2 + (3,),
                                     weights=None, head="gap", freeze_backbone=False,
                                     classifier_activation=None, name=f"{backbone}_source")
        model = with_float32_outputs(model)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
                      jit_compile=jit_compile)
    train = epoch_batches(x, y, batch_size, seed=seed + 1, epochs=epochs, engine="auto")
    val = epoch_batches(*source.validation, batch_size, seed=None, engine="auto")
    start = time.time()
    hist = context.fit(model, train, epochs=epochs, steps_per_epoch=math.ceil(len(x) / batch_size),
                       validation_data=val, shuffle=False, verbose=verbose)
    seconds = time.time() - start
    if not math.isfinite(float(hist.history["loss"][-1])):
        raise FloatingPointError(
            f"The source task's loss became non-finite; lower `learning_rate` "
            f"(received learning_rate={learning_rate:g}).")
    val_top1 = float(hist.history["val_top1"][-1])
    if not context.is_chief:  # the chief writes the cache; the others keep a private copy
        path = Path(tempfile.mkdtemp(prefix="digits-source-")) / path.name
        model.get_layer("backbone").save_weights(str(path))
        return str(path), {"path": str(path), "val_top1": val_top1, "cached": False}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{key}.{os.getpid()}.weights.h5"
    model.get_layer("backbone").save_weights(str(tmp))
    os.replace(tmp, path)
    info = {"path": str(path), "val_top1": val_top1, "epochs": epochs, "images": len(x),
            "seconds": seconds, "backend": keras.backend.backend(),
            "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()}}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    if verbose:
        print(f"source task: val top-1 {val_top1:.3f} after {seconds:.0f} s; saved {path}")
    return str(path), {**info, "cached": False}
