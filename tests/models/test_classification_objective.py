"""classification_objective: the loss and top-k metrics against NumPy cross-entropy and top-k."""

import keras
import numpy as np
import pytest

from keras_recipes.models import classification_objective

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(12, 4)).astype("float32") * 2
LABELS = RNG.integers(0, 4, size=12)


def _cross_entropy(logits, labels, k, eps):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.eye(k)[labels] * (1 - eps) + eps / k
    return float(np.mean(-(target * log_p).sum(axis=1)))


def _top_k(logits, labels, k):
    ranks = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean([lab in row for lab, row in zip(labels, ranks, strict=True)]))


@pytest.mark.parametrize("one_hot,eps", [(False, 0.0), (True, 0.0), (True, 0.1)])
def test_loss_and_metrics_match_numpy(keras_backend, one_hot, eps):
    loss, metrics = classification_objective(4, one_hot=one_hot, label_smoothing=eps, top_k=2)
    y = np.eye(4, dtype="float32")[LABELS] if one_hot else LABELS
    np.testing.assert_allclose(float(loss(y, LOGITS)), _cross_entropy(LOGITS, LABELS, 4, eps),
                               rtol=1e-5)
    top1, top2 = metrics
    top1.update_state(y, LOGITS)
    top2.update_state(y, LOGITS)
    assert (top1.name, top2.name) == ("top1", "top2")
    np.testing.assert_allclose(float(top1.result()), _top_k(LOGITS, LABELS, 1), rtol=1e-6)
    np.testing.assert_allclose(float(top2.result()), _top_k(LOGITS, LABELS, 2), rtol=1e-6)


def test_top_k_beyond_the_classes_counts_them_all_and_keeps_its_name(keras_backend):
    _, (_, top5) = classification_objective(3)
    top5.update_state(LABELS % 3, LOGITS[:, :3])
    assert top5.name == "top5" and float(top5.result()) == 1.0


def test_probabilities_when_not_from_logits(keras_backend):
    loss, _ = classification_objective(4, from_logits=False)
    p = keras.ops.convert_to_numpy(keras.ops.softmax(LOGITS))
    np.testing.assert_allclose(float(loss(LABELS, p)), _cross_entropy(LOGITS, LABELS, 4, 0.0),
                               rtol=1e-5)


def test_compiled_model_logs_the_names(keras_backend):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    loss, metrics = classification_objective(4)
    model.compile(optimizer="sgd", loss=loss, metrics=metrics)
    logs = model.evaluate(LOGITS, LABELS, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "top1", "top5"}


@pytest.mark.parametrize("kwargs,name", [
    ({"num_classes": 1}, "num_classes"), ({"num_classes": 2.5}, "num_classes"),
    ({"num_classes": 3, "label_smoothing": 1.0, "one_hot": True}, "label_smoothing"),
    ({"num_classes": 3, "label_smoothing": 0.1}, "one_hot"),
    ({"num_classes": 3, "top_k": 0}, "top_k"),
])
def test_bad_arguments_are_named(keras_backend, kwargs, name):
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        classification_objective(**kwargs)
