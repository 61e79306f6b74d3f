"""keras.distribution.DataParallel over 2 processes (jax.distributed) on 127.0.0.1, one CPU each.

Each process is started with the ``KERAS_DISTRIBUTION_*`` variables (coordinator
on a free loopback port, 2 processes, process id 0 or 1), as on two hosts;
JAX's CPU collectives between them are gloo (its default). They run the library
scenario and report back (``workers/jax_multi_process.py``). Cost: two JAX
starts and the scenario, about 48 s of CPU (measured).
"""

import keras
import pytest

from tests.distribute import checks
from tests.distribute.launch import free_loopback_port, run_processes

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel is exercised under the jax backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    coordinator = f"127.0.0.1:{free_loopback_port()}"
    envs = [
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "", "KERAS_DISTRIBUTION_JOB_ADDRESSES": coordinator,
         "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}
        for i in range(2)
    ]
    return run_processes("jax_multi_process", tmp_path_factory.mktemp("jax_mp"), envs,
                         timeout=300)


def test_two_processes_one_chief(reports):
    assert [(r["process_index"], r["is_chief"]) for r in reports] == [(0, True), (1, False)]
    assert all(r["num_processes"] == 2 and r["devices"] == 2 and r["local_devices"] == 1
               for r in reports)
    assert all(r["library"]["num_replicas"] == 2 for r in reports)
    assert not any(r["predict_gathers"] for r in reports)  # outputs sharded over processes


def test_two_processes_match_one_device_with_the_library_callbacks(reports):
    for r in reports:
        checks.assert_matches_one_device(r["library"])


def test_processes_hold_identical_weights_after_training(reports):
    checks.assert_processes_identical(reports)


def test_gradient_histogram_logs_global_gradients(reports):
    # Every process runs the chief callbacks (JAX needs the same program everywhere;
    # the chief alone failed with a gloo size mismatch); the chief's are logged.
    checks.assert_gradient_norms_match_one_device(reports[0]["library"])


def test_one_tensorboard_writer(reports):
    # The other process's GradientHistogram wrote to a temporary folder, not the shared one.
    checks.assert_one_tensorboard_writer(reports[0]["library"])


def test_global_batch_split_evenly(reports):
    # Every process gets the same global arrays and keeps its half of each global batch
    # of 16 (8 rows); Keras assembles the global batch from the two halves.
    for r in reports:
        assert r["part"] == {"batch_size": 8, "rows": 32, "its_half_of_each_global_batch": True}


def test_tf_data_batches_split_between_processes(reports):
    # Batches of 4 (and a last one of 1, repeated to 2): process p keeps rows [2p, 2p + 2)
    # of each; the pipeline batches inside flat_map, whose batch size Keras cannot read.
    assert reports[0]["dataset_part"]["parts"] == [[0, 1], [4, 5], [8, 9], [12]]
    assert reports[1]["dataset_part"]["parts"] == [[2, 3], [6, 7], [10, 11], [12]]


def test_chief_callbacks_with_a_log_dir_run_everywhere_writing_once(reports):
    # The chief runs both; the other process runs the one with a log_dir (JAX needs the
    # same computations everywhere), writing to a temporary folder, restored after fit.
    chief, other = (r["chief_callbacks"] for r in reports)
    assert chief == {"count": 2, "log_dir": "/shared/logs", "scratch_is_temporary": False,
                     "log_dir_after": "/shared/logs"}
    assert other["count"] == 1 and other["scratch_is_temporary"]
    assert other["log_dir"] != "/shared/logs" and other["log_dir_after"] == "/shared/logs"
