"""keras.distribution.DataParallel over 2 XLA host devices (worker in a subprocess)."""

import keras
import pytest

from tests.distribute.launch import run_worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel is exercised under the jax backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_worker(
        "jax_data_parallel", tmp_path_factory.mktemp("jax_dp"),
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )


def test_two_devices(report):
    assert report["kind"] == "data_parallel"
    assert report["devices"] == 2
    assert report["match"]["num_replicas"] == 2


def test_two_replicas_match_one_device_with_same_global_batch(report):
    match = report["match"]
    assert match["hidden_trained"]
    assert match["weights_vs_one_device"] < 1e-5
    assert match["logs_vs_one_device"] < 1e-5


def test_replicas_hold_identical_weights_after_training(report):
    assert report["match"]["replica_difference"] == 0.0
    assert report["augmented"]["replica_difference"] == 0.0


def test_global_batch_split_evenly(report):
    # A global batch of 16 is sharded 8 + 8 along the batch axis, in order.
    assert report["split"]["rows_per_device"] == [8, 8]
    assert report["split"]["shards_reassemble"]
    # One SPMD program sees the global batch: 2 epochs x 64 rows.
    assert report["augmented"]["rows_per_replica"] == [128, 128]


def test_augmented_model_on_two_devices_equals_one_device(report):
    # One SPMD program over the global batch: MixUp, dropout and batch-norm
    # statistics are those of the global batch, as on one device.
    assert report["augmented"]["weights_vs_one_device"] < 1e-5
