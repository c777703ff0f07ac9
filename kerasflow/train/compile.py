"""Optimizers, learning-rate schedules and `model.compile` from the `training`
section. Imports Keras at the top: only training and tuning import this module.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import keras

from kerasflow.data.features import plain
from kerasflow.model.schedules import LinearWarmup
from kerasflow.spec.errors import Problem, SpecError
from kerasflow.spec.keras_arguments import COMPILE_RESOLVED, LOSS_CLASSES, METRIC_CLASSES
from kerasflow.spec.objectives import metric_log_name

_OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
    "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam", "ftrl": "Ftrl", "lion": "Lion", "lamb": "Lamb",
}
_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "momentum", "nesterov",
            "beta_1", "beta_2", "epsilon")


def make_learning_rate(lr_spec: Any, *, steps_per_epoch: int):
    """A float or a `LearningRateSchedule` for the `learning_rate` of an optimizer spec."""
    lr = plain(lr_spec)
    if not hasattr(lr, "type"):
        return float(lr)
    unit = steps_per_epoch if lr.unit == "epoch" else 1

    def steps(n):
        return max(int(round(n * unit)), 1)

    sched = keras.optimizers.schedules
    kind = lr.type
    if kind == "constant":
        schedule = float(plain(lr.value))
    elif kind == "exponential":
        schedule = sched.ExponentialDecay(float(plain(lr.initial)), steps(lr.decay_steps), lr.decay_rate, lr.staircase)
    elif kind == "piecewise":
        schedule = sched.PiecewiseConstantDecay([steps(b) for b in lr.boundaries], list(lr.values))
    elif kind == "cosine":
        schedule = sched.CosineDecay(float(plain(lr.initial)), steps(lr.decay_steps), alpha=lr.alpha)
    elif kind == "cosine_restarts":
        schedule = sched.CosineDecayRestarts(
            float(plain(lr.initial)), steps(lr.decay_steps), t_mul=lr.t_mul, m_mul=lr.m_mul, alpha=lr.alpha
        )
    elif kind == "polynomial":
        schedule = sched.PolynomialDecay(float(plain(lr.initial)), steps(lr.decay_steps), lr.end, lr.power)
    elif kind == "inverse_time":
        schedule = sched.InverseTimeDecay(float(plain(lr.initial)), steps(lr.decay_steps), lr.decay_rate)
    else:  # the schema admits only the kinds above
        raise ValueError(f"unknown schedule type {kind!r}")
    if lr.warmup_steps:
        return LinearWarmup(schedule, steps(lr.warmup_steps))
    return schedule


def make_optimizer(opt_spec, *, steps_per_epoch: int, path: str = "optimizer") -> keras.optimizers.Optimizer:
    """A Keras optimizer from a stage's `optimizer` spec.

    Args:
        opt_spec: `kerasflow.spec.training_schema.Optimizer` (markers take their defaults).
        steps_per_epoch: converts schedules declared with `unit: epoch` to steps.
        path: dotted spec path named in errors.
    """
    kind = plain(opt_spec.type)
    cls = getattr(keras.optimizers, _OPTIMIZERS[kind])
    accepted = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"learning_rate": make_learning_rate(opt_spec.learning_rate, steps_per_epoch=steps_per_epoch)}
    for name in _OPTIONS:
        value = plain(getattr(opt_spec, name))
        if value is None:
            continue
        if name not in accepted:  # the schema checks this too; a newer Keras may differ
            raise SpecError(Problem(path=f"{path}.{name}", message=f"`{name}` is not an option of {kind}",
                                    received=repr(value), hint=f"remove `{name}` or choose another optimizer"))
        kwargs[name] = value
    return cls(**kwargs)


def make_loss(loss_spec):
    """A Keras loss from a spec value: a name stays a name (Keras resolves it),
    `{type: ..., <arguments>}` becomes the Keras class built with those arguments."""
    if isinstance(loss_spec, str):
        return loss_spec
    return getattr(keras.losses, LOSS_CLASSES[loss_spec.type])(**loss_spec.arguments())


def make_metric(metric_spec):
    """A Keras metric from a spec value, logged under the name `metric_log_name` gives."""
    if isinstance(metric_spec, str):
        return metric_spec
    if metric_spec.type.lower() in COMPILE_RESOLVED:  # takes no arguments: compile resolves it from the target
        return metric_spec.type
    arguments = {**metric_spec.arguments(), "name": metric_log_name(metric_spec)}
    return getattr(keras.metrics, METRIC_CLASSES[metric_spec.type])(**arguments)


def _per_output(value, outputs: list[str]) -> dict:
    """A spec value given once or per output, as a dict over the model's outputs."""
    if isinstance(value, Mapping):
        return {name: value[name] for name in outputs if name in value}
    return {name: value for name in outputs}


def compile_model(model, spec, *, stage, steps_per_epoch: int, targets: Mapping[str, Mapping[str, Any]]) -> None:
    """Compile `model` for one stage: its optimizer, the losses/metrics per output,
    loss weights, `jit_compile` and `steps_per_execution`.

    Args:
        model: a model whose outputs are a dict keyed by target name.
        spec: the validated `Spec`.
        stage: a `Stage` of `spec.training.stages`, its index or its name.
        steps_per_epoch: optimizer steps per epoch (schedules in epochs).
        targets: `PreparedData.targets` (type, num_classes, class_names per target).
    """
    training = spec.training
    index, stage = _stage(training, stage)
    outputs = list(targets)  # the builder keys the model's outputs by target name
    losses = {name: make_loss(loss) for name, loss in _per_output(training.loss, outputs).items()}
    metric_specs = _per_output(training.metrics, outputs)
    metrics = {name: [make_metric(m) for m in metric_specs.get(name, [])] for name in outputs}
    kwargs: dict[str, Any] = {}
    if training.loss_weights:
        kwargs["loss_weights"] = {name: float(training.loss_weights.get(name, 1.0)) for name in outputs}
    if len(outputs) == 1 and not isinstance(training.metrics, Mapping):
        # One output: a plain list keeps Keras' metric names unprefixed (`val_accuracy`).
        metrics = metrics[outputs[0]]
    model.compile(
        optimizer=make_optimizer(stage.optimizer, steps_per_epoch=steps_per_epoch,
                                 path=f"training.stages[{index}].optimizer"),
        loss=losses,
        metrics=metrics,
        jit_compile=training.jit_compile,
        steps_per_execution=training.steps_per_execution,
        **kwargs,
    )


def _stage(training, stage) -> tuple[int, Any]:
    names = [s.name for s in training.stages]
    if isinstance(stage, int):
        return stage, training.stages[stage]
    if isinstance(stage, str):
        if stage not in names:
            raise SpecError(Problem(path="training.stages", message=f"no stage named `{stage}`",
                                    expected="one of: " + ", ".join(names)))
        return names.index(stage), training.stages[names.index(stage)]
    for i, s in enumerate(training.stages):
        if s is stage or s == stage:
            return i, s
    return 0, stage


def class_weights(spec, targets: Mapping[str, Mapping[str, Any]], labels: Mapping[str, Any]) -> dict[str, list[float]]:
    """Per-class weights per classification target from `training.class_weight`.

    Args:
        spec: the validated `Spec`.
        targets: `PreparedData.targets`.
        labels: training labels per target (integer class indices), used by `balanced`.

    Returns:
        {target: [weight of class 0, weight of class 1, ...]}; empty when unset.
    """
    import numpy as np

    setting = spec.training.class_weight
    if setting is None:
        return {}
    # spec.checks made sure there is a classification target, and only one for a mapping
    classified = [n for n, t in targets.items() if t.get("type") in ("category", "binary")]
    out = {}
    if setting == "balanced":
        for name in classified:
            n = _num_classes(targets[name])
            y = np.asarray(labels[name]).astype("int64").reshape(-1)
            counts = np.bincount(y, minlength=n).astype("float64")
            # sklearn's "balanced": n_samples / (n_classes * count); absent classes get 1.
            weights = np.where(counts > 0, len(y) / (n * np.maximum(counts, 1)), 1.0)
            out[name] = [float(w) for w in weights]
        return out
    name = classified[0]
    target = targets[name]
    n = _num_classes(target)
    names = [str(c) for c in (target.get("class_names") or range(n))]
    weights = [1.0] * n
    for key, w in setting.items():
        if key in names:
            weights[names.index(key)] = float(w)
        elif key.isdigit() and int(key) < n:
            weights[int(key)] = float(w)
        else:
            raise SpecError(Problem(path=f"training.class_weight.{key}", message=f"`{key}` is not a class of `{name}`",
                                    expected="a class name or index: " + ", ".join(names)))
    out[name] = weights
    return out


def _num_classes(target: Mapping[str, Any]) -> int:
    return 2 if target.get("type") == "binary" else int(target["num_classes"])
