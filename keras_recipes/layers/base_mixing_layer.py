"""The machinery shared by MixUp, CutMix and MixUpOrCutMix (not a public layer).

One sampled transformation per call (partner permutation, per-sample λ,
integer box) drives the images, every label leaf and the segmentation masks.
The per-pixel formula is ``out = x + c·(x_partner - x)`` for MixUp samples
(``c = 1 - λ``) and ``out = where(box, x_partner, x)`` for CutMix samples, and
each label leaf becomes ``y + w·(y_partner - y)`` with ``w`` the partner's
share: ``1 - λ`` for MixUp, the exact fraction of pixels pasted for CutMix.
With ``c = 0`` or an empty box the sample is returned bit-exact.

The input conventions (positional ``(images, labels)`` or a dict with
``"images"``, ``"labels"``, ``"segmentation_masks"``), the label conversions
and the errors live here once; the three public layers only choose the
arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers

import keras
import numpy as np

from keras_recipes.backend import augmentation as _backend
from keras_recipes.layers.mixing import (
    BETA_UNIFORMS,
    box_fraction,
    box_masks,
    dense_labels,
    is_sparse_labels,
    mix_targets,
    sample_beta,
    sample_box,
    smooth_labels,
)

__all__ = ["BaseMixingLayer"]

_MODES = ("elem", "batch")
_DICT_KEYS = ("images", "labels", "segmentation_masks")

# Column layout of the uniforms drawn per sample (one draw of shape (B, _N_UNIFORMS)).
_U_MIX = slice(0, BETA_UNIFORMS)
_U_CUT = slice(BETA_UNIFORMS, 2 * BETA_UNIFORMS)
_U_PERM = 2 * BETA_UNIFORMS
_U_APPLY = _U_PERM + 1
_U_SWITCH = _U_PERM + 2
_U_Y = _U_PERM + 3
_U_X = _U_PERM + 4
_N_UNIFORMS = _U_PERM + 5


def _image_preprocessing_base() -> type:
    """Keras's ``BaseImagePreprocessingLayer``, the base of its own MixUp and CutMix."""
    # No public name in Keras 3.15: the public RandomFlip's MRO, not private keras.src paths.
    for cls in getattr(getattr(keras.layers, "RandomFlip", None), "__mro__", ()):
        if cls.__name__ == "BaseImagePreprocessingLayer":
            return cls
    raise ImportError(
        "keras_recipes' MixUp, CutMix and MixUpOrCutMix are Keras image-preprocessing "
        "layers: they need Keras's BaseImagePreprocessingLayer, a base class of "
        "keras.layers.RandomFlip (as in Keras 3.15, the version they are tested with). "
        f"Received: Keras {keras.__version__}, where keras.layers.RandomFlip has no such base"
    )


_BASE = _image_preprocessing_base()


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value for argument `{name}`. Expected {expected}. Received: {name}={value!r}"
    )


def check_alpha(name: str, value) -> float:
    """A finite float > 0 (the Beta concentration)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise _invalid(name, "a finite float > 0", value)
    return float(value)


def check_probability(name: str, value) -> float:
    """A float in [0, 1]."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= value <= 1.0):
        raise _invalid(name, "a float in [0, 1]", value)
    return float(value)


def check_mode(value) -> str:
    if value not in _MODES:
        raise _invalid("mode", 'one of "elem", "batch"', value)
    return value


def check_num_classes(value):
    """None, an int >= 2, or a list/tuple/dict of such ints (one per label leaf)."""
    def ok(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 2

    if value is None or ok(value):
        return None if value is None else int(value)
    if isinstance(value, (list, tuple)) and value and all(ok(v) for v in value):
        return [int(v) for v in value]
    if isinstance(value, dict) and value and all(ok(v) for v in value.values()):
        return {str(k): int(v) for k, v in value.items()}
    raise _invalid("num_classes", "None, an int >= 2, or a list/dict of ints >= 2", value)


def check_label_smoothing(value) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= value <= 1.0):
        raise _invalid("label_smoothing", "a float in [0, 1]", value)
    return float(value)


def check_area_range(value):
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise _invalid("area_range", "None or a pair (lo, hi) with 0 <= lo <= hi <= 1",
                       value) from None
    if not (0.0 <= lo <= hi <= 1.0) or hi == 0.0:
        raise _invalid("area_range", "None or a pair (lo, hi) with 0 <= lo <= hi <= 1, hi > 0",
                       value)
    return (lo, hi)


def check_seed(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise _invalid("seed", "None or an int", value)
    return None if value is None else int(value)


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _is_float(dtype: str) -> bool:
    return "float" in dtype


class BaseMixingLayer(_BASE):
    """Base of the mixing layers; subclasses set the mixing arguments.

    A Keras image-preprocessing layer (``BaseImagePreprocessingLayer``, the
    base of ``keras.layers.MixUp``): it offers ``get_random_transformation``,
    ``transform_images``, ``transform_labels`` and
    ``transform_segmentation_masks``, so it composes where Keras's own layers
    do (``keras.layers.Pipeline``, ``tf.data``). ``call`` runs the same draw and
    the same formulas as one fused kernel.

    The transformation (a dict) holds ``"permutation_order"`` (the partner of
    each sample, int32 ``(B,)``), ``"mix_weight"`` (the label weight of the
    sample itself, as in Keras), ``"partner_weight"`` (``1 - mix_weight``, kept
    exact), ``"blend_weight"`` (the partner's share of each MixUp blend, absent
    without MixUp) and ``"box_rows"`` / ``"box_cols"`` (bool ``(B, H)`` /
    ``(B, W)`` masks of the CutMix box, absent without CutMix); per-sample
    entries have one row in ``mode="batch"``. The ``transform_*`` methods also
    take Keras's MixUp transformation (``mix_weight``, ``permutation_order``)
    and CutMix transformation (with ``batch_masks``).

    Args:
        mixup_alpha: MixUp's ``α`` (None: no MixUp samples).
        cutmix_alpha: CutMix's ``α`` (None: no CutMix samples).
        switch_prob: probability that a mixed sample uses CutMix.
        prob: probability that a sample (``mode="elem"``) or the batch
            (``mode="batch"``) is mixed at all.
        mode: ``"elem"`` (λ, partner and box per sample) or ``"batch"``.
        num_classes: classes of sparse labels.
        label_smoothing: ``ε`` of ``(1 - ε)·y + ε/K``, applied before mixing.
        area_range: ``(lo, hi)`` bounds of the CutMix box area, or None.
        seed: int seed of the layer's ``SeedGenerator``.
        data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    # No Keras `factor`: the mixing laws are set by the subclasses' own arguments.
    _USE_BASE_FACTOR = False

    def __init__(self, *, mixup_alpha, cutmix_alpha, switch_prob, prob, mode, num_classes,
                 label_smoothing, area_range, seed, data_format, **kwargs):
        # Labels stay float32 under mixed precision: no automatic input casting.
        kwargs.setdefault("autocast", False)
        if kwargs.get("bounding_box_format") is not None:
            raise _invalid(
                "bounding_box_format",
                "None: these layers mix classification labels, not the boxes of two "
                "images (keras.layers.MixUp concatenates boxes for detection)",
                kwargs["bounding_box_format"])
        kwargs.pop("bounding_box_format", None)
        if "factor" in kwargs:
            raise _invalid(
                "factor",
                "no `factor`: keras.layers.CutMix draws its Beta concentration from "
                "U(0, factor); these layers take `alpha` (λ ~ Beta(α, α), the papers' law)",
                kwargs["factor"])
        if data_format is not None and data_format not in ("channels_last", "channels_first"):
            raise _invalid("data_format", '"channels_last", "channels_first" or None',
                           data_format)
        super().__init__(data_format=data_format, **kwargs)
        self._mixup_alpha = mixup_alpha
        self._cutmix_alpha = cutmix_alpha
        self._switch_prob = switch_prob
        self._prob = prob
        self.mode = check_mode(mode)
        self.num_classes = check_num_classes(num_classes)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self._area_range = area_range
        self.seed = check_seed(seed)
        self.data_format = data_format or keras.config.image_data_format()
        self.generator = keras.random.SeedGenerator(self.seed)
        self.built = True
        # Not tracked by Keras: the TF-side generator for tf.data under torch / JAX.
        self.__dict__["_tf_graph_random"] = None

    # ------------------------------------------------------------------ API
    @property
    def _has_mix(self) -> bool:
        return self._mixup_alpha is not None and self._switch_prob < 1.0

    @property
    def _has_cut(self) -> bool:
        return self._cutmix_alpha is not None and self._switch_prob > 0.0

    def __call__(self, *args, **kwargs):
        first = args[0] if args else kwargs.get("images")
        leaves = keras.tree.flatten(first) if first is not None else []
        if leaves and _backend.in_foreign_tf_graph(leaves[0]):
            return self._call_in_tf_graph(*args, **kwargs)
        # Not DataLayer.__call__: it takes one input and, in a tf.data graph, casts every
        # input to the compute dtype (uint8 images, integer labels); the branch above
        # handles tf.data under torch / JAX, and Layer.__call__ the rest.
        return keras.layers.Layer.__call__(self, *args, **kwargs)

    def call(self, images, labels=None, training=True):
        return self._apply(images, labels, training, keras.ops, self._draw_uniforms,
                           self._compiled_kernel, self._seeded_kernel)

    def dense_targets(self, labels):
        """The labels as float32 targets, before mixing and smoothing.

        Class-id leaves become one-hot (``num_classes``; see ``is_sparse_labels``),
        the others are cast to float32; the structure is kept. ``AugmentedModel`` applies this
        to the labels of ``evaluate`` so that one loss serves both steps.
        """
        if labels is None:
            return None
        leaves = keras.tree.flatten(labels)
        counts = self._num_classes_per_leaf(labels, len(leaves))
        dense = [dense_labels(leaf, k) for leaf, k in zip(leaves, counts, strict=True)]
        return keras.tree.pack_sequence_as(labels, dense)

    # ------------------------------------- the image-preprocessing layer API
    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one transformation for the batch `data` (the dict described above).

        Args:
            data: a batch of images, a dict with ``"images"``, or an
                ``(images, labels)`` pair.
            training: when False, returns None (nothing to apply).
            seed: None (the layer's own generator, advanced), or an int /
                ``keras.random.SeedGenerator`` for this draw.

        Returns:
            The transformation dict, or None when ``training`` is False.
        """
        if not training:
            return None
        x, _, masks, _ = self._parse(data, None)
        self._validate(x, None, masks)
        ops = self._ops_for(x)
        batch = ops.shape(x)[0]
        if _backend.in_foreign_tf_graph(x):  # tf.data under torch / JAX
            u = self._tf_graph_uniform(x, batch, seed)
        elif seed is not None:
            u = keras.random.uniform((batch, _N_UNIFORMS), dtype="float32", seed=seed)
        else:
            u = self._draw_uniforms(x, batch)
        h_axis, w_axis = self._spatial_axes()
        transformation = _transformation(self._spec(()), u, self._params(),
                                         int(x.shape[h_axis]), int(x.shape[w_axis]), ops)
        transformation["mix_weight"] = 1.0 - transformation["partner_weight"]
        return transformation

    def transform_images(self, images, transformation=None, training=True):
        """Applies `transformation` to a batch of images (unchanged when not training).

        Float images come back in the compute dtype, integer ones in theirs
        (rounded and clipped after a blend).
        """
        return self._transform_pixels(images, transformation, training, masks=False)

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        """Applies `transformation` to segmentation masks (float masks keep their dtype)."""
        return self._transform_pixels(segmentation_masks, transformation, training,
                                      masks=True)

    def transform_labels(self, labels, transformation, training=True):
        """Mixes labels (a tensor, or a tuple / dict of tensors) by `transformation`.

        Sparse leaves become one-hot (``num_classes``), targets are smoothed
        (``label_smoothing``), then ``y + w·(y_partner - y)`` with ``w`` the
        partner's weight. Returns float32 labels, or `labels` unchanged when
        not training.
        """
        if not training or transformation is None:
            return labels
        ops = self._ops_for(keras.tree.flatten(labels)[0])
        perm, weight = self._label_terms(transformation, ops)
        leaves = [ops.convert_to_tensor(leaf) for leaf in keras.tree.flatten(labels)]
        out = []
        for leaf, k in zip(leaves, self._num_classes_per_leaf(labels, len(leaves)),
                           strict=True):
            self._check_label_leaf(leaf, k, None)
            target = smooth_labels(dense_labels(leaf, k, ops), self.label_smoothing, ops)
            out.append(mix_targets(target, perm, weight, ops))
        return keras.tree.pack_sequence_as(labels, out)

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        """Not offered: raises NotImplementedError (classification mixing, no boxes)."""
        raise NotImplementedError(
            f"{type(self).__name__} mixes classification labels; it does not transform "
            "bounding boxes (keras.layers.MixUp concatenates the boxes of both images, for "
            f"detection). Received: bounding_boxes of type {type(bounding_boxes).__name__}"
        )

    def _transform_pixels(self, x, transformation, training, masks):
        if not training or transformation is None:
            return x
        ops = self._ops_for(x)
        x = ops.convert_to_tensor(x)
        shape = tuple(x.shape)
        if len(shape) != 4 and not (masks and len(shape) == 3):
            self._validate(x, None, None)  # the errors of call (rank-3 images: batch first)
        perm = ops.convert_to_tensor(transformation["permutation_order"], "int32")
        coef, inside = self._pixel_terms(transformation, ops)
        dtype = _dtype(x)
        if not masks:
            float_dtype = self.compute_dtype
        else:
            float_dtype = dtype if _is_float(dtype) else None
            if coef is not None and not _is_float(dtype):
                raise ValueError(
                    "Invalid value for argument `segmentation_masks`. MixUp blends pixels, "
                    "which integer class masks cannot hold: use CutMix, or pass one-hot float "
                    f"masks. Received: segmentation_masks of dtype {dtype}"
                )
        box = None
        if inside is not None:
            box = inside if not isinstance(inside, tuple) else _box_mask(
                *inside, len(shape), self.data_format, ops)
        return _mix_pixels(x, perm, coef, box, float_dtype, ops)

    @staticmethod
    def _pixel_terms(transformation, ops):
        """(blend weight or None, box mask / (rows, cols) or None) of a transformation."""
        t = transformation
        if "blend_weight" in t or "box_rows" in t:  # ours
            coef = t.get("blend_weight")
            box = (t["box_rows"], t["box_cols"]) if "box_rows" in t else None
        elif "batch_masks" in t:  # keras.layers.CutMix's: a full (B, H, W, C) mask
            coef, box = None, ops.convert_to_tensor(t["batch_masks"], "bool")
        else:  # keras.layers.MixUp's: mix_weight is the sample's own weight
            coef = 1.0 - ops.convert_to_tensor(t["mix_weight"], "float32")
            box = None
        if coef is not None:
            coef = ops.reshape(ops.convert_to_tensor(coef, "float32"), (-1,))
        return coef, box

    @staticmethod
    def _label_terms(transformation, ops):
        perm = ops.convert_to_tensor(transformation["permutation_order"], "int32")
        if "partner_weight" in transformation:
            weight = transformation["partner_weight"]
        else:
            weight = 1.0 - ops.convert_to_tensor(transformation["mix_weight"], "float32")
        return perm, ops.reshape(ops.convert_to_tensor(weight, "float32"), (-1,))

    def _ops_for(self, x):
        return _backend.tf_graph_ops() if _backend.in_foreign_tf_graph(x) else (
            _backend.kernel_ops())

    def _tf_graph_uniform(self, x, batch, seed=None):
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise _invalid("seed", "None or an int inside a tf.data graph under "
                               f"{keras.backend.backend()}", seed)
            return _backend.TFGraphRandom(int(seed)).uniform((batch, _N_UNIFORMS))
        if self._tf_graph_random is None:
            self.__dict__["_tf_graph_random"] = _backend.TFGraphRandom(self.seed)
        return self._tf_graph_random.uniform((batch, _N_UNIFORMS))

    def compute_output_spec(self, images, labels=None, training=True):
        x, y, masks, as_dict = self._parse(images, labels)

        def spec(t, dtype=None):
            return keras.KerasTensor(t.shape, dtype=dtype or t.dtype)

        if training is False:
            out = (spec(x), None if y is None else keras.tree.map_structure(spec, y),
                   None if masks is None else spec(masks))
            return self._pack(out, as_dict, images)
        self._validate(x, y, masks)
        x_dtype = self.compute_dtype if _is_float(_dtype(x)) else _dtype(x)
        leaves = keras.tree.flatten(y) if y is not None else []
        out_leaves = []
        for leaf, k in zip(leaves, self._num_classes_per_leaf(y, len(leaves)), strict=True):
            shape = tuple(leaf.shape)
            if is_sparse_labels(shape, leaf.dtype, k):
                shape = (shape[0], k)
            out_leaves.append(keras.KerasTensor(shape, dtype="float32"))
        out_y = None if y is None else keras.tree.pack_sequence_as(y, out_leaves)
        out = (spec(x, x_dtype), out_y, None if masks is None else spec(masks))
        return self._pack(out, as_dict, images)

    def compute_output_shape(self, input_shape):
        """The images' shape: mixing keeps it (``keras.layers.MixUp``'s rule)."""
        return input_shape

    # ------------------------------------------------------- input handling
    @staticmethod
    def _parse(images, labels):
        if isinstance(images, dict):
            unknown = sorted(set(images) - set(_DICT_KEYS))
            if unknown or "images" not in images:
                raise ValueError(
                    "Invalid value for argument `images`. Expected a tensor, or a dict with "
                    f"key 'images' and optional keys 'labels', 'segmentation_masks'. "
                    f"Received: a dict with keys {sorted(images)}"
                )
            if labels is not None:
                raise ValueError(
                    "Invalid value for argument `labels`. Pass the labels inside the dict "
                    "(key 'labels') when `images` is a dict. Received: labels given twice"
                )
            return images["images"], images.get("labels"), images.get("segmentation_masks"), True
        if isinstance(images, (tuple, list)):  # one `(images, labels)` argument
            if len(images) != 2 or labels is not None:
                raise ValueError(
                    "Invalid value for argument `images`. Expected a tensor, a dict, or one "
                    "`(images, labels)` pair (then no `labels` argument). Received: a "
                    f"{type(images).__name__} of length {len(images)}"
                    + (" and labels" if labels is not None else "")
                )
            return images[0], images[1], None, False
        return images, labels, None, False

    @staticmethod
    def _pack(out, as_dict, original):
        x, y, masks = out
        if as_dict:
            result = {"images": x}
            if "labels" in original:
                result["labels"] = y
            if "segmentation_masks" in original:
                result["segmentation_masks"] = masks
            return result
        return x if y is None else (x, y)

    def _spatial_axes(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def _num_classes_per_leaf(self, labels, n):
        nc = self.num_classes
        if nc is None or isinstance(nc, int):
            return [nc] * n
        if isinstance(nc, dict):
            if not isinstance(labels, dict) or sorted(labels) != sorted(nc):
                raise ValueError(
                    "Invalid value for argument `num_classes`. A dict of class counts needs "
                    "labels that are a dict with the same keys. Received: "
                    f"num_classes={nc!r} for labels of type {type(labels).__name__}"
                )
            return [nc[k] for k in sorted(nc)]
        if len(nc) != n:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected one class count per "
                f"label tensor ({n}). Received: num_classes={nc!r}"
            )
        return list(nc)

    def _validate(self, images, labels, masks):
        shape = tuple(images.shape)
        if len(shape) == 3:
            raise ValueError(
                "Invalid value for argument `images`. Expected a batch of images of rank 4; "
                "mixing needs a batch to draw partners from: batch first (`images[None]`, or "
                f"`ds.batch(n).map(layer)`). Received: images of shape {shape} (rank 3)"
            )
        if len(shape) != 4:
            raise ValueError(
                "Invalid value for argument `images`. Expected a batch of images of rank 4 "
                f"({self.data_format}). Received: images of shape {shape}"
            )
        h_axis, w_axis = self._spatial_axes()
        height, width = shape[h_axis], shape[w_axis]
        if not isinstance(height, int) or not isinstance(width, int):
            raise ValueError(
                "Invalid value for argument `images`. Expected static height and width. "
                f"Received: images of shape {shape} ({self.data_format})"
            )
        batch = shape[0]
        leaves = keras.tree.flatten(labels) if labels is not None else []
        counts = self._num_classes_per_leaf(labels, len(leaves))
        for leaf, k in zip(leaves, counts, strict=True):
            self._check_label_leaf(leaf, k, batch)
        if masks is not None:
            mshape = tuple(masks.shape)
            spatial = (mshape[1], mshape[2]) if (
                len(mshape) == 3 or self.data_format == "channels_last") else (mshape[2],
                                                                               mshape[3])
            if len(mshape) not in (3, 4) or spatial != (height, width):
                raise ValueError(
                    "Invalid value for argument `segmentation_masks`. Expected shape "
                    f"(B, {height}, {width}) or rank 4 in {self.data_format} matching the "
                    f"images. Received: segmentation_masks of shape {mshape}"
                )
            if not _is_float(_dtype(masks)) and self._has_mix:
                raise ValueError(
                    "Invalid value for argument `segmentation_masks`. MixUp blends pixels, "
                    "which integer class masks cannot hold: use CutMix, or pass one-hot float "
                    f"masks. Received: segmentation_masks of dtype {_dtype(masks)}"
                )

    @staticmethod
    def _check_label_leaf(leaf, k, batch):
        lshape = tuple(leaf.shape)
        if len(lshape) == 0:
            raise ValueError(
                "Invalid value for argument `labels`. Expected one label per image "
                f"(rank >= 1). Received: labels of shape {lshape}"
            )
        if isinstance(batch, int) and isinstance(lshape[0], int) and lshape[0] != batch:
            raise ValueError(
                "Invalid value for argument `labels`. Expected as many labels as images "
                f"({batch}). Received: labels of shape {lshape}"
            )
        if is_sparse_labels(lshape, leaf.dtype, k):
            if k is None:
                raise ValueError(
                    "Invalid value for argument `num_classes`. Sparse integer labels of "
                    f"shape {lshape} need the number of classes to become one-hot targets "
                    "(pass `num_classes=K`, or one-hot labels). Received: num_classes=None"
                )
        elif k is not None and len(lshape) >= 2 and lshape[-1] not in (None, k):
            raise ValueError(
                f"Invalid value for argument `labels`. Expected one-hot labels with "
                f"num_classes={k} columns. Received: labels of shape {lshape}"
            )

    # ------------------------------------------------------------ the work
    def _draw_uniforms(self, images, batch_size):
        if _backend.seed_is_frozen(images, self.generator.state.value):
            raise ValueError(
                f"{type(self).__name__} is traced by `jax.jit` with its seed state baked in "
                "as a constant, so every call would draw the same λ, partners and boxes. "
                "Thread the state through the jitted function: `out, state = "
                "layer.stateless_call([], state, images, labels, training=True)` with "
                "`state = [v.value for v in layer.non_trainable_variables]`, or train with "
                "`keras_recipes.models.AugmentedModel`, whose step does this."
            )
        return _backend.uniform((batch_size, _N_UNIFORMS), self.generator)

    def _spec(self, classes) -> _MixSpec:
        return _MixSpec(self._has_mix, self._has_cut, self.mode, self._prob < 1.0,
                        self._area_range is not None, self.data_format, self.compute_dtype,
                        classes)

    def _compiled_kernel(self, classes):
        return _compiled_kernel(self._spec(classes))

    def _seeded_kernel(self, x, classes):
        """Draw + kernel + seed update as one compiled call, where the backend has one
        for eager inputs (JAX); None otherwise."""
        if not _backend.fuses_draw(x, self.generator.state.value):
            return None
        return _seeded_kernel(self._spec(classes))

    def _params(self) -> np.ndarray:
        """The numbers of the transformation, passed as a tensor (no recompile per value)."""
        lo, hi = self._area_range or (0.0, 1.0)
        return np.array([self._mixup_alpha or 1.0, self._cutmix_alpha or 1.0,
                         self._switch_prob, self._prob, lo, hi, self.label_smoothing], "float32")

    def _call_in_tf_graph(self, images, labels=None, training=True):
        ops = _backend.tf_graph_ops()
        return self._apply(images, labels, training, ops, self._tf_graph_uniform,
                           lambda classes: functools.partial(_kernel, self._spec(classes),
                                                             ops=ops))

    def _apply(self, images, labels, training, ops, draw, kernel, seeded=None):
        x, y, masks, as_dict = self._parse(images, labels)
        if not training:  # inference: the inputs as they came (also unbatched images)
            return images if as_dict else (x if y is None else (x, y))
        self._validate(x, y, masks)
        leaves = keras.tree.flatten(y) if y is not None else []
        classes = tuple(self._num_classes_per_leaf(y, len(leaves)))
        run = None if seeded is None else seeded(x, classes)
        if run is not None:  # eager JAX: one jitted call, no op-by-op dispatch of the draw
            state = self.generator.state
            (x_out, leaves_out, masks_out), new_state = run(state.value, x, leaves, masks,
                                                            self._params())
            state.assign(new_state)
        else:
            u = draw(x, ops.shape(x)[0])
            x_out, leaves_out, masks_out = kernel(classes)(x, leaves, masks, u, self._params())
        y_out = None if y is None else keras.tree.pack_sequence_as(y, list(leaves_out))
        return self._pack((x_out, y_out, masks_out), as_dict, images)


@dataclasses.dataclass(frozen=True)
class _MixSpec:
    """What the kernel's graph depends on besides tensor shapes (hashable: one compile each)."""

    has_mix: bool  # some samples are blended (MixUp)
    has_cut: bool  # some samples get a box pasted (CutMix)
    mode: str
    use_prob: bool  # prob < 1
    inside: bool  # area_range given: boxes inside the image
    data_format: str
    compute_dtype: str
    classes: tuple  # per label leaf: num_classes of sparse labels (None: dense labels)


@functools.lru_cache(maxsize=64)
def _compiled_kernel(spec: _MixSpec):
    return _backend.compile_kernel(functools.partial(_kernel, spec, ops=_backend.kernel_ops()))


@functools.lru_cache(maxsize=64)
def _seeded_kernel(spec: _MixSpec):
    def fn(images, leaves, masks, params, u):
        return _kernel(spec, images, leaves, masks, u, params, ops=_backend.kernel_ops())

    return _backend.compile_seeded_kernel(fn, _N_UNIFORMS)


def _transformation(spec: _MixSpec, u, params, height: int, width: int, ops) -> dict:
    """Pure: uniforms ``u`` (B, _N_UNIFORMS) and ``params`` -> the transformation dict.

    ``params = [mixup_alpha, cutmix_alpha, switch_prob, prob, area_lo, area_hi,
    label_smoothing]``: numbers, not graph structure, so that one compiled
    kernel serves every value.
    """
    params = ops.convert_to_tensor(params, "float32")
    mixup_alpha, cutmix_alpha, switch_prob, prob, area_lo, area_hi = (
        params[i] for i in range(6))
    src = u[:1] if spec.mode == "batch" else u  # one λ/box per batch, or per sample
    perm = ops.argsort(u[:, _U_PERM], axis=-1)

    apply = ops.less(src[:, _U_APPLY], prob) if spec.use_prob else None
    if spec.has_mix and spec.has_cut:
        cut = ops.less(src[:, _U_SWITCH], switch_prob)
        use_mix = ops.logical_not(cut)
    else:
        cut = use_mix = None
    if apply is not None:
        cut = apply if cut is None else ops.logical_and(cut, apply)
        use_mix = apply if use_mix is None else ops.logical_and(use_mix, apply)

    # 1 - λ of MixUp and of CutMix (one vectorized Beta draw when both are used).
    if spec.has_mix and spec.has_cut:
        _, rest = sample_beta(ops.reshape(src[:, : 2 * BETA_UNIFORMS], (-1, 2, BETA_UNIFORMS)),
                              params[:2], ops)
        rest_mix, rest_cut = rest[:, 0], rest[:, 1]
    elif spec.has_mix:
        rest_mix = sample_beta(src[:, _U_MIX], mixup_alpha, ops)[1]
    else:
        rest_cut = sample_beta(src[:, _U_CUT], cutmix_alpha, ops)[1]

    out = {"permutation_order": perm}
    weight = None  # label weight of the partner, per sample
    if spec.has_mix:
        coef = rest_mix  # MixUp partner weight 1 - λ, per sample
        if use_mix is not None:
            coef = ops.where(use_mix, coef, 0.0)
        out["blend_weight"] = weight = coef
    if spec.has_cut:
        area = rest_cut
        if spec.inside:
            area = ops.clip(area, area_lo, area_hi)
        if cut is not None:
            area = ops.where(cut, area, 0.0)
        box = sample_box(area, src[:, _U_Y], src[:, _U_X], height, width,
                         inside=spec.inside, ops=ops)
        fraction = box_fraction(*box, height, width, ops=ops)
        weight = fraction if weight is None else weight + fraction
        out["box_rows"], out["box_cols"] = box_masks(*box, height, width, ops=ops)
    out["partner_weight"] = weight
    return out


def _kernel(spec: _MixSpec, images, leaves, masks, u, params, *, ops):
    """Pure: (images, label leaves, masks, uniforms, params) -> the mixed three.

    The draw of ``_transformation`` applied as ``transform_images``,
    ``transform_labels`` and ``transform_segmentation_masks`` do, in one graph.
    """
    h_axis, w_axis = (1, 2) if spec.data_format == "channels_last" else (2, 3)
    height, width = int(images.shape[h_axis]), int(images.shape[w_axis])
    params = ops.convert_to_tensor(params, "float32")
    t = _transformation(spec, u, params, height, width, ops)
    smoothing = params[6]
    perm, coef = t["permutation_order"], t.get("blend_weight")
    rows_cols = (t["box_rows"], t["box_cols"]) if spec.has_cut else None

    def box(rank):
        return None if rows_cols is None else _box_mask(*rows_cols, rank, spec.data_format, ops)

    x_out = _mix_pixels(images, perm, coef, box(len(images.shape)), spec.compute_dtype, ops)
    leaves_out = []
    for leaf, k in zip(leaves, spec.classes, strict=True):
        target = smooth_labels(dense_labels(leaf, k, ops), smoothing, ops)
        leaves_out.append(mix_targets(target, perm, t["partner_weight"], ops))
    masks_out = None
    if masks is not None:
        mdtype = _dtype(masks)
        masks_out = _mix_pixels(masks, perm, coef, box(len(masks.shape)),
                                mdtype if _is_float(mdtype) else None, ops)
    return x_out, leaves_out, masks_out


def _box_mask(rows, cols, rank: int, data_format: str, ops):
    """The (broadcastable) pixel mask of the boxes from their row / column masks."""
    if rank == 3:
        return ops.logical_and(rows[:, :, None], cols[:, None, :])
    if data_format == "channels_last":
        return ops.logical_and(rows[:, :, None, None], cols[:, None, :, None])
    return ops.logical_and(rows[:, None, :, None], cols[:, None, None, :])


def _mix_pixels(x, perm, coef, inside, float_dtype, ops):
    """MixUp blend (partner share `coef`) and/or CutMix paste (mask `inside`) of `x`."""
    dtype = _dtype(x)
    integer = not _is_float(dtype)
    rank = len(x.shape)
    if coef is None:  # CutMix only: an exact paste, in the input dtype for integers
        if not integer:
            x = ops.cast(x, float_dtype)
        return ops.where(inside, ops.take(x, perm, axis=0), x)
    work = "float32" if integer else float_dtype
    x = ops.cast(x, work)
    partner = ops.take(x, perm, axis=0)
    c = ops.reshape(ops.cast(coef, work), (-1,) + (1,) * (rank - 1))
    out = ops.blend(x, partner, c)
    if inside is not None:
        out = ops.where(inside, partner, out)
    if integer:
        info = np.iinfo(dtype)
        out = ops.cast(ops.clip(ops.round(out), float(info.min), float(info.max)), dtype)
    return out
