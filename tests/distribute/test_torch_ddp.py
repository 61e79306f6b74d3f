"""torch DistributedDataParallel: 2 processes, gloo over 127.0.0.1, launched by torchrun.

``launch.run_ddp`` runs ``python -m torch.distributed.run --nproc_per_node=2
--master_port=<free port> workers/torch_ddp.py``: the real launcher sets each
rank's environment (it costs one torch start more than running rank 0 here).
"""

import keras
import pytest

from tests.distribute import checks
from tests.distribute.launch import run_ddp

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="torch DDP runs under the torch backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return run_ddp("torch_ddp", tmp_path_factory.mktemp("torch_ddp"))


def test_two_ranks_one_chief(reports):
    assert [r["rank"] for r in reports] == [0, 1]
    assert [r["is_chief"] for r in reports] == [True, False]
    assert all(r["kind"] == "ddp" and r["world_size"] == 2 for r in reports)


def test_two_replicas_match_one_device_with_the_library_callbacks(reports):
    # Same weights and global batches, global_clipnorm active (DDP averages the
    # gradients before the optimizer clips them); UnfreezeSchedule unfreezes the
    # backbone with a new optimizer at epoch 1 (the model is re-wrapped for the
    # new trainable set); EarlyStopping stops every rank after epoch 1 (of 3).
    for r in reports:
        checks.assert_matches_one_device(r["library"])


def test_gradient_histogram_logs_gradients_averaged_over_ranks(reports):
    # Chief only: the captured gradients are DDP's averaged gradients, the same
    # norms as on one device.
    checks.assert_gradient_norms_match_one_device(reports[0]["library"])
    assert "gradient_norms" not in reports[1]["library"]


def test_one_tensorboard_writer(reports):
    # Both ranks share the log folder; only the chief runs chief_callbacks.
    checks.assert_one_tensorboard_writer(reports[0]["library"])


def test_replicas_hold_identical_weights_after_training(reports):
    for r in reports:
        assert r["library"]["replica_difference"] == 0.0
        # AugmentedModel(MixUp) over batch norm + dropout: statistics averaged.
        assert r["augmented"]["replica_difference"] == 0.0


def test_logs_are_global_and_identical_on_every_rank(reports):
    # Metric states are summed over ranks after each step, so both ranks log the
    # same (global) values: callbacks such as early stopping decide alike.
    for scenario in ("library", "augmented"):
        assert reports[0][scenario]["logs"] == reports[1][scenario]["logs"]
    assert set(reports[0]["augmented"]["logs"]) == {"loss", "val_loss"}


def test_global_batch_split_evenly(reports):
    # 2 epochs x 64 rows, global batch 16: each rank trained on 8 rows per step.
    assert [r["augmented"]["rows_per_replica"] for r in reports] == [[64], [64]]


def test_ranks_draw_different_random_streams(reports):
    # Each rank's seed states are offset by its rank: different MixUp and
    # dropout draws for the two halves of a global batch.
    for key in ("mixup_seed_states", "dropout_seed_states"):
        ((seed_0, count_0),), ((seed_1, count_1),) = (r["augmented"][key] for r in reports)
        assert seed_1 - seed_0 == 1_000_003 and count_0 == count_1


def test_uneven_split_weights_each_part_by_its_rows(reports):
    # 64 rows in global batches of 15: parts of 7 + 8 rows, and 2 + 2 for the last
    # batch of 4. Weighting each part's mean loss by its share gives exactly the
    # global-batch gradient, as on one device.
    for r in reports:
        assert r["uneven"]["weights_vs_one_device"] < 1e-5


def test_ranks_with_different_data_fail_together_with_a_clear_error(reports):
    for r in reports:
        assert "received different global batches" in r["mismatch"]["error"]
