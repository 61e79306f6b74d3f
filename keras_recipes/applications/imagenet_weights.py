"""Where keras.applications' ImageNet weight files come from, and a clear offline error.

Keras downloads each backbone's ImageNet weights once into
``$KERAS_HOME/models/`` (default ``~/.keras/models/``) and checks their md5.
Offline, Keras fails with a bare ``URL fetch failure``. :func:`imagenet_weights_path`
does the same download (``keras.utils.get_file``, same file name, URL and
hash) and, when the file is neither cached nor downloadable, raises an
``OSError`` that names the file expected in the cache, its URL, and the
``weights=PATH`` alternative.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras

__all__ = [
    "WeightsFile",
    "imagenet_weights_file",
    "imagenet_weights_path",
    "keras_cache_dir",
    "offline_message",
]

_GS = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFF = "https://storage.googleapis.com/keras-applications/"


@dataclass(frozen=True)
class WeightsFile:
    """One ImageNet weights file of keras.applications: name, URL, md5."""

    fname: str
    url: str
    md5: str


def _pair(base: str, top: str, top_md5: str, notop: str, notop_md5: str):
    return (WeightsFile(top, base + top, top_md5), WeightsFile(notop, base + notop, notop_md5))


# (include_top=True, include_top=False) per canonical backbone name. The names,
# URLs and md5 hashes are those of keras.applications (Keras 3.15 sources).
_FILES: dict[str, tuple[WeightsFile, WeightsFile]] = {
    "vgg16": _pair(_GS + "vgg16/", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                   "64373286793e3c8b2b4e3219cbf3544b",
                   "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": _pair(_GS + "vgg19/", "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                   "cbe5617147190e668d6c5d5026f83318",
                   "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
                   "253f8cb515780f3b799900260a226db6"),
    "resnet50": _pair(_GS + "resnet/", "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                      "2cb95161c43110f7111970584f804107",
                      "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": _pair(_GS + "resnet/", "resnet101_weights_tf_dim_ordering_tf_kernels.h5",
                       "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                       "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                       "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": _pair(_GS + "resnet/", "resnet152_weights_tf_dim_ordering_tf_kernels.h5",
                       "100835be76be38e30d865e96f2aaae62",
                       "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
                       "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "mobilenetv3small": _pair(_GS + "mobilenet_v3/",
                              "weights_mobilenet_v3_small_224_1.0_float.h5",
                              "8768d4c2e7dee89b9d02b2d03d65d862",
                              "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                              "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "mobilenetv3large": _pair(_GS + "mobilenet_v3/",
                              "weights_mobilenet_v3_large_224_1.0_float.h5",
                              "59e551e166be033d707958cf9e29a6a7",
                              "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                              "07fb09a5933dd0c8eaafa16978110389"),
    "efficientnetb0": _pair(_EFF, "efficientnetb0.h5", "902e53a9f72be733fc0bcb005b3ebbac",
                            "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
    "efficientnetb1": _pair(_EFF, "efficientnetb1.h5", "1d254153d4ab51201f1646940f018540",
                            "efficientnetb1_notop.h5", "74c4e6b3e1f6a1eea24c589628592432"),
    "efficientnetb2": _pair(_EFF, "efficientnetb2.h5", "b15cce36ff4dcbd00b6dd88e7857a6ad",
                            "efficientnetb2_notop.h5", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "efficientnetb3": _pair(_EFF, "efficientnetb3.h5", "ffd1fdc53d0ce67064dc6a9c7960ede0",
                            "efficientnetb3_notop.h5", "af6d107764bb5b1abb91932881670226"),
}


def keras_cache_dir() -> str:
    """The folder Keras caches downloads in: ``$KERAS_HOME``, else ``~/.keras``.

    Like ``keras.utils.get_file``, a folder that is not writable is replaced
    by ``/tmp/.keras``. Read at call time (Keras itself reads ``KERAS_HOME``
    once, at import).

    Returns:
        An absolute path.
    """
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    if os.path.isdir(base) and not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")  # noqa: S108 (what keras.utils.get_file does)
    return os.path.abspath(base)


def imagenet_weights_file(name: str, include_top: bool) -> WeightsFile | None:
    """The ImageNet weights file of a backbone, or ``None`` if not in the table.

    Example:

    >>> imagenet_weights_file("vgg19", include_top=False).fname
    'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'

    Args:
        name: a backbone name (``"vgg19"``, ``"resnet50"``, ``"efficientnet_b0"``,
            ``"mobilenet_v3_small"``...; case, ``_`` and ``-`` are ignored).
        include_top: the file with the 1000-way classifier, or the one without.

    Returns:
        A :class:`WeightsFile` or ``None``.
    """
    key = name.lower().replace("_", "").replace("-", "")
    pair = _FILES.get(key)
    return None if pair is None else pair[0 if include_top else 1]


def offline_message(backbone: str, file: WeightsFile, cause: object) -> str:
    """The text of the error raised when ImageNet weights cannot be had.

    Args:
        backbone: the backbone's name.
        file: the file that was expected.
        cause: the underlying error (shown in parentheses).

    Returns:
        A message naming the expected file under ``$KERAS_HOME/models/``, its
        URL, and the ``weights=PATH`` / ``weights=None`` alternatives.
    """
    expected = os.path.join(keras_cache_dir(), "models", file.fname)
    return (
        f"ImageNet weights for backbone {backbone!r} are not in the Keras cache and could "
        f"not be downloaded ({cause}).\n"
        f"  Expected file: {expected}\n"
        f"  ($KERAS_HOME/models/{file.fname}; KERAS_HOME defaults to ~/.keras)\n"
        f"  Download it from {file.url}" + (f" (md5 {file.md5})" if file.md5 else "") +
        " on a machine with internet access and copy it there, or pass "
        "weights=PATH (that file, or a Keras 3 '.weights.h5' of the same backbone), or "
        "weights=None for random initialization."
    )


def imagenet_weights_path(backbone: str, file: WeightsFile) -> str:
    """The cached (or freshly downloaded, md5-checked) path of ``file``.

    Args:
        backbone: the backbone's name, for the message.
        file: the file to get.

    Returns:
        The local path of the file.

    Raises:
        OSError: when the file is neither cached nor downloadable; the message
            names the file expected under ``$KERAS_HOME/models/``, its URL and
            the ``weights=PATH`` alternative.
    """
    try:
        return keras.utils.get_file(
            file.fname, file.url, cache_subdir="models", file_hash=file.md5,
            cache_dir=keras_cache_dir(),
        )
    except Exception as err:  # get_file raises a bare Exception on a failed fetch
        raise OSError(offline_message(backbone, file, err)) from err
