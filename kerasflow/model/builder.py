"""Spec graph -> Keras functional model.

Nodes are built in dependency order; a layer node becomes one Keras layer named
after the node, a block node several layers named `<node>.<part>`. The model
takes one raw `keras.Input` per feature (named after it) and returns a dict
keyed by target name, so exported signatures have named inputs and outputs.
Errors raised by Keras while building name the node's spec path and shapes.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from kerasflow.spec.registry import BLOCKS, LAYERS, LayerNode, NodeSpec
from kerasflow.spec.base import TuneBool, TuneChoice, TuneFloat, TuneInt
from kerasflow.spec.errors import Problem, SpecError, join_path, locate
from kerasflow.spec.imports import import_modules

_MARKERS = (TuneInt, TuneFloat, TuneChoice, TuneBool)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NDIM = re.compile(r"expected (min_|max_)?ndim=(\d+), found ndim=\d+\. Full shape received: (\([^)]*\))")


@dataclass(frozen=True)
class BuiltGraph:
    """A built model plus, per node, its output tensor and spec path."""

    model: Any  # keras.Model
    tensors: dict[str, Any] = field(repr=False)
    paths: dict[str, str]
    kinds: dict[str, str]


def build_model(spec, stats: dict | None = None, *, input_tensors=None, locs=None):
    """Build the `keras.Model` of a validated `Spec` (or `LoadedSpec`).

    Args:
        spec: The validated spec; every `{tune: ...}` marker must be resolved.
        stats: Precomputed feature statistics/vocabularies for
            `kerasflow.data.features.build_inputs` (None: plan mode, no data).
        input_tensors: `(raw, preprocessed)` dicts of tensors per feature to
            use instead of building inputs from the data section (a single
            dict means raw == preprocessed).
        locs: Spec source locations, so errors name `file:line:col`.
    """
    return build_graph(spec, stats, input_tensors=input_tensors, locs=locs).model


def build_graph(spec, stats: dict | None = None, *, input_tensors=None, locs=None) -> BuiltGraph:
    """Like `build_model`, also returning each node's output tensor."""
    import keras

    locs = locs if locs is not None else getattr(spec, "locs", None) or {}
    spec = getattr(spec, "spec", spec)
    problems = unresolved_markers(spec, locs)
    if problems:
        raise SpecError(problems)
    import_modules(spec.model.imports, locs)
    keras.utils.set_random_seed(spec.seed)

    names = spec.model.inputs if spec.model.inputs is not None else list(spec.data.features)
    raw, processed = _inputs(spec, stats, names, input_tensors)
    graph = spec.model.graph(default_input=names[0] if len(names) == 1 else None)
    section = "nodes" if spec.model.nodes is not None else "sequential"
    keys = list(graph)
    env: dict[str, Any] = dict(processed)
    paths, kinds = {}, {}
    for name in _topological(graph, names):
        node = graph[name]
        path = ("model", "nodes", name) if section == "nodes" else ("model", "sequential", keys.index(name))
        paths[name], kinds[name] = join_path(path), _kind(node)
        env[name] = build_node(node, [env[ref] for _, ref in node.references()], name, path=path, locs=locs)

    outputs = {target: _denormalize(_float32(env[node], target), target, stats)
               for target, node in _outputs(spec, keys).items()}
    model = keras.Model(inputs={n: raw[n] for n in names}, outputs=outputs, name=spec.name)
    return BuiltGraph(model=model, tensors={n: env[n] for n in graph}, paths=paths, kinds=kinds)


def build_node(node: NodeSpec, inputs: list, name: str, path: tuple | None = None, locs=None):
    """Build one node on its input tensors. With `path`, Keras errors become a
    `SpecError` at that spec path (block build functions call this without one)."""
    kind = _kind(node)
    try:
        if isinstance(node, LayerNode):
            layer = _instantiate(node, name)
            call = getattr(node, "call", None)
            return call(layer, inputs) if call else layer(inputs[0] if len(inputs) == 1 else inputs)
        return BLOCKS[node.block].resolve()(node, inputs, name)
    except SpecError:
        raise
    except Exception as exc:  # Keras raises ValueError/TypeError/TF errors: report them at the node
        if path is None:
            raise
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise SpecError(Problem(
            path=join_path(path), message=f"{kind}: {_explain(exc)}",
            received=f"input shape{'s' if len(inputs) != 1 else ''} {shapes}", location=locate(locs or {}, path),
        )) from exc


def node_layers(model, node: str) -> list:
    """The Keras layers built for graph node `node` (its own, or `<node>.*` for blocks)."""
    return [layer for layer in model.layers if layer.name == node or layer.name.startswith(node + ".")]


def unresolved_markers(spec, locs=None) -> list[Problem]:
    """A problem per `{tune: ...}` marker left in the model or the features."""
    found: list[tuple] = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, _MARKERS):
            found.append(path)
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                walk(getattr(value, key), path + (key,))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, path + (i,))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, path + (key,))

    walk(spec.model, ("model",))
    walk(spec.data.features, ("data", "features"))
    return [Problem(path=join_path(p), message="unresolved `tune:` marker: a model is built from values",
                    hint="run `kerasflow tune` (it fills markers per trial) or set a value, e.g. "
                         f"--set {join_path(p)}=...", location=locate(locs or {}, p)) for p in found]


def plain_input(name: str, feature):
    """A raw `keras.Input` for a feature, without preprocessing; the same
    shapes and dtypes `kerasflow.data.features` gives raw inputs."""
    import keras

    kind = feature.type
    if kind == "numeric":
        shape, dtype = tuple(feature.shape), feature.dtype
    elif kind == "image":
        shape, dtype = (feature.height, feature.width, feature.channels), "float32"
    elif kind == "timeseries":
        channels = len(feature.column) if isinstance(feature.column, list) else 1
        shape, dtype = (feature.input_width, channels), "float32"
    elif kind == "sequence":
        shape, dtype = (None if feature.variable_length else feature.length,), "int32"
    elif kind == "category":
        shape, dtype = (1,), "string" if feature.dtype == "string" else "int64"
    else:  # text
        shape, dtype = (1,), "string"
    return keras.Input(shape=shape, dtype=dtype, name=name)


# ---------------------------------------------------------------- helpers


def _kind(node: NodeSpec) -> str:
    return getattr(node, "layer", None) or getattr(node, "block")


def _instantiate(node: LayerNode, name: str):
    cls = LAYERS[node.layer].resolve()
    kwargs = {k: _instantiate(v, f"{name}.{v.layer}") if isinstance(v, LayerNode) else v
              for k, v in node.params().items()}
    trainable = kwargs.pop("trainable", True)  # some layers (e.g. Discretization) reject it as an argument
    layer = cls(name=name, **kwargs)
    if not trainable:
        layer.trainable = False
    return layer


def _inputs(spec, stats, names, given) -> tuple[dict, dict]:
    if given is not None:
        raw, processed = given if isinstance(given, tuple) else (given, given)
    else:
        build_inputs = _data_build_inputs()
        if build_inputs is not None:
            raw, processed = build_inputs(spec.data, stats, feature_names=names)
        else:
            raw = processed = {n: plain_input(n, spec.data.features[n]) for n in names}
    missing = [n for n in names if n not in raw or n not in processed]
    if missing:
        raise SpecError(Problem(path="model.inputs", message="no input tensor for feature(s) " + ", ".join(missing)))
    return raw, processed


def _data_build_inputs():
    """`kerasflow.data.features.build_inputs` when the data package provides it."""
    try:
        module = importlib.import_module("kerasflow.data.features")
    except ModuleNotFoundError as exc:
        if exc.name in ("kerasflow.data", "kerasflow.data.features"):
            return None
        raise
    return getattr(module, "build_inputs", None)


def _topological(graph: dict[str, NodeSpec], inputs: list[str]) -> list[str]:
    """Nodes after their inputs, otherwise in declaration order."""
    done, order, remaining = set(inputs), [], list(graph)
    while remaining:
        ready = [n for n in remaining if all(ref in done for _, ref in graph[n].references())]
        if not ready:  # validation reports cycles and unknown names with locations first
            raise SpecError(Problem(path="model", message="nodes with unresolvable inputs: " + ", ".join(remaining)))
        for n in ready:
            order.append(n)
            done.add(n)
            remaining.remove(n)
    return order


def _outputs(spec, keys: list[str]) -> dict[str, str]:
    targets = [t.name for t in spec.data.targets()]
    outputs = spec.model.outputs
    if outputs is None:
        return {targets[0]: keys[-1]}
    if isinstance(outputs, str):
        return {targets[0]: outputs}
    return dict(outputs)


def _denormalize(tensor, target: str, stats: dict | None):
    """A numeric target declared `normalize: true` is learned in standardized
    units; this layer maps the prediction back to raw units inside the model."""
    from kerasflow.data.stats import TARGETS_KEY

    moments = (stats or {}).get(TARGETS_KEY, {}).get(target)
    if moments is None:
        return tensor
    import keras

    return keras.layers.Rescaling(scale=moments["std"], offset=moments["mean"], name=f"{target}.denormalize")(tensor)


def _float32(tensor, target: str):
    """Under a mixed-precision policy, outputs (and so losses) stay float32."""
    if tensor.dtype in ("float16", "bfloat16"):
        import keras

        return keras.layers.Activation("linear", dtype="float32", name=f"{target}.float32")(tensor)
    return tensor


def _explain(exc: Exception) -> str:
    """The useful sentence of a Keras error, e.g. `expected input rank 4, got (None, 64)`."""
    text = _ANSI.sub("", str(exc))
    match = _NDIM.search(text)
    if match:
        bound = {"min_": "at least ", "max_": "at most "}.get(match.group(1) or "", "")
        return f"expected input rank {bound}{match.group(2)}, got {match.group(3)}"
    lines = []
    for line in text.splitlines():
        if line.strip().startswith("Arguments received by"):
            break
        if line.strip() and not line.startswith("Exception encountered when calling"):
            lines.append(line.strip())
    message = " ".join(lines) or type(exc).__name__
    return message if len(message) <= 400 else message[:397] + "..."
