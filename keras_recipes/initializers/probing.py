"""Outputs of every layer of a Functional/Sequential model on a batch (shared by `lsuv` and
`initialization_report`).

Nested Functional/Sequential models are entered: their layers are listed (as
``outer/inner``) instead of the nested model itself. Layer outputs are computed
with small extractor models built on the existing graph, in inference mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

__all__ = ["Extractors", "LayerSite", "all_site_outputs", "layer_sites", "site_output"]


@dataclass(frozen=True)
class LayerSite:
    """A leaf layer and the chain of graph models that contain it (outermost first)."""

    path: str
    layer: keras.layers.Layer
    containers: tuple


def _is_graph_model(layer) -> bool:
    if not isinstance(layer, keras.Model):
        return False
    try:
        return bool(layer.inputs) and bool(layer.outputs)
    except (AttributeError, ValueError):
        return False


def check_graph_model(model) -> None:
    if not _is_graph_model(model):
        raise ValueError(
            "Invalid value for argument `model`. Expected a built Functional or Sequential "
            f"keras.Model (with inputs and outputs). Received: model={model!r}"
        )


def layer_sites(model) -> list[LayerSite]:
    """Leaf layers in topological order (InputLayers left out)."""
    check_graph_model(model)
    sites: list[LayerSite] = []

    def visit(container, chain, prefix):
        for layer in container.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if _is_graph_model(layer):
                visit(layer, (*chain, layer), f"{prefix}{layer.name}/")
            else:
                sites.append(LayerSite(prefix + layer.name, layer, chain))

    visit(model, (model,), "")
    return sites


def _single(structure):
    if isinstance(structure, (list, tuple)) and len(structure) == 1:
        return structure[0]
    return structure


def _node_input(layer):
    try:
        return layer.input
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Layer {layer.name!r} is called at more than one place (or never) in the graph; "
            "its output on the batch is not defined."
        ) from error


def _node_output(layer):
    try:
        return layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Layer {layer.name!r} is called at more than one place (or never) in the graph; "
            "its output on the batch is not defined."
        ) from error


class Extractors:
    """Extractor models on an existing graph, built once and reused."""

    def __init__(self):
        self._cache: dict = {}

    def __call__(self, container, targets: tuple, x):
        key = (id(container), tuple(id(t) for t in targets))
        if key not in self._cache:
            self._cache[key] = keras.Model(_single(container.inputs), list(targets))
        outputs = self._cache[key](x, training=False)
        # Keras returns a bare tensor for a one-output model.
        return [outputs] if len(targets) == 1 else list(outputs)



def _to_numpy(t) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


def site_output(site: LayerSite, x, extractors: Extractors | None = None) -> np.ndarray:
    """The site's layer output on `x` (the outer model's input), with current weights."""
    extractors = extractors or Extractors()
    h = x
    for outer, inner in zip(site.containers[:-1], site.containers[1:], strict=True):
        h = extractors(outer, (_single(_node_input(inner)),), h)[0]
    out = extractors(site.containers[-1], (_node_output(site.layer),), h)[0]
    return _to_numpy(out)


def all_site_outputs(model, x) -> dict[str, np.ndarray]:
    """Every site's output on `x`, one extractor per (nested) model."""
    sites = layer_sites(model)
    extractors = Extractors()
    results: dict[str, np.ndarray] = {}

    def run(container, h, chain):
        mine = [s for s in sites if s.containers == chain]
        subs = [layer for layer in container.layers if _is_graph_model(layer)]
        targets = tuple(_node_output(s.layer) for s in mine) + tuple(
            _single(_node_input(sub)) for sub in subs
        )
        if not targets:
            return
        outs = extractors(container, targets, h)
        for site, out in zip(mine, outs[: len(mine)], strict=True):
            results[site.path] = _to_numpy(out)
        for sub, sub_in in zip(subs, outs[len(mine):], strict=True):
            run(sub, sub_in, (*chain, sub))

    run(model, x, (model,))
    return {s.path: results[s.path] for s in sites}
