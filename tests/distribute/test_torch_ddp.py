"""torch DistributedDataParallel: 2 processes, gloo over 127.0.0.1, started by torchrun."""

import keras
import pytest

from tests.distribute.launch import run_torchrun

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="torch DDP runs under the torch backend only; "
    f"this process runs {keras.backend.backend()} (its engine has its own test file)",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return run_torchrun("torch_ddp", tmp_path_factory.mktemp("torch_ddp"), nproc=2)


def test_two_ranks_one_chief(reports):
    assert [r["rank"] for r in reports] == [0, 1]
    assert [r["is_chief"] for r in reports] == [True, False]
    assert all(r["kind"] == "ddp" and r["world_size"] == 2 for r in reports)


def test_two_replicas_match_one_device_with_same_global_batch(reports):
    for r in reports:
        assert r["match"]["hidden_trained"]
        assert r["match"]["weights_vs_one_device"] < 1e-5
        assert r["match"]["logs_vs_one_device"] < 1e-5


def test_replicas_hold_identical_weights_after_training(reports):
    for r in reports:
        assert r["match"]["replica_difference"] == 0.0
        assert r["batch_norm"]["replica_difference"] == 0.0


def test_logs_are_global_and_identical_on_every_rank(reports):
    # Metric states are summed over ranks after each step, so both ranks log the
    # same (global) values: callbacks such as early stopping decide alike.
    for scenario in ("match", "batch_norm"):
        assert reports[0][scenario]["logs"] == reports[1][scenario]["logs"]


def test_global_batch_split_evenly(reports):
    # 2 epochs x 64 rows, global batch 16: each rank trained on 8 rows per step.
    assert [r["batch_norm"]["rows_per_replica"] for r in reports] == [[64], [64]]


def test_ranks_draw_different_random_streams(reports):
    seed_0, seed_1 = (r["dropout_seed_state"] for r in reports)
    assert seed_0[0] != seed_1[0]
    assert seed_0[1] == seed_1[1]  # same number of draws


def test_augmented_model_mixes_per_rank_with_its_own_random_stream(reports):
    first, second = (r["augmented"] for r in reports)
    assert first["replica_difference"] == second["replica_difference"] == 0.0
    assert first["loss"] == second["loss"]  # global logs
    (state_0,), (state_1,) = first["seed_states"], second["seed_states"]
    assert state_0[0] != state_1[0] and state_0[1] == state_1[1]


def test_uneven_split_weights_each_part_by_its_rows(reports):
    # 64 rows in global batches of 15: parts of 7 + 8 rows, and 2 + 2 for the last
    # batch of 4. Weighting each part's mean loss by its share gives exactly the
    # global-batch gradient, as on one device.
    for r in reports:
        assert r["uneven"]["weights_vs_one_device"] < 1e-5


def test_ranks_with_different_data_fail_together_with_a_clear_error(reports):
    for r in reports:
        assert "received different global batches" in r["mismatch"]["error"]
