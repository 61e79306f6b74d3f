"""GradientHistogram: logged numbers against hand computations, no side effects, alerts."""

import os
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import GradientHistogram, plot_gradient_norms
from keras_recipes.callbacks.event_writer import EventWriter, read_histograms, read_scalars
from keras_recipes.callbacks.gradient_histogram import full_weight_paths
from keras_recipes.callbacks.plot_gradient_norms import layer_gradient_norms
from tests import processes
from tests.callbacks.unfreeze_at import UnfreezeAt

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _np(v):
    return np.array(keras.ops.convert_to_numpy(getattr(v, "value", v)))


def _mlp(name="net", sizes=(5, 4, 3)):
    layers = [keras.Input((sizes[0],))]
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        layers.append(keras.layers.Dense(units, activation=None if last else "tanh", name=f"d{i}"))
    return keras.Sequential(layers, name=name)


def _tags_by_step(scalars, prefix):
    out = {}
    for tag, values in scalars.items():
        if tag.startswith(prefix):
            for step, _ in values:
                out.setdefault(step, set()).add(tag[len(prefix):])
    return out


# ---------------------------------------------------------------- correctness
class _Snapshots(keras.callbacks.Callback):
    """Trainable weights before and after each step (self.model syncs the jax state)."""

    def __init__(self):
        super().__init__()
        self.snapshots = {}
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.snapshots[("before", self.step)] = [_np(v) for v in self.model.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        self.snapshots[("after", self.step)] = [_np(v) for v in self.model.trainable_weights]
        self.step += 1


def test_captured_norms_equal_the_sgd_update(tmp_path):
    """SGD(lr=1), one batch per step: the gradient IS W_before - W_after."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.integers(0, 3, size=8)
    model = _mlp()
    model.compile(optimizer=keras.optimizers.SGD(1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # A fit before: the train function exists already (jax must still retrace it).
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    record = _Snapshots()
    callback = GradientHistogram(tmp_path, every=1, bins=7, verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[record, callback])
    snapshots = record.snapshots
    assert callback.logged_steps == [3, 4]  # optimizer.iterations after each step

    scalars = read_scalars(tmp_path / "train")
    hists = read_histograms(tmp_path / "train")
    paths = [full_weight_paths(model)[id(v)] for v in model.trainable_weights]
    assert paths == ["net/d0/kernel", "net/d0/bias", "net/d1/kernel", "net/d1/bias"]
    for step in (3, 4):
        before, after = snapshots[("before", step - 3)], snapshots[("after", step - 3)]
        norms = []
        for path, w0, w1 in zip(paths, before, after, strict=True):
            update = w0 - w1  # = lr * grad with lr = 1
            got = dict(scalars[f"gradient_norm/{path}"])[step]
            np.testing.assert_allclose(got, np.linalg.norm(update), rtol=1e-5)
            norms.append(np.linalg.norm(update))
            ratio = dict(scalars[f"update_ratio/{path}"])[step]
            np.testing.assert_allclose(ratio, np.linalg.norm(w1 - w0) / np.linalg.norm(w1),
                                       rtol=1e-5)
            assert dict(scalars[f"nonfinite/{path}"])[step] == 0
            buckets = dict(hists[f"gradients/{path}"])[step]
            assert buckets.shape == (7, 3) and buckets[:, 2].sum() == w0.size
            np.testing.assert_allclose(buckets[0, 0], update.min(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(buckets[-1, 1], update.max(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dict(scalars["gradient_norm/global"])[step],
                                   np.sqrt(np.sum(np.square(norms))), rtol=1e-5)
    # Every trainable weight has every tag at every logged step.
    for prefix in ("gradient_norm/", "update_ratio/", "nonfinite/"):
        want = set(paths) | ({"global"} if prefix == "gradient_norm/" else set())
        assert _tags_by_step(scalars, prefix) == {3: want, 4: want}
    assert _tags_by_step(hists, "gradients/") == {3: set(paths), 4: set(paths)}


def test_probe_batch_matches_numpy_gradient_of_mse(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    px, py = x[:10], y[:10]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="lin")], name="net")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    callback = GradientHistogram(tmp_path, data=(px, py), include="*kernel", verbose=0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # moves the weights first
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    w, b = (_np(v) for v in model.layers[0].weights)
    residual = px @ w + b - py
    want = 2.0 / len(px) * px.T @ residual  # d/dW mean((xW + b - y)^2)
    scalars = read_scalars(tmp_path / "train")
    assert sorted(t for t in scalars if "/" in t and not t.startswith("gradient_norm_ratio")) == [
        "gradient_norm/global", "gradient_norm/net/lin/kernel",
        "nonfinite/net/lin/kernel", "update_ratio/net/lin/kernel",
    ]  # include="*kernel": no bias tags
    assert [s for s, _ in scalars["gradient_norm/net/lin/kernel"]] == [0, 1]  # epoch steps
    np.testing.assert_allclose(scalars["gradient_norm/net/lin/kernel"][-1][1],
                               np.linalg.norm(want), rtol=1e-5)


def test_every_n_with_probe_data_logs_at_training_steps(tmp_path):
    rng = np.random.default_rng(2)  # the model and shapes above: no new kernels to compile
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="lin")], name="net")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    callback = GradientHistogram(tmp_path, data=(x[:10], y[:10]), every=2, histograms=False,
                                 exclude=["*bias"], verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert callback.logged_steps == [2, 4]
    assert read_histograms(tmp_path / "train") == {}
    scalars = read_scalars(tmp_path / "train")
    assert [s for s, _ in scalars["gradient_norm/net/lin/kernel"]] == [2, 4]
    assert not any(t.endswith("bias") for t in scalars)


def _unknown_length_batches(x, y, batch_size):
    """Batches of a dataset whose number of batches Keras cannot know in advance."""
    if BACKEND == "torch":  # a torch IterableDataset (cheaper than starting tf.data here)
        import torch.utils.data

        class Batches(torch.utils.data.IterableDataset):
            def __iter__(self):
                for i in range(0, len(x), batch_size):
                    yield x[i:i + batch_size], y[i:i + batch_size]

        return torch.utils.data.DataLoader(Batches(), batch_size=None)
    import tensorflow as tf  # Keras takes tf.data on every backend

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).filter(lambda a, b: True)


def test_unknown_steps_per_epoch_captures_from_the_second_epoch(tmp_path):
    x = np.random.default_rng(6).normal(size=(12, 5)).astype("float32")
    y = np.zeros(12, "int32")
    data = _unknown_length_batches(x, y, 4)
    model = _mlp()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = GradientHistogram(tmp_path, verbose=0, histograms=False)
    with pytest.warns(RuntimeWarning, match="captured from the second epoch on"):
        model.fit(data, epochs=3, verbose=0, shuffle=False, callbacks=[callback])
    assert callback.logged_steps == [1, 2]  # epochs 1 and 2 (their last step)


# ------------------------------------------------------------ no side effects
def _bn_dropout_run(callback_factory, tmp_path):
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Dropout(0.4, seed=3),
        keras.layers.Dense(3),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 6)).astype("float32")
    y = rng.integers(0, 3, size=48)
    callbacks = callback_factory(x, y, tmp_path) if callback_factory else []
    history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:16], y[:16]),
                        verbose=0, callbacks=callbacks)
    # A later fit without the callbacks: the capture must be gone.
    later = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    state = [_np(v) for v in model.variables] + [_np(v) for v in model.optimizer.variables]
    return state, history.history, later.history, callbacks


def test_no_side_effects_bn_dropout(tmp_path):
    """Seeded BN + Dropout run: identical with the three modes at once, and without any."""
    reference = _bn_dropout_run(None, tmp_path)
    state, history, later, callbacks = _bn_dropout_run(
        lambda x, y, d: [
            GradientHistogram(d / "epoch", verbose=0),  # capture, last step of each epoch
            GradientHistogram(d / "every2", every=2, verbose=0),  # capture, every 2 steps
            GradientHistogram(d / "probe", data=(x[:10], y[:10]), verbose=0),  # probe batch
        ],
        tmp_path,
    )
    assert [c.logged_steps for c in callbacks] == [[0, 1], [2, 4, 6], [0, 1]]
    for got, want in zip(state, reference[0], strict=True):
        np.testing.assert_array_equal(got, want)
    assert history == reference[1] and later == reference[2]


# ------------------------------------------------------------------- alerts
def test_overflow_is_reported_as_nonfinite_and_stops(tmp_path):
    x = np.ones((12, 4), "float32")
    x[4:8] = 3e38  # the second batch overflows to inf in the first layer
    y = np.zeros((12, 1), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
                              keras.layers.Dense(1, name="b")], name="net")
    model.compile(optimizer="sgd", loss="mse")
    callback = GradientHistogram(tmp_path, every=1, stop_on_nonfinite=True, verbose=0)
    with pytest.warns(RuntimeWarning, match="non-finite gradient entries at step 2"):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    assert [a["kind"] for a in callback.alerts] == ["nonfinite"]
    assert callback.logged_steps == [1, 2]  # stopped after the bad step
    assert int(_np(model.optimizer.iterations)) == 2
    scalars = read_scalars(tmp_path / "train")
    hists = read_histograms(tmp_path / "train")
    bad = dict(scalars["nonfinite/net/a/kernel"])
    assert bad[1] == 0 and bad[2] > 0
    assert dict(scalars["alerts/nonfinite"]) == {2: callback.alerts[0]["value"]}
    for v in model.trainable_weights:
        path = full_weight_paths(model)[id(v)]
        counts = dict(hists[f"gradients/{path}"])[2][:, 2].sum()
        assert counts + dict(scalars[f"nonfinite/{path}"])[2] == np.prod(v.shape)  # none dropped


def _deep_mlp(activation, initializer, depth=20, width=16):
    layers = [keras.Input((width,))]
    for i in range(depth - 1):
        layers.append(keras.layers.Dense(width, activation=activation,
                                         kernel_initializer=initializer, name=f"h{i:02d}"))
    layers.append(keras.layers.Dense(1, name="out"))
    model = keras.Sequential(layers, name="deep")
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_vanishing_alert_sigmoid_vs_relu_he(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(32, 16)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    sigmoid = _deep_mlp("sigmoid", "glorot_uniform")
    callback = GradientHistogram(tmp_path / "sigmoid", verbose=0, histograms=False)
    with pytest.warns(RuntimeWarning, match="vanishing gradients"):
        sigmoid.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback])
    assert [a["kind"] for a in callback.alerts] == ["vanishing"]  # once, not once per epoch
    assert callback.alerts[0]["value"] < 1e-4
    relu = _deep_mlp("relu", "he_normal")
    calm = GradientHistogram(tmp_path / "relu", verbose=0, histograms=False)
    relu.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[calm])
    assert calm.alerts == []
    ratios = read_scalars(tmp_path / "relu" / "train")["gradient_norm_ratio/first_to_last"]
    assert all(r > 1e-2 for _, r in ratios)

    # The picture, and its numbers: layer norm = sqrt(sum of its weights' squared norms).
    png = plot_gradient_norms(tmp_path / "sigmoid", tmp_path / "norms.png", title="sigmoid")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    steps, norms = layer_gradient_norms(tmp_path / "sigmoid")
    scalars = read_scalars(tmp_path / "sigmoid" / "train")
    assert steps == [0, 1] and list(norms)[0] == "deep/h00" and list(norms)[-1] == "deep/out"
    k = dict(scalars["gradient_norm/deep/h00/kernel"])
    b = dict(scalars["gradient_norm/deep/h00/bias"])
    np.testing.assert_allclose(norms["deep/h00"], [np.hypot(k[s], b[s]) for s in steps],
                               rtol=1e-6)


def test_plot_of_a_folder_without_gradient_norms(tmp_path):
    """A run whose budget granted no gradient log: refused by name, or nothing with
    missing_ok (the recipe's report)."""
    with EventWriter(str(tmp_path / "logs" / "train")) as writer:
        writer.scalar("epoch_loss", 1.0, 0)  # other scalars only
    with pytest.raises(ValueError, match=r"`log_dir`.*gradient_norm.*none found"):
        plot_gradient_norms(tmp_path / "logs", tmp_path / "norms.png")
    assert plot_gradient_norms(tmp_path / "logs", tmp_path / "norms.png", missing_ok=True) is None
    assert plot_gradient_norms(tmp_path / "absent", tmp_path / "norms.png",
                               missing_ok=True) is None
    assert not (tmp_path / "norms.png").exists()


def test_layers_keep_model_order_when_the_head_was_logged_alone_first(tmp_path):
    """Transfer learning: the head's gradients are logged alone (backbone frozen), then the
    backbone's with it. The head is the output layer: last in depth order, whatever came
    first in the file."""
    with EventWriter(str(tmp_path / "train")) as writer:
        writer.scalar("gradient_norm/net/head/kernel", 4.0, 0)
        writer.scalar("gradient_norm/net/head/bias", 3.0, 0)
        for tag, value in (("net/conv1/kernel", 0.5), ("net/conv2/kernel", 1.0),
                           ("net/head/kernel", 2.0)):
            writer.scalar("gradient_norm/" + tag, value, 10)
        writer.scalar("gradient_norm/net/stem/kernel", 0.1, 11)  # before conv1 there
        writer.scalar("gradient_norm/net/conv1/kernel", 0.2, 11)
        writer.scalar("gradient_norm/net/extra/kernel", 1.5, 12)  # alone: no place known
    steps, norms = layer_gradient_norms(tmp_path)
    assert steps == [0, 10, 11, 12]
    assert list(norms) == ["net/stem", "net/conv1", "net/conv2", "net/head", "net/extra"]
    np.testing.assert_allclose(norms["net/head"], [5.0, 2.0, np.nan, np.nan])  # sqrt(4²+3²)
    np.testing.assert_allclose(norms["net/conv1"], [np.nan, 0.5, 0.2, np.nan])


def test_exploding_alert_once(tmp_path, capsys):
    x = np.ones((8, 5), "float32")
    model = _mlp()
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = GradientHistogram(tmp_path, exploding_norm=1e-6, vanishing_ratio=None)
    with pytest.warns(RuntimeWarning, match="exploding gradients"):
        model.fit(x, np.zeros(8), batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert [a["kind"] for a in callback.alerts] == ["exploding"]
    assert capsys.readouterr().out.count("exploding gradients") == 1  # verbose=1 prints


# ---------------------------------------------- weights unfrozen mid-fit, nested paths


@pytest.mark.parametrize("data", [False, True], ids=["capture", "probe"])
def test_weights_unfrozen_mid_fit_are_picked_up(tmp_path, data):
    inp = keras.Input((4,))
    backbone = keras.Model(inp, keras.layers.Dense(3, name="fc")(inp), name="backbone")
    backbone.trainable = False
    outer_in = keras.Input((4,))
    model = keras.Model(outer_in, keras.layers.Dense(1, name="head")(backbone(outer_in)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(5).normal(size=(16, 4)).astype("float32")
    y = np.ones((16, 1), "float32")
    callback = GradientHistogram(tmp_path, data=(x, y) if data else None, verbose=0)
    fc_kernel = backbone.layers[1].kernel
    before = _np(fc_kernel)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[callback, UnfreezeAt(1, backbone, 0.1)])
    assert not np.array_equal(_np(fc_kernel), before)  # it did train after unfreezing
    scalars = read_scalars(tmp_path / "train")
    by_step = _tags_by_step(scalars, "gradient_norm/")
    assert by_step[0] == {"global", "head/kernel", "head/bias"}
    assert by_step[1] == {
        "global", "head/kernel", "head/bias", "backbone/fc/kernel", "backbone/fc/bias"
    }
    ratios = _tags_by_step(scalars, "update_ratio/")  # measured from the unfreezing on
    assert ratios[1] == by_step[1] - {"global"}
    assert dict(scalars["update_ratio/backbone/fc/kernel"])[1] > 0


# ------------------------------------------------------------ TensorFlow-free
@pytest.mark.skipif(BACKEND == "tensorflow",
                    reason="TensorFlow is this process's Keras backend: it cannot be blocked")
def test_works_with_tensorflow_not_importable(tmp_path):
    script = textwrap.dedent(f"""
        import importlib.machinery, sys
        class Block:  # as if TensorFlow were not installed: every import of it fails
            def find_spec(self, name, path=None, target=None):
                if name == "tensorflow" or name.startswith("tensorflow."):
                    return importlib.machinery.ModuleSpec(name, self)
            def create_module(self, spec):
                raise ImportError(f"No module named {{spec.name!r}} (blocked by the test)")
            def exec_module(self, module):
                pass
        sys.meta_path.insert(0, Block())
        import keras, numpy as np
        from keras_recipes.callbacks import GradientHistogram, plot_gradient_norms
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="m")
        model.compile(optimizer="sgd", loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[GradientHistogram({str(tmp_path)!r})])
        plot_gradient_norms({str(tmp_path)!r}, {str(tmp_path / "n.png")!r})
        # TensorBoard's own reader (its TF stub, since TF is blocked) reads our events.
        from tensorboard.backend.event_processing import event_accumulator
        acc = event_accumulator.EventAccumulator({str(tmp_path / "train")!r},
                                                 size_guidance={{"tensors": 0, "scalars": 0}})
        acc.Reload()
        tags = acc.Tags()
        assert set(tags["tensors"]) == {{"gradients/m/d/kernel", "gradients/m/d/bias"}}, tags
        assert "gradient_norm/global" in tags["scalars"], tags
        assert [e.step for e in acc.Scalars("gradient_norm/global")] == [0, 1]
        assert acc.SummaryMetadata("gradients/m/d/kernel").plugin_data.plugin_name == "histograms"
        assert "tensorflow" not in sys.modules
        # keras.callbacks.TensorBoard needs TensorFlow even here (keras-team/keras#19121).
        try:
            model.fit(x, y, epochs=1, verbose=0,
                      callbacks=[keras.callbacks.TensorBoard({str(tmp_path / "tb")!r})])
        except ImportError as e:
            assert "tensorflow" in str(e), e
        else:
            raise AssertionError("keras.callbacks.TensorBoard worked without TensorFlow")
        print("OK")
    """)
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=ROOT)
    out = processes.run([sys.executable, "-c", script], env=env, capture_output=True,
                        text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="tf.distribute strategies exist only on the TensorFlow backend")
def test_plain_tf_distribute_captures_the_summed_gradients_and_probe_works(tmp_path):
    """Keras's own fit in a MirroredStrategy scope (no keras_recipes.distribute), 2 replicas.

    Each replica's optimizer receives its partial gradient; the capture reads the sum over
    replicas the update applies: every norm and histogram equals the one-device run's, the
    weights are bitwise those of the same run without the callback, and an optimizer that
    clips (Keras clips each replica's part) is refused by name.
    """
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras, numpy as np
        from keras_recipes.callbacks import GradientHistogram
        from keras_recipes.callbacks.event_writer import read_scalars
        from tests.callbacks.gradient_logs import MLP_NORM_TAGS, assert_same_gradient_logs
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 3)).astype("float32")
        y = rng.normal(size=(16, 2)).astype("float32")
        init = [rng.normal(size=s).astype("float32") for s in ((3, 4), (4,), (4, 2), (2,))]

        def build(devices, **optimizer):
            with tf.distribute.MirroredStrategy(devices).scope():
                model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
                    4, activation="tanh", name="a"), keras.layers.Dense(2, name="d")], name="m")
                for w, v in zip(model.weights, init):
                    w.assign(v)
                model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, **optimizer),
                              loss="mse")
            return model

        def fit(model, callbacks):
            model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                      callbacks=callbacks)
            return [np.asarray(w.numpy()) for w in model.weights]

        weights = {{}}
        for n, devices in ((2, ["/cpu:0", "/cpu:1"]), (1, ["/cpu:0"])):
            capture = GradientHistogram({str(tmp_path)!r} + f"/{{n}}", verbose=0)
            weights[n] = fit(build(devices), [capture])
            assert capture.logged_steps == [0, 1], capture.logged_steps
        assert_same_gradient_logs({str(tmp_path)!r} + "/2/train", {str(tmp_path)!r} + "/1/train",
                                  MLP_NORM_TAGS, [0, 1])
        # Two replicas without the callback: bitwise the same weights.
        for a, b in zip(fit(build(["/cpu:0", "/cpu:1"]), []), weights[2], strict=True):
            np.testing.assert_array_equal(a, b)
        try:
            fit(build(["/cpu:0", "/cpu:1"], clipnorm=1.0),
                [GradientHistogram({str(tmp_path)!r} + "/clip", verbose=0)])
        except ValueError as e:
            assert "clipnorm=1.0" in str(e) and "setup('mirrored')" in str(e), e
            assert "data=(x, y)" in str(e), e
        else:
            raise AssertionError("no error")
        # A probe batch inside the scope: Keras's 1/N loss scaling undone (NumPy reference).
        model = build(["/cpu:0", "/cpu:1"])
        probe = GradientHistogram({str(tmp_path)!r} + "/probe", data=(x, y), verbose=0)
        model.fit(x, y, batch_size=8, verbose=0, callbacks=[probe])
        assert probe.logged_steps == [0], probe.logged_steps
        w, b = (np.asarray(v.numpy(), "float64") for v in model.get_layer("d").weights)
        h = np.tanh(x @ model.get_layer("a").weights[0].numpy()
                    + model.get_layer("a").weights[1].numpy())
        want = 2.0 / y.size * h.T @ (h @ w + b - y)  # d/dW mean((hW + b - y)^2)
        got = read_scalars({str(tmp_path)!r} + "/probe/train")["gradient_norm/m/d/kernel"]
        np.testing.assert_allclose(got[0][1], np.linalg.norm(want), rtol=1e-5)
        print("OK")
    """)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=ROOT)
    out = processes.run([sys.executable, "-c", script], env=env, capture_output=True,
                        text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


@pytest.mark.skipif(BACKEND != "jax",
                    reason="keras.distribution runs on the jax backend only")
def test_plain_keras_distribution_data_parallel_captures_the_global_gradients(tmp_path):
    """Keras's own fit under keras.distribution.DataParallel over 2 XLA host devices."""
    script = textwrap.dedent(f"""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, keras, numpy as np
        assert jax.device_count() == 2
        from keras_recipes.callbacks import GradientHistogram
        from tests.callbacks.gradient_logs import MLP_NORM_TAGS, assert_same_gradient_logs
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 3)).astype("float32")
        y = rng.normal(size=(16, 2)).astype("float32")
        init = [rng.normal(size=s).astype("float32") for s in ((3, 4), (4,), (4, 2), (2,))]
        for n in (2, 1):
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=jax.devices()[:2]) if n == 2 else None)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
                4, activation="tanh", name="a"), keras.layers.Dense(2, name="d")], name="m")
            for w, v in zip(model.weights, init):
                w.assign(v)
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
            capture = GradientHistogram({str(tmp_path)!r} + f"/{{n}}", verbose=0)
            model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                      callbacks=[capture])
            assert capture.logged_steps == [0, 1], capture.logged_steps
        assert_same_gradient_logs({str(tmp_path)!r} + "/2/train", {str(tmp_path)!r} + "/1/train",
                                  MLP_NORM_TAGS, [0, 1])
        print("OK")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    out = processes.run([sys.executable, "-c", script], env=env, capture_output=True,
                        text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-3000:]


def _python_dispatches(run) -> int:
    """How many jitted calls `run()` made through jax's Python dispatch (pjit's cache_miss)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).stats
    return sum(calls[0] for (_, _, name), calls in stats.items() if name == "cache_miss")


@pytest.mark.skipif(BACKEND != "jax", reason="jax's C++ dispatch fast path: jax only")
def test_jax_ordinary_steps_keep_the_fast_dispatch_path(tmp_path):
    """A jitted step holding a host callback is dispatched in Python at every call: only
    the captured step runs the capturing function, the others a plain compiled step."""
    import jax

    reference = jax.jit(lambda a: (jax.debug.callback(lambda v: None, a), a + 1)[1])
    reference(np.ones(3))
    assert _python_dispatches(lambda: [reference(np.ones(3)) for _ in range(5)]) >= 5

    model = _mlp()
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    y = np.zeros((32, 3), "float32")
    callback = GradientHistogram(tmp_path, verbose=0)

    def fit():
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False, callbacks=[callback])

    fit()  # compiles
    # 16 steps; Python dispatch for the two captured steps and the first call of the plain
    # step (a new trace each fit), not for the 13 others.
    assert _python_dispatches(fit) <= 4
    assert callback.logged_steps == [0, 1]
    got = read_scalars(tmp_path / "train")["gradient_norm/global"]
    assert [step for step, _ in got][-2:] == [0, 1]


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="keras.callbacks.TensorBoard needs TensorFlow; under torch and jax "
                           "test_works_with_tensorflow_not_importable shows it fails without it")
def test_keras_tensorboard_logs_weight_histograms_only(tmp_path):
    """The peer fault: histogram_freq=1 logs weights, never gradients (tensorflow#31173)."""
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 5), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(tmp_path / "keras", histogram_freq=1, write_graph=False),
        GradientHistogram(tmp_path / "ours", verbose=0)])
    theirs = set(read_histograms(tmp_path / "keras" / "train"))
    assert theirs and all("grad" not in tag for tag in theirs)
    assert len(theirs) == len(model.weights)  # one per weight: the weights themselves
    ours = set(read_histograms(tmp_path / "ours" / "train"))
    assert ours == {f"gradients/net/{p}" for p in
                    ("d0/kernel", "d0/bias", "d1/kernel", "d1/bias")}


# ---------------------------------------------------------------- arguments
def test_config_round_trip(tmp_path):
    callback = GradientHistogram(tmp_path, every=5, bins=12, include=["*kernel"],
                                 exclude="head/*", exploding_norm=10.0, verbose=0)
    config = callback.get_config()
    assert GradientHistogram.from_config(config).get_config() == config
    assert config["include"] == ["*kernel"] and config["exclude"] == ["head/*"]
    assert keras.saving.get_registered_object("keras_recipes>GradientHistogram") is \
        GradientHistogram
    # every="epoch" defines no batch-end hook: Keras keeps its asynchronous batch-end
    # dispatch (TensorFlow, jax); only every=N needs one.
    default = GradientHistogram(tmp_path)
    assert type(default).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    assert "on_train_batch_end" not in vars(default)
    assert vars(callback)["on_train_batch_end"] == callback._log_every_n


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(log_dir=""), "`log_dir`. Expected a non-empty path"),
        (dict(every=0), "`every`. Expected 'epoch' or an int >= 1"),
        (dict(every="batch"), "`every`. Expected 'epoch' or an int >= 1"),
        (dict(bins=0), "`bins`. Expected an int >= 1"),
        (dict(include=3), "`include`. Expected None, a glob pattern"),
        (dict(exclude=[1]), "`exclude`. Expected None, a glob pattern"),
        (dict(vanishing_ratio=-1.0), "`vanishing_ratio`. Expected None or a float > 0"),
        (dict(exploding_norm=0), "`exploding_norm`. Expected None or a float > 0"),
        (dict(data=(np.ones(3),)), "`data`. Expected None, \\(x, y\\)"),
        (dict(verbose=2), "`verbose`. Expected 0 or 1"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    kwargs = {"log_dir": str(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=match):
        GradientHistogram(**kwargs)


def test_bad_data_batches_raise_at_train_begin(tmp_path):
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="`data`. Expected None"):
        GradientHistogram(tmp_path, data=[np.ones((2, 5))] * 4)
    callback = GradientHistogram(tmp_path, data=iter([np.ones((2, 5))]))
    callback.set_model(model)
    with pytest.raises(ValueError, match="batches must be \\(x, y\\)"):
        callback.on_train_begin()
