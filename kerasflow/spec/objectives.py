"""Losses and metrics as the `training` section writes them: a Keras name
(`binary_crossentropy`) or a mapping with the class's constructor arguments
(`{type: binary_crossentropy, from_logits: true, label_smoothing: 0.1}`).
The arguments are checked against the Keras signatures in `cross_check`
(`check_objectives`), where each problem gets its own path."""

from typing import Annotated, Any, Union

from pydantic import ConfigDict, Discriminator, Field, Tag

from kerasflow.spec.base import SpecModel
from kerasflow.spec.errors import did_you_mean
from kerasflow.spec.keras_arguments import (
    COMPILE_RESOLVED, LOSS_ARGUMENTS, LOSS_CLASSES, METRIC_ARGUMENTS, METRIC_CLASSES, METRIC_REQUIRED,
    argument_problem,
)


class KerasObject(SpecModel):
    """A Keras loss or metric with constructor arguments: `type` names it as a
    string would, every other key is an argument of its class (e.g. `from_logits`,
    `label_smoothing`, `gamma`, `reduction`, `threshold`, `num_thresholds`, `name`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A Keras loss or metric name, e.g. binary_crossentropy, BinaryFocalCrossentropy, auc.")

    def arguments(self) -> dict[str, Any]:
        """The constructor arguments, as written."""
        return dict(self.model_extra or {})


def _tag(value: Any) -> str:
    # A mapping with `type` is one loss with arguments; any other mapping gives
    # one loss per target (a target named `type` takes the one-loss reading).
    return "per_output" if isinstance(value, dict) and "type" not in value else "one"


OneLoss = Union[str, KerasObject]
Loss = Annotated[
    Union[Annotated[OneLoss, Tag("one")], Annotated[dict[str, OneLoss], Tag("per_output")]],
    Discriminator(_tag),
]
OneMetric = Union[str, KerasObject]
Metrics = Union[list[OneMetric], dict[str, list[OneMetric]]]


def object_type(value: str | KerasObject) -> str:
    """The Keras name of a loss or metric given either way."""
    return value if isinstance(value, str) else value.type


def metric_log_name(value: str | KerasObject) -> str:
    """The name Keras logs a metric under: its `name` argument, else the name as written."""
    if isinstance(value, KerasObject):
        return str(value.arguments().get("name") or value.type)
    return value


def check_objectives(kind: str, value: str | KerasObject, path: tuple, add) -> bool:
    """Report an unknown name or a bad argument of one loss (`kind="loss"`) or
    metric; returns whether the name is known.

    Args:
        kind: "loss" or "metric".
        value: the spec value.
        path: its path (arguments are reported below it).
        add: `add(path, message, **Problem fields)`.
    """
    classes, arguments = (LOSS_CLASSES, LOSS_ARGUMENTS) if kind == "loss" else (METRIC_CLASSES, METRIC_ARGUMENTS)
    name = object_type(value)
    compile_resolved = kind == "metric" and name.lower() in COMPILE_RESOLVED
    if name not in classes and not compile_resolved:
        example = "sparse_categorical_crossentropy, binary_crossentropy, mse" if kind == "loss" else "accuracy, auc, mae"
        same_case = [n for n in classes if n.islower() == name.islower()] or list(classes)
        add(path + (("type",) if isinstance(value, KerasObject) else ()), f"unknown {kind} `{name}`",
            expected=f"a Keras {kind} name, e.g. {example}", received=repr(name), hint=did_you_mean(name, same_case))
        return False
    if not isinstance(value, KerasObject):
        required = METRIC_REQUIRED.get(classes[name], ()) if kind == "metric" and not compile_resolved else ()
        if required:  # Keras cannot build these from a name alone
            add(path, f"keras.metrics.{classes[name]} needs {', '.join(f'`{a}`' for a in required)}",
                received=repr(name), hint=f"write it as a mapping: {{type: {name}, "
                + ", ".join(f"{a}: ..." for a in required) + "}")
        return True
    given = value.arguments()
    if compile_resolved:
        if given:
            add(path + ("type",), f"`{name}` takes no arguments: compile picks the accuracy/crossentropy that fits "
                "the target", received=", ".join(sorted(given)),
                hint="name the class to pass arguments, e.g. binary_accuracy (threshold) or sparse_categorical_accuracy")
        return True
    cls = classes[name]
    accepted = arguments[cls]
    module = "losses" if kind == "loss" else "metrics"
    for arg, arg_value in given.items():
        if arg not in accepted:
            add(path + (arg,), f"`{arg}` is not an argument of keras.{module}.{cls}", expected="one of: " + ", ".join(accepted),
                received=repr(arg), hint=did_you_mean(arg, list(accepted)))
            continue
        problem = argument_problem(arg, arg_value)
        if problem:
            add(path + (arg,), f"invalid `{arg}` for keras.{module}.{cls}",
                expected=problem[0], received=problem[1])
    for arg in METRIC_REQUIRED.get(cls, ()) if kind == "metric" else ():
        if arg not in given:
            add(path, f"keras.metrics.{cls} needs `{arg}`", hint=f"add `{arg}: ...` to the mapping")
    return True
