"""TensorBoard event files written and read without TensorFlow.

``keras.callbacks.TensorBoard`` writes through ``tf.summary`` and therefore
imports TensorFlow even when Keras runs on torch or jax (keras-team/keras#19121).
This module writes the same files with the ``tensorboard`` package's own
pieces only: its ``Event``/``Summary`` protocol buffers, its histogram and
scalar plugin metadata, and its ``RecordWriter`` (the TFRecord framing with
masked CRC32C checksums). Nothing here imports TensorFlow, so it works where
TensorFlow is not installed or not importable.

Scalars are written as ``simple_value`` (as PyTorch's ``SummaryWriter`` does),
histograms as the ``[k, 3]`` float64 tensor of ``(left edge, right edge,
count)`` rows that ``tf.summary.histogram`` writes, tagged for TensorBoard's
histogram plugin. Histogram buckets are exactly ``np.histogram``'s (uniform bins
over the finite values), counted faster on large arrays (about 1.6x on 20M float32
values; see ``benchmarks/results/transfer_step.md``).

The reader (:func:`read_scalars`, :func:`read_histograms`) parses the same
framing, so tests and :func:`plot_gradient_norms` need no TensorFlow either.
"""

from __future__ import annotations

import atexit
import itertools
import os
import queue
import socket
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as _histogram_metadata
from tensorboard.summary.writer.record_writer import RecordWriter

__all__ = ["EventWriter", "histogram_buckets", "read_histograms", "read_scalars", "scalar_records"]

_UID = itertools.count()


def histogram_buckets(values, bins: int = 30) -> tuple[np.ndarray, int]:
    """Histogram of the finite entries of `values` as TensorBoard's ``[bins, 3]`` rows.

    Non-finite entries (NaN, ±inf) cannot be placed in a bucket; they are
    counted and returned beside the histogram, never silently dropped.

    Example:

    >>> buckets, nonfinite = histogram_buckets([0.0, 1.0, 1.0, 4.0, float("nan")], bins=4)
    >>> buckets[:, 2].tolist(), nonfinite
    ([1.0, 2.0, 0.0, 1.0], 1)
    >>> buckets[:, 0].tolist()  # left edges: uniform over [min, max]
    [0.0, 1.0, 2.0, 3.0]

    Args:
        values: an array-like of any shape.
        bins: number of uniform buckets between the smallest and largest finite
            value.

    Returns:
        ``(buckets, nonfinite)``: a float64 array of shape ``(bins, 3)`` with rows
        ``(left, right, count)`` whose counts sum to the number of finite
        entries, and the number of non-finite entries.
    """
    data = np.asarray(values).reshape(-1)
    if data.dtype.kind != "f" or data.dtype.itemsize < 4:
        data = data.astype(np.float32)
    finite = np.isfinite(data)
    nonfinite = int(data.size - np.count_nonzero(finite))
    if nonfinite:
        data = data[finite]
    out = np.zeros((bins, 3), np.float64)
    if data.size == 0:
        return out, nonfinite
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        # Same convention as tensorboard's histogram_pb: all mass in the last bucket.
        out[:, 0] = out[:, 1] = lo
        out[-1, 2] = data.size
        return out, nonfinite
    counts, edges = _uniform_counts(data, bins, lo, hi)
    out[:, 0] = edges[:-1]
    out[:, 1] = edges[1:]
    out[:, 2] = counts
    return out, nonfinite


_BLOCK = 1 << 18  # values per pass: the scratch arrays stay in the CPU cache


def _uniform_counts(data: np.ndarray, bins: int, lo: float, hi: float):
    """``np.histogram(data, bins, range=(lo, hi))`` for finite `data` within ``[lo, hi]``.

    The same counts and edges, faster on large arrays (about 1.6x on 20M
    float32 values): each value's
    bucket is ``floor((x - lo) * bins / (hi - lo))`` computed in the data's own
    precision into reused buffers, and only the values whose estimate lies
    within rounding error of a bucket edge are placed again by comparing them
    with NumPy's own edges (``x`` belongs to ``[e_k, e_k+1)``, the last bucket
    closed), which is the rule ``np.histogram`` applies. When the range is so
    narrow against the values' magnitude that most values would need that exact
    placement, ``np.histogram`` itself is faster and is called.
    """
    edges = np.histogram_bin_edges(data[:1], bins=bins, range=(lo, hi))
    if edges.dtype != data.dtype:
        return np.histogram(data, bins=bins, range=(lo, hi))
    eps = float(np.finfo(data.dtype).eps)
    scale = bins / (hi - lo)
    # Error of the estimate (x - lo) * scale, and of NumPy's edges, in bucket units.
    tol = 8 * eps * (max(abs(lo), abs(hi)) * scale + bins) + 1e-12
    if tol > 1e-2 or not np.isfinite(scale):
        return np.histogram(data, bins=bins, range=(lo, hi))
    inner = edges[1:-1]
    counts = np.zeros(bins + 1, np.int64)
    n = min(data.size, _BLOCK)
    t = np.empty(n, data.dtype)
    idx = np.empty(n, np.intp)
    near = np.empty(n, bool)
    lo_, scale_, half = data.dtype.type(lo), data.dtype.type(scale), data.dtype.type(0.5)
    for start in range(0, data.size, _BLOCK):
        x = data[start:start + _BLOCK]
        m = x.size
        tb, ib, nb = t[:m], idx[:m], near[:m]
        np.subtract(x, lo_, out=tb)
        np.multiply(tb, scale_, out=tb)
        ib[...] = tb  # truncation; a slightly negative estimate (x = lo) gives 0
        np.subtract(tb, ib, out=tb, casting="unsafe")  # fraction within the bucket
        np.subtract(tb, half, out=tb)
        np.abs(tb, out=tb)
        np.greater(tb, half - tol, out=nb)  # within rounding error of an edge
        fix = np.flatnonzero(nb)
        if fix.size:
            ib[fix] = np.searchsorted(inner, x[fix], side="right")
        counts += np.bincount(ib, minlength=bins + 1)
    counts[bins - 1] += counts[bins]  # x = hi: the last bucket is closed
    return counts[:bins], edges


def _tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    array = np.ascontiguousarray(array, dtype=np.float64)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_DOUBLE, tensor_shape=shape, tensor_content=array.tobytes()
    )


class EventWriter:
    """Writes TensorBoard scalars and histograms to one event file, TensorFlow-free.

    Events are framed and checksummed by ``tensorboard``'s ``RecordWriter`` and
    written to a local file (``log_dir`` must be a local path). With
    ``background=True`` every write, and the work of the callables given to
    :meth:`submit` (histograms of large weights, say), runs in order in one
    background thread, off the training loop's critical path (as ``tf.summary``
    writers queue their events); :meth:`wait` and :meth:`close` block until it is
    all on disk, an error in the thread is raised by the next call, and writers
    still open at interpreter exit are drained and closed.

    Example:

    >>> import tempfile
    >>> log_dir = tempfile.mkdtemp()
    >>> with EventWriter(log_dir) as writer:
    ...     writer.scalar("loss", 0.5, step=0)
    ...     _ = writer.histogram("weights", [1.0, 2.0, 2.0], step=0, bins=2)
    >>> read_scalars(log_dir)
    {'loss': [(0, 0.5)]}
    >>> read_histograms(log_dir)["weights"][0][1][:, 2].tolist()
    [1.0, 2.0]

    Args:
        log_dir: directory of the event file (created if missing).
        filename_suffix: appended to the file name (default ``".v2"``, like
            ``tf.summary``).
        background: write from a background thread (see above).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        filename_suffix: str = ".v2",
        *,
        background: bool = False,
    ) -> None:
        self.log_dir = os.fspath(log_dir)
        self.background = bool(background)
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        os.makedirs(self.log_dir, exist_ok=True)
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_UID)}{filename_suffix}"
        )
        self.path = os.path.join(self.log_dir, name)
        self._writer = RecordWriter(open(self.path, "wb"))  # closed in close()
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self._writer.flush()
        if self.background:
            # At most 2 jobs wait: a slow disk or histogram slows training down instead
            # of piling up copies of large arrays in memory.
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(
                target=self._work, name=f"EventWriter:{name}", daemon=True
            )
            self._thread.start()
            _OPEN_BACKGROUND_WRITERS.add(self)

    def _write(self, event: event_pb2.Event) -> None:
        self._writer.write(event.SerializeToString())

    def _write_summary(self, values: list[summary_pb2.Summary.Value], step: int) -> None:
        summary = summary_pb2.Summary(value=values)
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    # ------------------------------------------------------------ background
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as e:  # kept and raised in the caller's thread
                self._error = e
            finally:
                self._queue.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"EventWriter({self.log_dir!r}): writing failed: {error}") from error

    def _run(self, job: Callable[[], None]) -> None:
        """Runs `job` now, or queues it for the background thread."""
        if self._queue is None:
            job()
            return
        self._raise_error()
        if self._writer.closed:
            raise ValueError(f"EventWriter({self.log_dir!r}) is closed.")
        self._queue.put(job)

    def wait(self) -> None:
        """Blocks until every queued write is done; raises an error of the background thread."""
        if self._queue is not None and self._thread.is_alive():
            self._queue.join()
        self._raise_error()

    @staticmethod
    def wait_all() -> None:
        """`wait` for every open background writer of this process (e.g. before a checkpoint)."""
        for writer in list(_OPEN_BACKGROUND_WRITERS):
            writer.wait()

    # ---------------------------------------------------------------- writes
    def add_summary(self, values: list[summary_pb2.Summary.Value], step: int) -> None:
        """Writes several summary values as one event at `step`."""
        self._run(lambda: self._write_summary(values, step))

    def submit(self, make_values: Callable[[], list[summary_pb2.Summary.Value]], step: int) -> None:
        """Writes the summary values ``make_values()`` returns as one event at `step`.

        With ``background=True`` `make_values` itself runs in the background thread:
        give it NumPy copies that nothing changes afterwards.
        """
        self._run(lambda: self._write_summary(make_values(), step))

    @staticmethod
    def scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
        """A scalar summary value (``simple_value``)."""
        return summary_pb2.Summary.Value(tag=tag, simple_value=float(value))

    @staticmethod
    def histogram_value(tag: str, buckets: np.ndarray) -> summary_pb2.Summary.Value:
        """A histogram summary value from ``(bins, 3)`` rows (see `histogram_buckets`)."""
        meta = _histogram_metadata.create_summary_metadata(display_name=None, description=None)
        return summary_pb2.Summary.Value(tag=tag, metadata=meta, tensor=_tensor_proto(buckets))

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Writes one scalar."""
        self.add_summary([self.scalar_value(tag, value)], step)

    def histogram(self, tag: str, values, step: int, bins: int = 30) -> int:
        """Writes a histogram of the finite entries of `values`; returns the non-finite count."""
        buckets, nonfinite = histogram_buckets(values, bins)
        self.add_summary([self.histogram_value(tag, buckets)], step)
        return nonfinite

    def flush(self) -> None:
        """Flushes written events to disk (queued after the pending writes when in background)."""
        self._run(self._writer.flush)

    def close(self) -> None:
        """Waits for the pending writes, then flushes and closes the file (idempotent)."""
        try:
            if self._queue is not None:
                self.wait()  # raises a background error, after the file is closed below
        finally:
            if self._queue is not None:
                if self._thread.is_alive():
                    self._queue.put(None)
                    self._thread.join()
                _OPEN_BACKGROUND_WRITERS.discard(self)
            if not self._writer.closed:
                self._writer.flush()
                self._writer.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_OPEN_BACKGROUND_WRITERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_background_writers() -> None:
    """Nothing queued is lost when a program ends (or crashes) before ``close()``."""
    for writer in list(_OPEN_BACKGROUND_WRITERS):
        try:
            writer.close()
        except Exception as e:
            print(f"keras_recipes: {e}", file=sys.stderr)


def _event_files(log_dir: str | os.PathLike) -> list[str]:
    log_dir = os.fspath(log_dir)
    if os.path.isfile(log_dir):
        return [log_dir]
    found = []
    for root, _, files in os.walk(log_dir):
        found += [os.path.join(root, f) for f in files if "tfevents" in f]
    return sorted(found)


def _read_records(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            f.read(4)
            if len(data) < length:
                return  # a partially written last record
            yield data


def _events(log_dir) -> Iterator[event_pb2.Event]:
    for path in _event_files(log_dir):
        for record in _read_records(path):
            yield event_pb2.Event.FromString(record)


def _tensor_array(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        dtype = {types_pb2.DT_DOUBLE: np.float64, types_pb2.DT_FLOAT: np.float32}[tensor.dtype]
        return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape)
    values = list(tensor.double_val) or list(tensor.float_val)
    return np.asarray(values, np.float64).reshape(shape)


def read_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Scalars of every event file under `log_dir`, as ``{tag: [(step, value), ...]}``.

    Reads ``simple_value`` scalars and the scalar tensors ``tf.summary.scalar``
    writes, in file order. No TensorFlow needed.
    """
    out: dict[str, list[tuple[int, float]]] = {}
    for step, tag, value in scalar_records(log_dir):
        out.setdefault(tag, []).append((step, value))
    return out


def scalar_records(log_dir: str | os.PathLike) -> Iterator[tuple[int, str, float]]:
    """Every scalar under `log_dir` as ``(step, tag, value)``, in file order (the order in
    which each step's values were written; :func:`read_scalars` groups them by tag)."""
    for event in _events(log_dir):
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                yield event.step, value.tag, float(value.simple_value)
            elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
                yield event.step, value.tag, float(_tensor_array(value.tensor).reshape(-1)[0])


def read_histograms(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Histograms under `log_dir` as ``{tag: [(step, buckets), ...]}``; buckets are ``(k, 3)``."""
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for event in _events(log_dir):
        for value in event.summary.value:
            if (
                value.WhichOneof("value") == "tensor"
                and value.metadata.plugin_data.plugin_name == "histograms"
            ):
                out.setdefault(value.tag, []).append((event.step, _tensor_array(value.tensor)))
    return out
