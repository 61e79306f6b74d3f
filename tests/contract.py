"""Shared contract checks for keras_recipes layers, initializers and regularizers.

Keras's own ``run_layer_test`` is private; this is ours. Every layer,
initializer and regularizer of the package goes through one of these helpers:

- ``run_layer_test``: config round trip, ``.keras`` save/reload (same process,
  and reload under another backend in a subprocess), symbolic vs eager output
  shapes, one ``fit`` step, and a mixed-precision policy check.
- ``run_initializer_test``: config round trip, serialization, seeded
  reproducibility, and the values after reloading from config.
- ``run_regularizer_test``: config round trip, serialization, and the penalty
  against a NumPy reference.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np

import keras_recipes  # noqa: F401  (registers the serializable classes)
from tests import processes

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "tensorflow", "jax")


def other_backend(backend: str | None = None) -> str:
    """The next backend in the cycle torch -> tensorflow -> jax -> torch."""
    backend = backend or keras.backend.backend()
    return BACKENDS[(BACKENDS.index(backend) + 1) % len(BACKENDS)]


def _to_numpy(structure):
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def _flat(structure):
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(structure)]


def assert_config_round_trip(obj, cls=None) -> dict:
    """from_config(get_config()) gives the same config, and the config is JSON-able."""
    cls = cls or type(obj)
    config = obj.get_config()
    json.dumps(config)
    clone = cls.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(obj), (type(revived), type(obj))
    assert revived.get_config() == config
    return config


def _call(layer, inputs, **kwargs):
    if isinstance(inputs, tuple):
        return layer(*inputs, **kwargs)
    return layer(inputs, **kwargs)


def _functional(layer, input_data):
    if isinstance(input_data, tuple):
        inputs = tuple(
            keras.Input(shape=np.shape(a)[1:], batch_size=None, dtype=str(np.asarray(a).dtype))
            for a in input_data
        )
        outputs = layer(*inputs)
        model_inputs = list(inputs)
    else:
        arr = np.asarray(input_data)
        inputs = keras.Input(shape=arr.shape[1:], dtype=str(arr.dtype))
        outputs = layer(inputs)
        model_inputs = inputs
    return keras.Model(model_inputs, outputs)


def _model_args(input_data):
    return list(input_data) if isinstance(input_data, tuple) else input_data


def reload_in_backend(model_path: Path, inputs_path: Path, backend: str) -> list[np.ndarray]:
    """Loads a `.keras` file in a fresh process under `backend`; returns its predictions."""
    out_path = Path(str(inputs_path) + f".{backend}.npz")
    code = textwrap.dedent(
        f"""
        import numpy as np, keras, keras_recipes
        data = np.load({str(inputs_path)!r})
        xs = [data[k] for k in sorted(data.files)]
        model = keras.saving.load_model({str(model_path)!r})
        y = model(xs if len(xs) > 1 else xs[0], training=False)
        flat = [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(y)]
        np.savez({str(out_path)!r}, *flat)
        """
    )
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = processes.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"reload under {backend} failed:\n{proc.stderr[-3000:]}"
    data = np.load(out_path)
    return [data[f"arr_{i}"] for i in range(len(data.files))]


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    *,
    call_kwargs: dict | None = None,
    expected_output=None,
    expected_output_shape=None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    tmp_path: Path | None = None,
    cross_backend: bool = True,
    run_fit: bool = True,
    mixed_precision: tuple[str, ...] = ("mixed_float16", "mixed_bfloat16"),
    output_dtypes_under_policy=None,
):
    """Runs the layer contract; returns the eager output in inference mode.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_data: a NumPy array, or a tuple of arrays passed positionally.
        call_kwargs: extra call arguments for the eager call.
        expected_output: optional reference (structure of arrays) for the eager
            inference-mode output.
        expected_output_shape: optional expected shape(s) of the output.
        tmp_path: folder for the saved files (pytest's ``tmp_path``).
        cross_backend: also reload the saved model under another backend.
        run_fit: train one step of a model that contains the layer.
        mixed_precision: policies under which the layer must run; inputs are
            the same and variables stay float32.
        output_dtypes_under_policy: callable(policy_name) -> list of expected
            output dtypes (default: floating outputs take the compute dtype).
    """
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)

    # 1. Config round trip and serialization.
    assert_config_round_trip(layer, layer_cls)

    # 2. Eager output, symbolic output spec.
    out = _call(layer, input_data, **call_kwargs)
    flat_out = _flat(out)
    if expected_output is not None:
        for got, want in zip(flat_out, keras.tree.flatten(expected_output), strict=True):
            np.testing.assert_allclose(got, np.asarray(want), rtol=rtol, atol=atol)
    if expected_output_shape is not None:
        shapes = [tuple(a.shape) for a in flat_out]
        want = expected_output_shape
        want = [tuple(want)] if isinstance(want[0], int) else [tuple(s) for s in want]
        assert shapes == want, (shapes, want)
    if isinstance(input_data, tuple):
        sym_in = tuple(keras.KerasTensor(np.shape(a), dtype=str(np.asarray(a).dtype))
                       for a in input_data)
    else:
        sym_in = keras.KerasTensor(np.shape(input_data), dtype=str(np.asarray(input_data).dtype))
    spec = layer_cls(**init_kwargs).compute_output_spec(
        *(sym_in if isinstance(sym_in, tuple) else (sym_in,)), **call_kwargs
    )
    spec_flat = keras.tree.flatten(spec)
    assert [tuple(s.shape) for s in spec_flat] == [tuple(a.shape) for a in flat_out], (
        [s.shape for s in spec_flat], [a.shape for a in flat_out])
    assert [keras.backend.standardize_dtype(s.dtype) for s in spec_flat] == [
        keras.backend.standardize_dtype(a.dtype) for a in flat_out
    ]

    # 3. .keras save and reload, here and under another backend.
    if tmp_path is not None:
        model = _functional(layer_cls(**init_kwargs), input_data)
        before = _flat(model.predict(_model_args(input_data), verbose=0))
        path = Path(tmp_path) / f"{layer_cls.__name__}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
        after = _flat(reloaded.predict(_model_args(input_data), verbose=0))
        for a, b in zip(before, after, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        if cross_backend:
            inputs_path = Path(tmp_path) / f"{layer_cls.__name__}_inputs.npz"
            arrays = input_data if isinstance(input_data, tuple) else (input_data,)
            np.savez(inputs_path, **{f"x{i:02d}": np.asarray(a) for i, a in enumerate(arrays)})
            other = reload_in_backend(path, inputs_path, other_backend())
            for a, b in zip(before, other, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    # 4. One fit step of a model containing the layer (training=True path).
    if run_fit:
        model = _functional(layer_cls(**init_kwargs), input_data)
        first = keras.tree.flatten(model.outputs)[0]
        head = keras.layers.Dense(1, name="contract_head")
        pred = head(keras.layers.Flatten()(keras.ops.cast(first, "float32")))
        train_model = keras.Model(model.inputs, pred)
        train_model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        n = len(keras.tree.flatten(input_data)[0])
        target = np.ones((n, 1), "float32")
        w0 = keras.ops.convert_to_numpy(head.kernel).copy()
        hist = train_model.fit(_model_args(input_data), target, epochs=1, batch_size=n, verbose=0)
        assert np.isfinite(hist.history["loss"][0])
        assert not np.array_equal(w0, keras.ops.convert_to_numpy(head.kernel)), "no update"

    # 5. Mixed precision.
    for policy in mixed_precision:
        mp_layer = layer_cls(**init_kwargs, dtype=policy)
        mp_out = _flat(_call(mp_layer, input_data, **call_kwargs))
        compute = keras.DTypePolicy(policy).compute_dtype
        if output_dtypes_under_policy is not None:
            want = list(output_dtypes_under_policy(policy))
        else:
            want = [compute if np.issubdtype(a.dtype, np.floating) else str(a.dtype)
                    for a in flat_out]
        got = [keras.backend.standardize_dtype(a.dtype) for a in mp_out]
        assert got == want, (policy, got, want)
        for v in mp_layer.weights:
            assert keras.backend.standardize_dtype(v.dtype) == "float32", (policy, v.path)
        for a in mp_out:
            if np.issubdtype(a.dtype, np.floating) or a.dtype.name == "bfloat16":
                assert np.all(np.isfinite(a.astype("float32"))), policy
    return out


def run_initializer_test(initializer, shape=(64, 32)):
    """Config round trip, serialization, seeded determinism, reload from config."""
    config = assert_config_round_trip(initializer)
    values = np.asarray(keras.ops.convert_to_numpy(initializer(shape)))
    assert values.shape == tuple(shape)
    assert np.all(np.isfinite(values))
    if config.get("seed") is not None:
        clone = type(initializer).from_config(config)
        again = np.asarray(keras.ops.convert_to_numpy(clone(shape)))
        np.testing.assert_array_equal(values, again)
    layer = keras.layers.Dense(shape[-1], kernel_initializer=initializer)
    layer.build((None, shape[0]))
    reloaded = keras.layers.Dense.from_config(layer.get_config())
    assert type(reloaded.kernel_initializer) is type(initializer)
    return values


def run_regularizer_test(regularizer, weight: np.ndarray, expected: float, rtol: float = 1e-6):
    """Config round trip, serialization, and the penalty against a NumPy reference."""
    assert_config_round_trip(regularizer)
    got = float(keras.ops.convert_to_numpy(regularizer(keras.ops.convert_to_tensor(weight))))
    np.testing.assert_allclose(got, expected, rtol=rtol)
    return got
