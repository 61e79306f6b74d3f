"""Integrity-checked downloads into the Keras cache, with an offline error that says what to do."""

from __future__ import annotations

import os
from pathlib import Path

import keras

__all__ = ["DatasetUnavailableError", "cached_path", "fetch", "keras_home"]


class DatasetUnavailableError(OSError):
    """A data file is neither cached nor downloadable (offline machine, blocked host)."""


def keras_home() -> Path:
    """Keras's cache root, read at call time: ``$KERAS_HOME`` if set, else ``~/.keras``."""
    return Path(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")).expanduser()


def cached_path(subdir: str, fname: str) -> Path:
    """Where ``fetch`` keeps ``fname``: ``$KERAS_HOME/datasets/<subdir>/<fname>``."""
    return keras_home() / "datasets" / subdir / fname


def fetch(
    url: str,
    fname: str,
    *,
    subdir: str,
    file_hash: str,
    extract: bool = False,
    dataset: str,
    alternative: str,
) -> Path:
    """Downloads ``url`` once into the Keras cache, checks its hash, optionally extracts it.

    A file already in the cache with the right hash is used without network.
    When it is missing and the download fails, ``DatasetUnavailableError``
    names the URL, the exact path to place the file at by hand, and the
    offline alternative.

    Returns:
        The path of the file, or of the extraction folder when ``extract``.
    """
    target = cached_path(subdir, fname)
    try:
        path = keras.utils.get_file(
            fname=fname,
            origin=url,
            file_hash=file_hash,
            cache_dir=str(keras_home()),
            cache_subdir=os.path.join("datasets", subdir),
            extract=extract,
        )
    except Exception as e:  # urllib and keras raise plain Exception subclasses
        raise DatasetUnavailableError(
            f"Could not obtain {dataset}: {fname} is not in the cache and downloading it "
            f"failed ({type(e).__name__}: {e}).\n"
            f"  URL:        {url}\n"
            f"  Place it at: {target}\n"
            f"  (expected hash {file_hash}); it is then used without network.\n"
            f"  Offline alternative: {alternative}"
        ) from e
    return Path(path)
