"""EventWriter: background writing (order, errors, nothing lost at exit) against NumPy."""

import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from keras_recipes.callbacks.event_writer import (
    EventWriter,
    histogram_buckets,
    read_histograms,
    read_scalars,
)
from tests import processes

EVENT_WRITER = Path(__file__).resolve().parents[2] / "keras_recipes/callbacks/event_writer.py"


def test_background_jobs_run_off_the_callers_thread_in_order(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(1000).astype("float32") for _ in range(3)]
    release = threading.Event()
    threads = []

    def job(step):
        def make():
            threads.append(threading.get_ident())
            release.wait(timeout=30)  # the caller goes on while this job is pending
            buckets, _ = histogram_buckets(arrays[step], 7)
            return [EventWriter.scalar_value("s", step * 0.5),
                    EventWriter.histogram_value("h", buckets)]
        return make

    writer = EventWriter(tmp_path, background=True)
    writer.submit(job(0), step=0)
    returned_while_pending = not release.is_set()
    release.set()
    writer.submit(job(1), step=1)
    writer.scalar("direct", 2.0, step=1)  # a plain write queues behind the jobs
    writer.submit(job(2), step=2)
    writer.flush()
    EventWriter.wait_all()  # every open background writer: all of the above is on disk
    on_disk = read_scalars(tmp_path)
    writer.close()

    assert on_disk == read_scalars(tmp_path)

    assert returned_while_pending
    assert threads and all(t != threading.get_ident() for t in threads)
    scalars = read_scalars(tmp_path)
    assert scalars["s"] == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert scalars["direct"] == [(1, 2.0)]
    for step, got in read_histograms(tmp_path)["h"]:
        counts, edges = np.histogram(arrays[step], bins=7)  # independent reference
        np.testing.assert_array_equal(got[:, 2], counts)
        np.testing.assert_allclose(got[:, 0], edges[:-1], atol=1e-6)


def test_error_in_the_background_is_raised_by_the_next_call(tmp_path):
    writer = EventWriter(tmp_path, background=True)

    def broken():
        raise OSError("disk full")

    writer.submit(broken, step=0)
    with pytest.raises(RuntimeError, match="writing failed: disk full"):
        writer.wait()
    writer.scalar("after", 1.0, step=1)  # the writer goes on after reporting it
    writer.close()
    writer.close()  # idempotent
    assert read_scalars(tmp_path) == {"after": [(1, 1.0)]}

    # An error still pending at close() is raised, and the file is closed all the same.
    late = EventWriter(tmp_path / "late", background=True)
    late.scalar("kept", 2.0, step=0)
    late.submit(broken, step=1)
    with pytest.raises(RuntimeError, match="writing failed: disk full"):
        late.close()
    assert late._writer.closed
    assert read_scalars(tmp_path / "late") == {"kept": [(0, 2.0)]}
    with pytest.raises(ValueError, match="is closed"):
        writer.scalar("late", 1.0, step=2)


@pytest.mark.parametrize("ending", ["exit", "crash"])
def test_queued_events_are_on_disk_after_exit_or_crash_without_close(tmp_path, ending):
    # The module alone (no Keras import): a program that never calls close().
    script = textwrap.dedent(f"""
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("ew", {str(EVENT_WRITER)!r})
        ew = importlib.util.module_from_spec(spec); spec.loader.exec_module(ew)
        w = ew.EventWriter({str(tmp_path)!r}, background=True)
        def slow():
            time.sleep(0.5)  # still queued when the program ends
            return [ew.EventWriter.scalar_value("loss", 0.25)]
        w.submit(slow, step=3)
        w.scalar("last", 7.0, step=4)
        if {ending!r} == "crash":
            raise SystemError("training crashed")
    """)
    proc = processes.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert (proc.returncode != 0) == (ending == "crash"), proc.stderr
    assert read_scalars(tmp_path) == {"loss": [(3, 0.25)], "last": [(4, 7.0)]}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_histogram_counts_equal_numpys_also_on_bucket_edges(dtype, monkeypatch):
    """The fast bucket counter gives np.histogram's counts exactly, values on the edges included."""
    import keras_recipes.callbacks.event_writer as ew

    monkeypatch.setattr(ew, "_BLOCK", 1000)  # several blocks, a partial last one
    rng = np.random.default_rng(3)
    cases = [
        rng.standard_normal(10_007),
        rng.uniform(-3, 7, 5_001),
        np.linspace(0.0, 1.0, 3_001),  # many values on or next to an edge
        rng.integers(-4, 5, 4_000).astype(float),  # ties on the edges of 9 buckets
        1000.0 + rng.standard_normal(2_000) * 1e-3,  # narrow range, large offset
        1e30 * rng.standard_normal(2_000),
        np.array([-1.0, 1.0]),
    ]
    for values in cases:
        values = values.astype(dtype)
        lo, hi = float(values.min()), float(values.max())
        # The edges themselves and their neighbours, one ulp either side.
        edges = np.histogram_bin_edges(values, bins=9, range=(lo, hi)).astype(dtype)
        near = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
        values = np.concatenate([values, near[(near >= lo) & (near <= hi)]])
        for bins in (1, 9, 30):
            buckets, nonfinite = histogram_buckets(values, bins)
            counts, ref_edges = np.histogram(values, bins=bins, range=(lo, hi))
            np.testing.assert_array_equal(buckets[:, 2], counts)
            np.testing.assert_array_equal(buckets[:, 0], ref_edges[:-1])
            np.testing.assert_array_equal(buckets[:, 1], ref_edges[1:])
            assert nonfinite == 0 and buckets[:, 2].sum() == values.size
