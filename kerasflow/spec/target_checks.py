"""Checks that each target's loss, metrics and output layer fit it, TF-free:
Keras would only fail (or silently broadcast) once training starts."""

from typing import Any, Callable

from kerasflow.spec.keras_names import BINARY_LOSSES, ONE_HOT_LOSSES, SPARSE_LOSSES
from kerasflow.spec.objectives import KerasObject, check_objectives, object_type
from kerasflow.spec.registry import LayerNode, NodeChoice, alternatives

Add = Callable[..., None]  # add(path, message, **Problem fields)


def check_losses_and_metrics(spec: Any, add: Add) -> None:
    """Unknown loss/metric names, and losses that cannot read a target's labels."""
    training = spec.training
    targets = {t.name: t for t in spec.data.targets()}
    if isinstance(training.loss, dict):
        losses = [(("training", "loss", name), name, loss) for name, loss in training.loss.items()]
    else:
        losses = [(("training", "loss"), name, training.loss) for name in targets] or [(("training", "loss"), None, training.loss)]
    known: dict[tuple, bool] = {}  # one report per written loss, even when it serves several targets
    for path, target_name, loss in losses:
        if path not in known:
            known[path] = check_objectives("loss", loss, path, add)
        if known[path] and target_name in targets:
            _loss_fits_target(path, object_type(loss), targets[target_name], add)

    metrics = training.metrics
    lists = ([(("training", "metrics", name), ms) for name, ms in metrics.items()] if isinstance(metrics, dict)
             else [(("training", "metrics"), metrics)])
    for path, names in lists:
        for i, metric in enumerate(names):
            check_objectives("metric", metric, path + (i,), add)


def _loss_fits_target(path: tuple, loss: str, target: Any, add: Add) -> None:
    kind, name = target.type, target.name
    classes = _num_classes(target)
    if kind in ("category", "sequence") and loss in ONE_HOT_LOSSES:
        add(path, f"`{loss}` reads one-hot labels, but the `{kind}` target `{name}` holds integer class indices",
            expected="a loss for class indices", received=loss,
            hint="use `sparse_categorical_crossentropy` (same loss, integer labels)")
    elif kind == "category" and loss in BINARY_LOSSES and classes is not None and classes > 2:
        add(path, f"`{loss}` reads 0/1 labels, but the `category` target `{name}` has {classes} classes",
            expected="a loss for class indices", received=loss,
            hint="use `sparse_categorical_crossentropy`, or declare the target `type: binary` if it has two classes")
    elif kind == "numeric" and loss in ONE_HOT_LOSSES + SPARSE_LOSSES + BINARY_LOSSES:
        add(path, f"`{loss}` is a classification loss, but target `{name}` is numeric", expected="a regression loss",
            received=loss, hint="use e.g. `mse`, `mae` or `huber`, or declare the target `type: category`")
    elif kind == "binary" and loss in ONE_HOT_LOSSES:
        add(path, f"`{loss}` reads one-hot labels, but the `binary` target `{name}` holds 0/1 labels",
            expected="a loss for 0/1 labels", received=loss, hint="use `binary_crossentropy` with one sigmoid unit")


def check_output_units(spec: Any, outputs: dict[str, str], graph: dict, node_path: Callable, add: Add) -> None:
    """An output layer's width must fit its target where that is known without
    building the model: a dense layer (or the last layer of an `mlp` block)."""
    targets = {t.name: t for t in spec.data.targets()}
    loss = spec.training.loss
    for target_name, node_name in outputs.items():
        target, node = targets.get(target_name), graph.get(node_name)
        if target is None or node is None:
            continue  # reported elsewhere
        for i, option in enumerate(alternatives(node)):
            path = node_path(node_name) + (("values", i) if isinstance(node, NodeChoice) else ())
            _check_width(option, path, node_name, target, target_name, loss, add)


def _check_width(node: Any, path: tuple, node_name: str, target: Any, target_name: str, loss: Any, add: Add) -> None:
    units, units_path = _width(node, path)
    if units is None:
        return
    loss = loss.get(target_name) if isinstance(loss, dict) else loss
    target_loss = object_type(loss) if loss is not None else None
    if isinstance(loss, KerasObject) and loss.arguments().get("from_logits") \
            and getattr(node, "activation", None) in ("softmax", "sigmoid"):
        add(path + ("activation",), f"the loss of `{target_name}` reads logits (from_logits: true), but output "
            f"`{node_name}` applies {node.activation}", expected="no activation (linear) on the output",
            received=node.activation, hint="remove the activation, or set from_logits: false")
    classes = _num_classes(target)
    expected = None
    if target.type in ("category", "sequence") and classes is not None and target_loss in SPARSE_LOSSES:
        expected = classes
        why = f"one per class of `{target_name}` (num_classes: {classes})"
    elif target.type == "binary" and target_loss in BINARY_LOSSES:
        expected = 1
        why = f"one probability (or logit) per example for the binary target `{target_name}`"
    if expected is not None and units != expected:
        add(units_path, f"output `{node_name}` has {units} units, expected {expected}: {why}",
            expected=f"units: {expected}", received=str(units))
    if units == 1 and getattr(node, "activation", None) == "softmax":
        add(units_path[:-1] + ("activation",), f"output `{node_name}` applies softmax to one unit: it is always 1",
            expected="sigmoid (one unit) or softmax over two or more units", received="softmax",
            hint="use `activation: sigmoid` with `binary_crossentropy`")


def _width(node: Any, path: tuple) -> tuple[int | None, tuple]:
    if isinstance(node, LayerNode) and getattr(node, "layer", None) == "dense" and isinstance(node.units, int):
        return node.units, path + ("units",)
    if getattr(node, "block", None) == "mlp" and isinstance(node.units, list) and isinstance(node.units[-1], int):
        return node.units[-1], path + ("units", len(node.units) - 1)
    return None, path


def _num_classes(target: Any) -> int | None:
    if target.num_classes is not None:
        return target.num_classes
    return len(target.class_names) if target.class_names else None
