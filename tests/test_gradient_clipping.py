"""Gradient clipping: PyTorch habits as Keras optimizer arguments (docs/techniques.md §2, §6).

| PyTorch | Keras | rule, for the gradients g_1..g_n |
|---|---|---|
| `clip_grad_norm_(params, c)` | `global_clipnorm=c` | g_i · min(1, c / ‖(g_1..g_n)‖₂) |
| (a loop of per-tensor clips) | `clipnorm=c` | g_i · min(1, c / ‖g_i‖₂) |
| `clip_grad_value_(params, c)` | `clipvalue=c` | clip(g_i, -c, c), elementwise |

Each rule is checked with numbers: a two-layer linear model, its MSE gradient
computed by hand in NumPy, one `fit` step of SGD(learning_rate=1), so that the
new weights are exactly `w - clip(g)`. Under the torch backend the NumPy rules
are also checked against `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.
"""

import keras
import numpy as np
import pytest

L = keras.layers
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4))
Y = RNG.normal(size=(16, 2)) * 5.0
WEIGHTS = [RNG.normal(size=(4, 3)), RNG.normal(size=(3,)) * 0.1,
           RNG.normal(size=(3, 2)), RNG.normal(size=(2,)) * 0.1]


def numpy_gradients():
    wa, ba, wb, bb = WEIGHTS
    h = X @ wa + ba
    err = h @ wb + bb - Y
    d_out = 2 * err / err.size  # mean squared error over all elements
    d_h = d_out @ wb.T
    return [X.T @ d_h, d_h.sum(0), h.T @ d_out, d_out.sum(0)]


def clip_global(grads, c):
    total = np.sqrt(sum(np.sum(g**2) for g in grads))
    return [g * min(1.0, c / total) for g in grads]


def clip_per_tensor(grads, c):
    return [g * min(1.0, c / np.linalg.norm(g)) for g in grads]


def clip_value(grads, c):
    return [np.clip(g, -c, c) for g in grads]


GRADS = numpy_gradients()
NORMS = [np.linalg.norm(g) for g in GRADS]
C_NORM = float(0.5 * max(NORMS))  # some tensors above it, some below, and the global norm above
C_VALUE = float(0.5 * max(np.abs(g).max() for g in GRADS))
RULES = {
    "global_clipnorm": (clip_global, C_NORM),
    "clipnorm": (clip_per_tensor, C_NORM),
    "clipvalue": (clip_value, C_VALUE),
}


def test_the_example_separates_the_rules():
    assert min(NORMS) < C_NORM < max(NORMS) < np.sqrt(sum(n**2 for n in NORMS))
    per_tensor, global_ = clip_per_tensor(GRADS, C_NORM), clip_global(GRADS, C_NORM)
    assert not all(np.allclose(a, b) for a, b in zip(per_tensor, global_, strict=True))
    # Global clipping keeps the direction of the whole gradient; per-tensor does not.
    flat = np.concatenate([g.ravel() for g in GRADS])
    for clipped, keeps in [(global_, True), (per_tensor, False)]:
        c = np.concatenate([g.ravel() for g in clipped])
        cosine = c @ flat / np.linalg.norm(c) / np.linalg.norm(flat)
        assert bool(cosine > 1 - 1e-12) is keeps


@pytest.mark.parametrize("argument", sorted(RULES))
def test_one_sgd_step_applies_the_rule(argument):
    rule, c = RULES[argument]
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="a", kernel_initializer="zeros"),
                              L.Dense(2, name="b", kernel_initializer="zeros")])
    model.set_weights([w.astype("float32") for w in WEIGHTS])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0, **{argument: c}), loss="mse")
    model.fit(X.astype("float32"), Y.astype("float32"), batch_size=16, epochs=1, verbose=0,
              shuffle=False)
    expected = [w - g for w, g in zip(WEIGHTS, rule(GRADS, c), strict=True)]
    for got, want in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pytorch_clip_functions_are_the_global_and_value_rules(keras_backend):
    if keras_backend != "torch":
        pytest.skip("torch reference checked in the torch-backend run (importing torch into a "
                    f"{keras_backend} process costs ~10 s)")
    import torch

    def torch_clip(fn, c):
        params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in GRADS]
        for p, g in zip(params, GRADS, strict=True):
            p.grad = torch.tensor(g)
        fn(params, c)
        return [p.grad.numpy() for p in params]

    for got, want in zip(torch_clip(torch.nn.utils.clip_grad_norm_, C_NORM),
                         clip_global(GRADS, C_NORM), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)  # torch adds 1e-6 to the norm
    for got, want in zip(torch_clip(torch.nn.utils.clip_grad_value_, C_VALUE),
                         clip_value(GRADS, C_VALUE), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
