"""Which way a metric is better: the one home of that fact, used by the tuner's
objective and by the registry's alias decision (TF-free)."""

from __future__ import annotations

from kerasflow.spec.errors import Problem, SpecError

# Words in a metric name (checked without `val_`/`test_`) that say which way is better.
_MINIMIZE = ("loss", "error", "mae", "mse", "mape", "msle", "crossentropy", "hinge", "divergence", "poisson",
             "cosh", "huber")
_MAXIMIZE = ("accuracy", "acc", "auc", "precision", "recall", "f1", "fbeta", "iou", "r2", "dice")


def direction(name: str, declared: str | None = None, *, path: str = "tuning.objective") -> str:
    """`declared` when given, else "min" or "max" inferred from the metric name.

    Raises:
        SpecError: the name does not say (at `path`), with the form that declares it.
    """
    if declared is not None:
        return declared
    bare = name.lower().removeprefix("val_").removeprefix("test_")
    if any(word in bare for word in _MINIMIZE):
        return "min"
    if any(word in bare for word in _MAXIMIZE):
        return "max"
    raise SpecError(Problem(path=path, message=f"cannot tell whether `{name}` is better high or low",
                            expected="{name: METRIC, direction: min | max}", received=name,
                            hint=f"write objective: {{name: {name}, direction: max}}"))


def declared_objective(spec) -> tuple[str, str | None]:
    """(metric name, declared direction or None) of `tuning.objective`."""
    objective = spec.tuning.objective
    if isinstance(objective, str):
        return objective, None
    return objective.name, objective.direction


def registry_objective(spec, metrics: dict) -> tuple[str, str]:
    """The test metric that decides whether a registry alias moves, and its
    direction: the tuning objective's test counterpart (its declared direction
    honoured), else the first metric whose direction its name tells, else the loss."""
    if spec.tuning is not None:
        name, declared = declared_objective(spec)
        bare = name.removeprefix("val_")
        if f"test_{bare}" in metrics:
            return f"test_{bare}", direction(bare, declared)
    for name in metrics:
        if "loss" in name:
            continue
        try:
            return name, direction(name)
        except SpecError:
            continue
    return "test_loss", "min"
