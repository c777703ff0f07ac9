"""Checks that span several fields: graph references and cycles, outputs vs
targets, losses/metrics/output widths vs targets, unique stage names, the
tuning objective; and the warnings about declared but unused nodes and
features (kept warnings: a branch left out while experimenting is legitimate,
and `kerasflow plan` shows it too)."""

from __future__ import annotations

import fnmatch
from typing import Any

from kerasflow.spec.errors import Locations, Problem, did_you_mean, join_path, locate
from kerasflow.spec.imports import HOW_TO_ALLOW
from kerasflow.spec.model_schema import repetition_name
from kerasflow.spec.registry import NodeChoice, UncheckedNode, alternatives
from kerasflow.spec.target_checks import check_losses_and_metrics, check_output_units


def cross_check(spec: Any, locs: Locations) -> list[Problem]:
    """Problems of a structurally valid `kerasflow.spec.schema.Spec`."""
    problems: list[Problem] = []

    def add(path: tuple, message: str, **kw) -> None:
        problems.append(Problem(path=join_path(path), message=message, location=locate(locs, path), **kw))

    features = list(spec.data.features)
    if "" in features:
        add(("data", "features", ""), "empty feature name", hint="give the feature a name (it names a model input)")
    targets = [t.name for t in spec.data.targets()]
    model = spec.model
    inputs = model.inputs if model.inputs is not None else features
    for i, name in enumerate(model.inputs or []):
        if name not in features:
            add(("model", "inputs", i), f"`{name}` is not a feature declared in data.features",
                expected="one of: " + ", ".join(features), hint=did_you_mean(name, features))

    graph = model.graph(default_input=inputs[0] if len(inputs) == 1 else None)
    section = "nodes" if model.nodes is not None else "sequential"
    keys = list(graph)

    def node_path(name: str) -> tuple:
        return ("model", "nodes", name) if section == "nodes" else ("model", "sequential", keys.index(name))

    for name, node in (model.nodes or {}).items():  # a repetition would silently replace a declared node
        if getattr(node, "block", None) == "repeat":
            taken = [repetition_name(name, i) for i in range(len(node.repetitions()) - 1)
                     if repetition_name(name, i) in model.nodes]
            if taken:
                add(("model", "nodes", name), f"repeat `{name}` names its repetitions {name}_0, {name}_1, ..., "
                    f"but `{taken[0]}` is also a declared node", hint="rename the repeat or that node")

    known = set(inputs) | set(graph)
    for name, node in graph.items():
        if name == "":
            add(node_path(name), "empty node name", hint="give the node a name (it names its Keras layer)")
        if name in inputs:
            add(node_path(name), f"node name `{name}` is also an input feature; rename the node")
        for i, option in enumerate(alternatives(node)):
            where = node_path(name) + (("values", i) if isinstance(node, NodeChoice) else ())
            if not option.references():
                add(where, f"node `{name}` has no input", hint="add `input: <feature or node>`")
            for field, ref in option.references():
                if ref in known:
                    continue
                add(where + (field.split("[")[0],), f"`{ref}` is neither an input nor a node",
                    expected="one of: " + ", ".join(sorted(known - {name})),
                    hint=did_you_mean(ref, sorted(known - {name})))

    cycle = _find_cycle({n: [r for _, r in node.references() if r in graph] for n, node in graph.items()})
    if cycle:
        add(node_path(cycle[0]), "the graph has a cycle: " + " -> ".join(cycle + [cycle[0]]),
            hint="a node cannot depend on itself, directly or through others")

    outputs = model.outputs
    if outputs is None:
        if len(targets) > 1:
            add(("model",), "missing required key `outputs`",
                expected="a mapping target -> node for each target: " + ", ".join(targets))
        elif not graph:
            add(("model",), "the model has no nodes")
    else:
        mapping = {targets[0]: outputs} if isinstance(outputs, str) else outputs
        if isinstance(outputs, str) and len(targets) > 1:
            add(("model", "outputs"), "one output node for several targets",
                expected="a mapping target -> node for each target: " + ", ".join(targets))
        for tname, node_name in mapping.items():
            opath = ("model", "outputs") if isinstance(outputs, str) else ("model", "outputs", tname)
            if tname not in targets:
                add(opath, f"`{tname}` is not a target declared in data.target",
                    expected="one of: " + ", ".join(targets), hint=did_you_mean(tname, targets))
            if node_name not in graph:
                add(opath, f"output `{node_name}` is not a node", expected="one of: " + ", ".join(graph),
                    hint=did_you_mean(node_name, list(graph)))
        for tname in targets:
            if not isinstance(outputs, str) and tname not in mapping:
                add(("model", "outputs"), f"target `{tname}` has no output node",
                    hint=f"add `{tname}: <node>` under model.outputs")

    check_output_units(spec, _output_nodes(spec, graph, targets), graph, node_path, add)
    check_losses_and_metrics(spec, add)

    training = spec.training
    for key, what in (("loss", training.loss), ("metrics", training.metrics), ("loss_weights", training.loss_weights)):
        if isinstance(what, dict):
            for tname in what:
                if tname not in targets:
                    add(("training", key, tname), f"`{tname}` is not a target",
                        expected="one of: " + ", ".join(targets), hint=did_you_mean(tname, targets))

    seen: dict[str, int] = {}
    for i, stage in enumerate(training.stages):
        if stage.name in seen:
            add(("training", "stages", i, "name"), f"duplicate stage name `{stage.name}` (also stages[{seen[stage.name]}])")
        seen.setdefault(stage.name, i)
        for key in ("freeze", "unfreeze"):
            for j, entry in enumerate(getattr(stage, key)):
                pattern = entry if isinstance(entry, str) else entry.node
                if not fnmatch.filter(list(graph), pattern):
                    add(("training", "stages", i, key, j), f"`{pattern}` matches no node",
                        expected="a glob over node names: " + ", ".join(graph))

    if training.class_weight is not None:
        classified = [t.name for t in spec.data.targets() if t.type in ("category", "binary")]
        if not classified:
            add(("training", "class_weight"), "class weights need a category or binary target",
                received=", ".join(f"{t.name} ({t.type})" for t in spec.data.targets()))
        elif len(classified) > 1 and training.class_weight != "balanced":
            add(("training", "class_weight"), f"a class weight mapping is ambiguous with {len(classified)} "
                f"classification targets ({', '.join(classified)})",
                hint="use `balanced`, which weighs each target on its own")

    produced = sorted(training.metric_names())
    for path, monitor in monitors(training):  # Keras would only warn, or fail mid-run on the mode
        if monitor not in produced:
            add(path, f"`{monitor}` is not a metric training produces",
                expected="one of: " + ", ".join(produced), hint=did_you_mean(monitor, produced))

    if spec.tuning is not None:
        metric = spec.tuning.objective_name()
        if metric not in produced:
            path = ("tuning", "objective") if isinstance(spec.tuning.objective, str) else ("tuning", "objective", "name")
            add(path, f"objective `{metric}` is not a metric training produces",
                expected="one of: " + ", ".join(produced), hint=did_you_mean(metric, produced))
        if spec.tuning.stage is not None and spec.tuning.stage not in seen:
            add(("tuning", "stage"), f"`{spec.tuning.stage}` is not a training stage",
                expected="one of: " + ", ".join(seen), hint=did_you_mean(spec.tuning.stage, list(seen)))

    if spec.stages is not None:
        for i, st in enumerate(spec.stages):
            if st == "tune" and spec.tuning is None:
                add(("stages", i), "stage `tune` needs a `tuning:` section")
    return problems


def monitors(training: Any) -> list[tuple[tuple, str]]:
    """(path, metric) of every stage callback that watches a metric."""
    return [(("training", "stages", i, "callbacks", key, "monitor"), callback.monitor)
            for i, stage in enumerate(training.stages)
            for key in ("early_stopping", "reduce_lr_on_plateau", "model_checkpoint")
            if (callback := getattr(stage.callbacks, key)) is not None]


def validation_problems(spec: Any, locs: Locations, *, tuning: bool = False) -> list[Problem]:
    """For data without a validation split: the callbacks (and with `tuning`, the
    objective) that watch a validation metric."""
    watched = [(path, m) for path, m in monitors(spec.training) if m.startswith("val_")]
    if tuning and spec.tuning is not None and spec.tuning.objective_name().startswith("val_"):
        objective = spec.tuning.objective
        watched.append((("tuning", "objective") + (() if isinstance(objective, str) else ("name",)),
                        spec.tuning.objective_name()))
    return [Problem(path=join_path(path), message=f"`{metric}` needs a validation split, and data.split gives none",
                    location=locate(locs, path), hint=f"set data.split.validation (e.g. 0.1), or use "
                    f"`{metric.removeprefix('val_')}`") for path, metric in watched]


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the dependency graph (node -> its inputs), or None.

    Iterative depth-first search: a graph of thousands of nodes declared
    output-first must not hit Python's recursion limit.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if root in state:
            continue
        path, todo = [root], [iter(edges.get(root, []))]
        state[root] = 1
        while todo:
            for m in todo[-1]:
                if state.get(m) == 1:
                    return list(reversed(path[path.index(m):]))
                if m not in state:
                    state[m] = 1
                    path.append(m)
                    todo.append(iter(edges.get(m, [])))
                    break
            else:
                state[path.pop()] = 2
                todo.pop()
    return None


def _output_nodes(spec: Any, graph: dict, targets: list[str]) -> dict[str, str]:
    """Target -> output node, as the builder wires them."""
    outputs = spec.model.outputs
    if outputs is None:
        return {targets[0]: list(graph)[-1]} if targets and graph else {}
    return {targets[0]: outputs} if isinstance(outputs, str) else dict(outputs)


def spec_warnings(spec: Any, locs: Locations) -> list[Problem]:
    """Nodes no output depends on, and features no node reads: the data is
    still loaded and the layers still declared, so say so."""
    model = spec.model
    features = list(spec.data.features)
    inputs = model.inputs if model.inputs is not None else features
    graph = model.graph(default_input=inputs[0] if len(inputs) == 1 else None)
    section = "nodes" if model.nodes is not None else "sequential"
    keys = list(graph)
    targets = [t.name for t in spec.data.targets()]
    used, todo = set(), [n for n in _output_nodes(spec, graph, targets).values() if n in graph]
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        todo += [ref for _, ref in graph[name].references() if ref in graph]
    read = {ref for name in used for _, ref in graph[name].references()}
    out = []
    for name, node in graph.items():
        if isinstance(node, UncheckedNode):
            kind = "layer" if node.layer is not None else "block"
            path = ("model", "nodes", name) if section == "nodes" else ("model", "sequential", keys.index(name))
            out.append(Problem(path=join_path(path), message=f"not checked: {kind} `{node.layer or node.block}` is "
                               "not registered; model.imports may register it but were not imported",
                               location=locate(locs, path), hint=HOW_TO_ALLOW))
    for name in graph:
        if name not in used:
            path = ("model", "nodes", name) if section == "nodes" else ("model", "sequential", keys.index(name))
            out.append(Problem(path=join_path(path), message=f"node `{name}` is not used by any output",
                               location=locate(locs, path), hint="wire it into an output, or remove it"))
    for name in features:
        if name not in read:
            path = ("data", "features", name)
            where = "model.inputs" if name not in inputs else "any node used by an output"
            out.append(Problem(path=join_path(path), message=f"feature `{name}` is not read by {where}",
                               location=locate(locs, path),
                               hint="it is still loaded and preprocessed: remove it, or use it"))
    return out
