"""check_images: which image files decode, checked in parallel before training starts."""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path
from typing import NamedTuple

__all__ = ["ImageCheck", "check_images"]


class ImageCheck(NamedTuple):
    """What :func:`check_images` returns."""

    good: list[int]  # indices of the paths that decode
    bad: list[tuple[str, str]]  # (path, why it does not decode), in the paths' order


def _decode_tensorflow(path: str) -> None:
    import tensorflow as tf

    tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _decode_pil(path: str) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.convert("RGB").load()


_DECODERS = {"tensorflow": _decode_tensorflow, "pil": _decode_pil}


def _why(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    reason = text[0] if text else type(error).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


def check_images(paths, *, decoder: str = "tensorflow", workers: int | None = None) -> ImageCheck:
    """Decodes every image once, in parallel threads, and says which ones fail.

    A truncated JPEG, a zero-byte file or a text file named ``.png`` otherwise stops a
    ``tf.data`` pipeline in the middle of ``fit`` with a decoder error. Checking first costs
    one full decode per image, spread over `workers` threads (the decoders release the
    GIL); :func:`~keras_recipes.data.image_folder` uses it to skip such files with one
    warning. Use the decoder of the pipeline that will read the files: ``"tensorflow"``
    (``tf.io.decode_image``, as ``files_to_dataset``) or ``"pil"`` (as ``files_to_numpy``).

    Example:

    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (4, 4)).save(root / "ok.png")
    >>> _ = (root / "notes.png").write_text("not an image")
    >>> check = check_images([root / "ok.png", root / "notes.png"], decoder="pil")
    >>> check.good, [pathlib.Path(p).name for p, _ in check.bad]
    ([0], ['notes.png'])

    Args:
        paths: image file paths.
        decoder: ``"tensorflow"`` or ``"pil"``.
        workers: threads (default: the CPU count, at most 8).

    Returns:
        An :class:`ImageCheck`: the indices of the paths that decode, and ``(path,
        reason)`` for those that do not.
    """
    if decoder not in _DECODERS:
        raise ValueError(
            "Invalid value for argument `decoder`. Expected 'tensorflow' or 'pil'. "
            f"Received: decoder={decoder!r}"
        )
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(
            f"Invalid value for argument `workers`. Expected an int >= 1 or None. "
            f"Received: workers={workers!r}"
        )
    paths = [os.fspath(Path(p)) for p in paths]
    decode = _DECODERS[decoder]
    if decoder == "tensorflow" and paths:
        import tensorflow  # noqa: F401  (imported once, not in each thread)

    def attempt(path: str) -> str | None:
        try:
            decode(path)
        except Exception as err:  # any decoder error means: this file cannot be used
            return _why(err)
        return None

    workers = int(workers or min(8, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers, "check_images") as pool:
        reasons = list(pool.map(attempt, paths))
    good = [i for i, r in enumerate(reasons) if r is None]
    bad = [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]
    return ImageCheck(good, bad)
