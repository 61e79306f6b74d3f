"""A picture of MixUp and CutMix on the bundled digits, with the mixed labels.

Run ``python -m keras_recipes.layers.preview`` (any backend) to write a PNG
grid: the first row shows the original images, the next rows what
``MixUp`` and ``CutMix`` make of the same batch, each titled with its label
weights (``0.62·3 + 0.38·7``). For CutMix the weights are the exact fraction of
pixels pasted.

Command line: ``--output PATH`` (default ``docs/mixing_preview.png``),
``--seed N``, ``--columns N``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from keras_recipes.layers.cut_mix import CutMix
from keras_recipes.layers.mix_up import MixUp

__all__ = ["describe_labels", "make_preview"]


def describe_labels(row: np.ndarray, class_names=None, threshold: float = 0.005) -> str:
    """Mixed label weights as text, largest first: ``"0.62·3 + 0.38·7"``.

    Example:

    >>> describe_labels(np.array([0.0, 0.25, 0.75]))
    '0.75·2 + 0.25·1'
    """
    names = class_names if class_names is not None else list(range(len(row)))
    order = np.argsort(-row)
    parts = [f"{row[k]:.2f}·{names[k]}" for k in order if row[k] >= threshold]
    return " + ".join(parts)


def make_preview(output: str | Path = "docs/mixing_preview.png", *, seed: int = 0,
                 columns: int = 6) -> Path:
    """Writes the PNG grid (originals, MixUp, CutMix) and returns its path.

    Args:
        output: path of the PNG file; its folder is created.
        seed: seed of the images chosen and of both layers.
        columns: images per row.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_recipes.data import load_digits

    splits = load_digits(image_size=32, channels=3, format="numpy", seed=seed)
    x, y = splits.train
    pick = np.random.default_rng(seed).choice(len(x), columns, replace=False)
    images, labels = x[pick].astype("uint8"), y[pick]
    k = splits.num_classes
    rows = [("original", images, np.eye(k, dtype="float32")[labels])]
    for name, layer in (("MixUp α=0.4", MixUp(alpha=0.4, num_classes=k, seed=seed)),
                        ("CutMix α=1", CutMix(alpha=1.0, num_classes=k, seed=seed))):
        mixed_x, mixed_y = layer(images, labels, training=True)
        rows.append((name, keras.ops.convert_to_numpy(mixed_x),
                     keras.ops.convert_to_numpy(mixed_y)))

    fig, axes = plt.subplots(len(rows), columns, figsize=(2.0 * columns, 2.3 * len(rows)))
    for r, (name, imgs, targets) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.imshow(np.asarray(imgs[c]).astype("uint8"), interpolation="nearest")
            ax.set_title(describe_labels(targets[c], splits.class_names), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=10)
    fig.suptitle("keras_recipes.layers on the bundled digits: image and label weights",
                 fontsize=10)
    fig.tight_layout()
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="docs/mixing_preview.png", help="PNG path")
    parser.add_argument("--seed", type=int, default=0, help="seed of images and layers")
    parser.add_argument("--columns", type=int, default=6, help="images per row")
    args = parser.parse_args(argv)
    path = make_preview(args.output, seed=args.seed, columns=args.columns)
    print(f"wrote {path} (backend: {keras.backend.backend()})")


if __name__ == "__main__":
    main()
