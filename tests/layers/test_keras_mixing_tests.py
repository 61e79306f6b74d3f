"""Keras's own MixUp / CutMix tests, run on ours (issue 34).

The installed ``mix_up_test.py`` and ``cut_mix_test.py`` (next to
``keras.layers.MixUp``'s module) are read at test time and executed as they
are; the one change is the module global ``layers`` they call the layer
through: ``layers.MixUp`` / ``layers.CutMix`` are keras_recipes' (every other
name is Keras's). Each TestCase then runs on the current backend.

Deliberate differences, each an expected failure (``strict``: a pass is
reported) with the exception it raises, and pinned by a test below:

- unbatched images are refused at training (mixing needs a batch to draw
  partners from; Keras mixes a lone image by broadcasting accident, or its
  CutMix silently skips it): Keras's ``test_mix_up_basic_functionality`` and
  ``..._channel_first`` start with an unbatched image;
- no ``factor`` for CutMix (Keras draws ``α ~ U(0, factor)``; ours takes
  ``alpha``, ``λ ~ Beta(α, α)`` as in the paper): Keras's CutMix
  ``test_layer`` builds ``CutMix(factor=1.0)``;
- no bounding boxes (classification mixing; Keras's MixUp concatenates the
  boxes of both images, for detection): Keras's two bounding-box tests build
  the layer with ``bounding_box_format``.
"""

import inspect
import re
import types
from pathlib import Path

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_recipes.layers import CutMix, MixUp
from tests.layers.mixing_reference import to_np

_KERAS_DIR = Path(inspect.getsourcefile(type(keras.layers.MixUp()))).parent


def _keras_test_module(filename, ours):
    """The installed Keras test file, executed, with `layers.<Name>` swapped for `ours`."""
    path = _KERAS_DIR / filename
    if not path.is_file():
        pytest.skip(f"this Keras install ({keras.__version__}) ships no {path}",
                    allow_module_level=True)
    module = types.ModuleType(f"keras_installed_{path.stem}")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)  # noqa: S102
    keras_layers = module.layers

    class Swapped(types.ModuleType):
        def __getattr__(self, name):
            return getattr(keras_layers, name)

    swapped = Swapped(keras_layers.__name__)
    for name, cls in ours.items():
        setattr(swapped, name, cls)
    module.layers = swapped
    return module


_MIX_UP = _keras_test_module("mix_up_test.py", {"MixUp": MixUp})
_CUT_MIX = _keras_test_module("cut_mix_test.py", {"CutMix": CutMix})


def _differs(test, raises, match, reason):
    """Keras's `test`, expected to raise `raises` with a message matching `match` (the
    deliberate difference `reason`); another error, or another message, fails."""
    def run(self):
        try:
            return test(self)
        except raises as error:
            assert re.search(match, str(error)), f"not the deliberate difference: {error}"
            raise

    run.__name__ = test.__name__
    return pytest.mark.xfail(raises=raises, strict=True, reason=reason)(run)


_UNBATCHED = ("unbatched images refused at training (a batch is needed to draw partners); "
              "pinned by test_unbatched_images_refused_batched_half_of_keras_test_passes")
_BOXES = ("bounding boxes not offered (classification mixing); pinned by "
          "test_bounding_boxes_are_refused_by_name")
_FACTOR = ("CutMix takes alpha (λ ~ Beta(α, α)), not Keras's factor (α ~ U(0, factor)); "
           "pinned by test_cut_mix_factor_refused_keras_layer_test_passes_with_alpha")


class TestKerasMixUpTestOnOurMixUp(_MIX_UP.MixUpTest):
    """keras/src/layers/preprocessing/image_preprocessing/mix_up_test.py on ours."""

    test_mix_up_basic_functionality = _differs(
        _MIX_UP.MixUpTest.test_mix_up_basic_functionality, ValueError, "batch first",
        _UNBATCHED)
    test_mix_up_basic_functionality_channel_first = _differs(
        _MIX_UP.MixUpTest.test_mix_up_basic_functionality_channel_first, ValueError,
        "batch first", _UNBATCHED)
    test_mix_up_bounding_boxes = _differs(
        _MIX_UP.MixUpTest.test_mix_up_bounding_boxes, ValueError,
        "`bounding_box_format`", _BOXES)
    test_mix_up_tf_data_bounding_boxes = _differs(
        _MIX_UP.MixUpTest.test_mix_up_tf_data_bounding_boxes, ValueError,
        "`bounding_box_format`", _BOXES)


class TestKerasCutMixTestOnOurCutMix(_CUT_MIX.CutMixTest):
    """keras/src/layers/preprocessing/image_preprocessing/cut_mix_test.py on ours."""

    test_layer = _differs(_CUT_MIX.CutMixTest.test_layer, ValueError, "`factor`", _FACTOR)


def test_the_swap_is_the_only_change():
    """The Keras tests call our classes; the rest of their module is Keras's."""
    assert _MIX_UP.layers.MixUp is MixUp and _CUT_MIX.layers.CutMix is CutMix
    assert _MIX_UP.layers.RandomFlip is keras.layers.RandomFlip
    assert _MIX_UP.MixUpTest.__module__ == "keras_installed_mix_up_test"
    names = {n for n in dir(_MIX_UP.MixUpTest) if n.startswith("test")}
    assert len(names) == 7 and len({n for n in dir(_CUT_MIX.CutMixTest)
                                     if n.startswith("test")}) == 4


# ---------------------------------------------------------------- the pins


def test_unbatched_images_refused_batched_half_of_keras_test_passes():
    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 3)).astype("float32")
    layer = MixUp(alpha=1)
    with pytest.raises(ValueError, match="batch first"):
        layer.transform_images(image, transformation={"mix_weight": 1,
                                                      "permutation_order": [0]})
    with pytest.raises(ValueError, match="batch first"):
        layer(image)  # training=True
    np.testing.assert_array_equal(to_np(layer(image, training=False)), image)
    # The batched half of Keras's test, checked against NumPy rather than "not all close".
    images = rng.random((4, 64, 64, 3))
    out = to_np(MixUp(alpha=0.2).transform_images(
        images, transformation={"mix_weight": 0.2, "permutation_order": [1, 0, 2, 3]}))
    want = 0.2 * images + 0.8 * images[[1, 0, 2, 3]]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_bounding_boxes_are_refused_by_name():
    with pytest.raises(ValueError, match="`bounding_box_format`.*Received: "
                                         "bounding_box_format='xyxy'"):
        MixUp(bounding_box_format="xyxy")
    with pytest.raises(NotImplementedError, match="bounding boxes"):
        MixUp().transform_bounding_boxes({"boxes": np.zeros((2, 1, 4))}, None)
    with pytest.raises(ValueError, match="'bounding_boxes'"):
        CutMix()({"images": np.zeros((2, 4, 4, 3), "float32"),
                  "bounding_boxes": {"boxes": np.zeros((2, 1, 4))}})


class TestCutMixFactor(testing.TestCase):
    def test_cut_mix_factor_refused_keras_layer_test_passes_with_alpha(self):
        with pytest.raises(ValueError, match="`factor`.*`alpha`.*Received: factor=1.0"):
            CutMix(factor=1.0, seed=1)
        # Keras's CutMix test_layer, with alpha in place of factor.
        self.run_layer_test(
            CutMix, init_kwargs={"alpha": 1.0, "seed": 1}, input_shape=(8, 3, 4, 3),
            supports_masking=False, expected_output_shape=(8, 3, 4, 3),
            run_training_check=not testing.tensorflow_uses_gpu(),
        )
