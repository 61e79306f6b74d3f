"""NumPy references and probes for the mixing-layer tests (independent of the package)."""

import inspect

import keras
import numpy as np

from tests.contract import assert_config_round_trip

TINY32 = np.finfo(np.float32).tiny


def to_np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (ties handled)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def as_float32_grid(x):
    """Values as float32 would hold them, subnormals flushed to 0 (as XLA/TF CPU do)."""
    x = np.asarray(x, np.float64).astype(np.float32)
    return np.where(np.abs(x) < TINY32, np.float32(0), x)


def numpy_box(area, u_y, u_x, height, width, inside=False):
    """The integer box rule, written again in NumPy (float64)."""
    area = np.clip(np.asarray(area, np.float64), 0, 1)
    h = np.round(np.sqrt(area) * height)
    w = np.round(np.sqrt(area) * width)
    if inside:
        y0 = np.minimum(np.floor(u_y * (height + 1 - h)), height - h)
        x0 = np.minimum(np.floor(u_x * (width + 1 - w)), width - w)
        return (y0.astype(int), (y0 + h).astype(int), x0.astype(int), (x0 + w).astype(int))
    cy = np.minimum(np.floor(u_y * height), height - 1)
    cx = np.minimum(np.floor(u_x * width), width - 1)
    y0, x0 = cy - np.floor(h / 2), cx - np.floor(w / 2)
    y1, x1 = y0 + h, x0 + w
    return tuple(np.clip(v, 0, n).astype(int) for v, n in
                 ((y0, height), (y1, height), (x0, width), (x1, width)))


def labelled_images(n, height, width, channels=3, dtype="float32", channels_first=False):
    """Image i is filled with the value i + 1; its one-hot label is e_i (N classes = N)."""
    values = np.arange(1, n + 1, dtype=np.float64)
    shape = (n, channels, height, width) if channels_first else (n, height, width, channels)
    images = np.broadcast_to(values[:, None, None, None], shape).astype(dtype)
    return images, np.eye(n, dtype="float32")


def partner_of(y_out):
    """Index of the partner of each sample from mixed one-hot-identity labels (self if none)."""
    off = y_out.copy()
    n = len(off)
    off[np.arange(n), np.arange(n)] = -1
    partner = off.argmax(axis=1)
    return np.where(off.max(axis=1) > 0, partner, np.arange(n))


def assert_every_argument_round_trips(cls, kwargs):
    """`kwargs` names every constructor argument (non-default values); the config keeps
    each, and the layer rebuilt from it has the same config (JSON-able, also through
    Keras serialization)."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.kind is not p.VAR_KEYWORD]
    assert sorted(kwargs) == sorted(p.name for p in params)
    for p in params:
        assert kwargs[p.name] != p.default, p.name
    layer = cls(**kwargs)
    config = layer.get_config()
    for name, value in kwargs.items():
        assert config[name] == (list(value) if isinstance(value, tuple) else value), name
    assert_config_round_trip(layer, cls)
