"""The preview picture: `python -m keras_recipes.layers.preview` writes a PNG grid."""

import numpy as np
from PIL import Image

from keras_recipes.layers import preview


def test_preview_writes_a_png_grid_of_mixed_digits(tmp_path, capsys):
    path = tmp_path / "sub" / "mixing.png"
    preview.main(["--output", str(path), "--columns", "2", "--seed", "1"])
    assert f"wrote {path}" in capsys.readouterr().out
    with Image.open(path) as image:
        assert image.format == "PNG"
        # figsize (2.0·columns, 2.3·rows) inches at 100 dpi; rows: original, MixUp, CutMix
        assert image.size == (400, 690)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # not a blank canvas


def test_describe_labels_lists_weights_largest_first():
    row = np.array([0.0, 0.62, 0.0, 0.38, 0.001], "float32")
    assert preview.describe_labels(row) == "0.62·1 + 0.38·3"
    assert preview.describe_labels(row, class_names=list("abcde")) == "0.62·b + 0.38·d"
