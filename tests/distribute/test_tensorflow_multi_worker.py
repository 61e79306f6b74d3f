"""tf.distribute.MultiWorkerMirroredStrategy: 2 worker processes on 127.0.0.1, one CPU each.

Each worker is a fresh process started with its own ``TF_CONFIG`` (a cluster of
two workers on free loopback ports, task index 0 or 1), as on two hosts; they
run the library scenario and report back (``workers/tensorflow_multi_worker.py``).
Cost: two TensorFlow starts and the scenario, about 42 s of CPU (measured).
"""

import json

import keras
import pytest

from tests.distribute import checks
from tests.distribute.launch import free_loopback_port, run_processes

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies run under the tensorflow backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    workers = [f"127.0.0.1:{free_loopback_port()}" for _ in range(2)]
    envs = [
        {"KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        for i in range(2)
    ]
    return run_processes("tensorflow_multi_worker", tmp_path_factory.mktemp("tf_mw"), envs,
                         timeout=300)


def test_two_workers_one_chief(reports):
    assert [(r["process_index"], r["is_chief"]) for r in reports] == [(0, True), (1, False)]
    assert all(r["kind"] == "multi_worker" and r["num_processes"] == 2 for r in reports)
    assert all(r["library"]["num_replicas"] == 2 for r in reports)


def test_two_workers_match_one_device_with_the_library_callbacks(reports):
    # Regression: Keras 3.15's fit failed under this strategy (the eager reduce of the
    # first batch, then "Invalid reduction dimension 0" on the scalar logs).
    for r in reports:
        checks.assert_matches_one_device(r["library"])


def test_workers_hold_identical_weights_after_training(reports):
    checks.assert_processes_identical(reports)


def test_gradient_histogram_logs_gradients_summed_over_workers(reports):
    checks.assert_gradient_norms_match_one_device(reports[0]["library"])
    assert "gradient_norms" not in reports[1]["library"]


def test_one_tensorboard_writer(reports):
    # Both workers share the log folder; only the chief runs chief_callbacks.
    checks.assert_one_tensorboard_writer(reports[0]["library"])


def test_global_batch_split_evenly(reports):
    # One epoch of 64 rows in global batches of 16: each worker trained on 8 rows a step.
    assert [r["rows"] for r in reports] == [32, 32]
