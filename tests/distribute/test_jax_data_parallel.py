"""keras.distribution.DataParallel over 2 XLA host devices (worker in a subprocess)."""

import keras
import pytest

from tests.distribute import checks
from tests.distribute.conftest import TWO_DEVICES_HERE
from tests.distribute.launch import run_worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel is exercised under the jax backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # In this process when conftest.py could give it 2 devices, else a fresh one.
    return run_worker(
        "jax_data_parallel", tmp_path_factory.mktemp("jax_dp"),
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        in_process=TWO_DEVICES_HERE,
    )


def test_two_devices(report):
    assert report["kind"] == "data_parallel"
    assert report["devices"] == 2
    assert report["library"]["num_replicas"] == 2


def test_two_replicas_match_one_device_with_the_library_callbacks(report):
    checks.assert_matches_one_device(report["library"])


def test_gradient_histogram_logs_gradients_summed_over_replicas(report):
    checks.assert_gradient_norms_match_one_device(report["library"])


def test_one_tensorboard_writer(report):
    checks.assert_one_tensorboard_writer(report["library"])


def test_replicas_hold_identical_weights_after_training(report):
    assert report["library"]["replica_difference"] == 0.0
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


def test_tf_data_last_partial_batch_is_made_divisible(report):
    # 13 rows in batches of 4: the last batch of 1 row cannot be sharded over 2
    # devices (Keras raises IndivisibleError); it is repeated to 2 rows, which
    # keeps its mean loss, so training equals one device's.
    partial = report["partial_batch"]
    assert partial["warned"]
    assert partial["weights_vs_one_device"] < 1e-5


def test_model_created_outside_the_scope_is_refused_clearly(report):
    # Keras fails inside the jitted step ("incompatible devices"); the engine
    # says where the model must be created.
    assert "created inside `context.scope()`" in report["outside_scope"]["error"]
