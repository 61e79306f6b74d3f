"""tf.distribute.MirroredStrategy over 2 logical CPU devices (worker in a subprocess)."""

import keras
import pytest

from tests.distribute.launch import run_worker

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies run under the tensorflow backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_worker("tensorflow_mirrored", tmp_path_factory.mktemp("tf_mirrored"))


def test_two_replicas(report):
    assert report["kind"] == "mirrored"
    assert report["match"]["num_replicas"] == 2


def test_two_replicas_match_one_device_with_same_global_batch(report):
    # Same initial weights and global batches of 16; a callback unfreezes a
    # layer with a new optimizer at epoch 1. Only summation order differs.
    match = report["match"]
    assert match["hidden_trained"]
    assert match["weights_vs_one_device"] < 1e-5
    assert match["logs_vs_one_device"] < 1e-5


def test_replicas_hold_identical_weights_after_training(report):
    assert report["match"]["replica_difference"] == 0.0
    # Batch norm + dropout: moving statistics are averaged by the engine.
    assert report["batch_norm"]["replica_difference"] == 0.0


def test_global_batch_split_evenly(report):
    # 2 epochs x 64 rows, global batch 16: each replica trained on 8 rows per step.
    assert report["batch_norm"]["rows_per_replica"] == [64, 64]


def test_keras_alone_leaves_replicas_apart(report):
    # Regression evidence for what the engine fixes (Keras 3.15, measured):
    # batch-norm statistics are not aggregated across replicas, and an optimizer
    # a callback builds outside strategy.scope() lets the replicas drift apart.
    assert report["keras_alone"]["batch_norm_replica_difference"] > 1e-4
    assert report["keras_alone"]["new_optimizer_replica_difference"] > 1e-4


def test_augmented_model_trains_with_mixing_inside_each_replica(report):
    # Regression: Keras's symbolic build under a strategy averages the replicas'
    # labels (integers become floats) and AugmentedModel's loss failed to build.
    augmented = report["augmented"]
    assert augmented["replica_difference"] == 0.0
    assert len(augmented["loss"]) == 2 and all(0 < v < 10 for v in augmented["loss"])


def test_replicas_draw_different_random_streams(report):
    # Each replica's seed state is offset by its index: different MixUp draws.
    (seed_0, count_0), (seed_1, count_1) = report["augmented"]["seed_states"]
    assert seed_1 - seed_0 == 1_000_003 and count_0 == count_1
