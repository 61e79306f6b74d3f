"""Checks of the library scenario's report (`scenarios.py`) shared by every engine's tests.

The scenario trains the same model twice, on 2 replicas ("many") and on one device ("one"),
from the same weights with the same global batches of 16, `global_clipnorm` active,
`UnfreezeSchedule` unfreezing the backbone with a new optimizer at epoch 1 and `EarlyStopping`
stopping after epoch 1 (of 3). Only the summation order of the gradients differs.
"""

import numpy as np


def assert_matches_one_device(library: dict) -> None:
    assert library["epochs_run"] == {"many": 2, "one": 2}
    assert library["backbone_trained"]
    assert library["weights_vs_one_device"] < 1e-5
    assert library["logs_vs_one_device"] < 1e-5


def assert_gradient_norms_match_one_device(library: dict) -> None:
    """GradientHistogram's captured norms (last step of each epoch) are the global-batch ones."""
    norms = library["gradient_norms"]
    assert len(norms["many"]) == 2
    np.testing.assert_allclose(norms["many"], norms["one"], rtol=1e-5)


def assert_one_tensorboard_writer(library: dict) -> None:
    assert library["event_files"] == ["many/train"]


def assert_processes_identical(reports: list[dict]) -> None:
    """Several processes end with bitwise identical weights and log the same values."""
    first, second = (r["weights"] for r in reports)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert reports[0]["library"]["logs"] == reports[1]["library"]["logs"]
