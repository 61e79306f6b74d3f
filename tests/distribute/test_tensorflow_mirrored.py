"""tf.distribute.MirroredStrategy over 2 logical CPU devices (worker in a subprocess)."""

import keras
import pytest

from tests.distribute import checks
from tests.distribute.conftest import TWO_DEVICES_HERE
from tests.distribute.launch import run_worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies run under the tensorflow backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # In this process when conftest.py could split its CPU in two, else a fresh one.
    return run_worker("tensorflow_mirrored", tmp_path_factory.mktemp("tf_mirrored"),
                      in_process=TWO_DEVICES_HERE)


def test_two_replicas(report):
    assert report["kind"] == "mirrored"
    assert report["library"]["num_replicas"] == 2


def test_two_replicas_match_one_device_with_the_library_callbacks(report):
    # (Keras alone clips each replica's partial gradient: this failed before the
    # engine summed the gradients first.)
    checks.assert_matches_one_device(report["library"])


def test_gradient_histogram_logs_gradients_summed_over_replicas(report):
    # Keras hands `apply` each replica's part; the engine sums them first.
    checks.assert_gradient_norms_match_one_device(report["library"])


def test_one_tensorboard_writer(report):
    checks.assert_one_tensorboard_writer(report["library"])


def test_replicas_hold_identical_weights_after_training(report):
    assert report["library"]["replica_difference"] == 0.0
    # AugmentedModel(MixUp) over batch norm + dropout: moving statistics averaged.
    assert report["augmented"]["replica_difference"] == 0.0


def test_global_batch_split_evenly(report):
    # 2 epochs x 64 rows, global batch 16: each replica trained on 8 rows per step.
    assert report["augmented"]["rows_per_replica"] == [64, 64]


def test_augmented_model_trains_under_the_strategy(report):
    # Regression: Keras's symbolic build under a strategy averages the replicas'
    # labels (integers become floats) and AugmentedModel's loss failed to build.
    logs = report["augmented"]["logs"]
    assert set(logs) == {"loss", "val_loss"}
    assert all(0 < v < 10 for v in logs["loss"] + logs["val_loss"])


def test_replicas_draw_different_random_streams(report):
    # Each replica's seed states are offset by its index: different MixUp and
    # dropout draws for the two halves of a global batch.
    for key in ("mixup_seed_states", "dropout_seed_states"):
        (seed_0, count_0), (seed_1, count_1) = report["augmented"][key]
        assert seed_1 - seed_0 == 1_000_003 and count_0 == count_1


def test_keras_alone_leaves_replicas_apart(report):
    # Regression evidence for what the engine fixes (Keras 3.15, measured):
    # batch-norm statistics are not aggregated across replicas, and an optimizer
    # a callback builds outside strategy.scope() lets the replicas drift apart.
    assert report["keras_alone"]["batch_norm_replica_difference"] > 1e-4
    assert report["keras_alone"]["new_optimizer_replica_difference"] > 1e-4
