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
    """GradientHistogram's captured gradients (last step of each epoch) are the global-batch ones.

    Every norm (global and per weight) and every histogram (bucket edges and counts) logged
    with 2 replicas equals the one-device run's, to float tolerance: the replicas' gradients
    were summed (or averaged) before the capture read them, on the one-device scale.
    """
    norms, histograms = library["gradient_norms"], library["gradient_histograms"]
    assert set(norms["many"]) == set(norms["one"])
    # Global, head kernel and bias; the backbone's from epoch 1 on (unfrozen there).
    assert {"gradient_norm/global", "gradient_norm/transfer/head/kernel",
            "gradient_norm/backbone/hidden/kernel"} <= set(norms["one"]), sorted(norms["one"])
    assert [s for s, _ in norms["many"]["gradient_norm/global"]] == [0, 1]
    assert [s for s, _ in norms["one"]["gradient_norm/backbone/hidden/kernel"]] == [1]
    for tag, one in norms["one"].items():
        many = norms["many"][tag]
        assert [s for s, _ in many] == [s for s, _ in one], tag
        np.testing.assert_allclose([v for _, v in many], [v for _, v in one], rtol=1e-5,
                                   err_msg=tag)
    assert set(histograms["many"]) == set(histograms["one"]) == {
        t.replace("gradient_norm/", "gradients/") for t in norms["one"] if t.count("/") > 1}
    for tag, one in histograms["one"].items():
        many = histograms["many"][tag]
        assert [s for s, _ in many] == [s for s, _ in one], tag
        for (step, a), (_, b) in zip(many, one, strict=True):
            a, b = np.asarray(a), np.asarray(b)
            assert a.shape == b.shape, (tag, step)
            np.testing.assert_allclose(a[:, :2], b[:, :2], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{tag} edges, step {step}")
            np.testing.assert_array_equal(a[:, 2], b[:, 2], err_msg=f"{tag} counts, step {step}")


def assert_one_tensorboard_writer(library: dict) -> None:
    assert library["event_files"] == ["many/train"]


def assert_processes_identical(reports: list[dict]) -> None:
    """Several processes end with bitwise identical weights and log the same values."""
    first, second = (r["weights"] for r in reports)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert reports[0]["library"]["logs"] == reports[1]["library"]["logs"]
