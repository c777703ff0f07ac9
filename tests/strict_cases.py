"""Generated corpus of specs the strict schema and the TF-free checks reject:
wrong YAML types, non-finite or absurd numbers, tune markers that do not fit
their field, unknown or unfitting losses and metrics, output widths, empty
names, and names that would escape their directory.

Each case: (id, changes to `BASE_YAML`, dotted path of the problem, a
fragment of what was expected). Changes are `set` (dotted path -> value,
`DELETE` removes) applied to the parsed base, dumped back with every string
double-quoted, so `"3"` stays a string as a user would have typed it.
"""

import copy
import math

import yaml

from invalid_cases import BASE_YAML, DELETE
from kerasflow.spec.errors import join_path

INF, NAN = math.inf, math.nan

# ---------------------------------------------------------------- C: YAML types and ranges

INT_FIELDS = [
    "data.batch_size", "training.stages.0.epochs", "model.nodes.h1.units", "model.nodes.h2.units",
    "data.target.num_classes", "data.features.pixels.shape.0", "tuning.max_trials", "tuning.executions_per_trial",
    "export.warmup_requests", "training.stages.0.steps_per_epoch", "training.steps_per_execution", "seed",
    "export.version", "export.keep", "training.stages.0.batch_size", "tuning.seed",
]
# (label, value, expected fragment)
NOT_INTS = [
    ("true", True, "a valid integer"), ("false", False, "a valid integer"), ("str", "3", "a valid integer"),
    ("float", 3.0, "a valid integer"), ("fraction", 2.5, "a valid integer"), ("list", [3], "a valid integer"),
]

RATE = "training.stages.0.optimizer"
FLOAT_FIELDS = {  # path -> extra changes that make the field meaningful
    f"{RATE}.learning_rate": {},
    f"{RATE}.clipnorm": {},
    f"{RATE}.clipvalue": {},
    f"{RATE}.global_clipnorm": {},
    f"{RATE}.weight_decay": {f"{RATE}.type": "adamw"},
    f"{RATE}.learning_rate.value": {f"{RATE}.learning_rate": {"type": "constant", "value": 0.01}},
    f"{RATE}.learning_rate.initial": {f"{RATE}.learning_rate": {"type": "exponential", "initial": 0.01,
                                                                "decay_steps": 10, "decay_rate": 0.9}},
    f"{RATE}.learning_rate.values.1": {f"{RATE}.learning_rate": {"type": "piecewise", "boundaries": [10],
                                                                 "values": [0.01, 0.001]}},
    "training.class_weight.3": {"training.class_weight": {"3": 2.0}},
    "training.loss_weights.label": {"training.loss_weights": {"label": 1.0}},
    "model.nodes.h1.kernel_regularizer.l2": {"model.nodes.h1.kernel_regularizer": {"l2": 0.001}},
    "model.nodes.scaled.scale": {"model.nodes.scaled": {"layer": "rescaling", "input": "pixels", "scale": 0.5}},
}
NOT_FLOATS = [
    ("inf", INF, "finite number"), ("-inf", -INF, "finite number"), ("nan", NAN, "finite number"),
    ("1e300", 1e300, "less than or equal to"), ("str-exp", "1e-3", "a valid number"), ("str", "0.1", "a valid number"),
    ("true", True, "a valid number"),
]
UNITS = "model.nodes.h2.units"
LR = f"{RATE}.learning_rate"
RANGES = [
    ("units-1e12", {UNITS: 10**12}, UNITS, "less than or equal to 1048576"),
    ("units-2e21", {UNITS: 2**21}, UNITS, "less than or equal to 1048576"),
    ("mlp-units-1e12", {"model.nodes.h2": {"block": "mlp", "input": "h1", "units": [64, 10**12]}}, "model.nodes.h2.units.1",
     "less than or equal to 1048576"),
    ("conv-filters-1e12", {"model.nodes.c": {"layer": "conv1d", "input": "h1", "filters": 10**12, "kernel_size": 3}},
     "model.nodes.c.filters", "less than or equal to 1048576"),
    ("epochs-1e12", {"training.stages.0.epochs": 10**12}, "training.stages[0].epochs", "less than or equal to 2147483647"),
    ("batch-size-1e12", {"data.batch_size": 10**12}, "data.batch_size", "less than or equal to 2147483647"),
    ("seed-negative", {"seed": -1}, "seed", "greater than or equal to 0"),
    ("seed-2-32", {"seed": 2**32}, "seed", "less than or equal to 4294967295"),
    ("seed-2-40", {"seed": 2**40}, "seed", "less than or equal to 4294967295"),
    ("tuning-seed-negative", {"tuning.seed": -5}, "tuning.seed", "greater than or equal to 0"),
    ("dropout-seed-2-33", {"model.nodes.d": {"layer": "dropout", "input": "h1", "rate": 0.1, "seed": 2**33}},
     "model.nodes.d.seed", "less than or equal to 4294967295"),
    ("lr-above-10", {LR: 11.0}, LR, "less than or equal to 10"),
    ("weight-decay-above-1", {f"{RATE}.type": "adamw", f"{RATE}.weight_decay": 2.0}, f"{RATE}.weight_decay",
     "less than or equal to 1"),
    ("kerasflow-true", {"kerasflow": True}, "kerasflow", "1"),
    ("kerasflow-float", {"kerasflow": 1.0}, "kerasflow", "1"),
    ("kerasflow-str", {"kerasflow": "1"}, "kerasflow", "1"),
    ("kerasflow-2", {"kerasflow": 2}, "kerasflow", "1"),
]
TUNE_MISFITS = [
    ("units-tune-bool", {UNITS: {"tune": "bool"}}, UNITS, "valid integer"),
    ("units-tune-float", {UNITS: {"tune": "float", "min": 0.5, "max": 2.5}}, UNITS, "valid integer"),
    ("units-choice-bool", {UNITS: {"tune": "choice", "values": [True, 2]}}, UNITS, "valid integer"),
    ("units-choice-str", {UNITS: {"tune": "choice", "values": ["a", "b"]}}, UNITS, "valid integer"),
    ("units-choice-float", {UNITS: {"tune": "choice", "values": [2.5, 3]}}, UNITS, "valid integer"),
    ("units-choice-str-number", {UNITS: {"tune": "choice", "values": ["32", 64]}}, UNITS, "valid integer"),
    ("units-tune-int-huge", {UNITS: {"tune": "int", "min": 1, "max": 10**12}}, UNITS, "less than or equal to 1048576"),
    ("units-tune-int-str-min", {UNITS: {"tune": "int", "min": "1", "max": 8}}, f"{UNITS}.min", "valid integer"),
    ("units-tune-int-float-max", {UNITS: {"tune": "int", "min": 1, "max": 8.0}}, f"{UNITS}.max", "valid integer"),
    ("lr-tune-float-huge", {LR: {"tune": "float", "min": 1e-4, "max": 1e300}}, LR, "less than or equal to 10"),
    ("lr-tune-float-inf", {LR: {"tune": "float", "min": 1e-4, "max": INF}}, f"{LR}.max", "finite number"),
    ("lr-tune-float-nan", {LR: {"tune": "float", "min": NAN, "max": 0.1}}, f"{LR}.min", "finite number"),
    ("lr-choice-str", {LR: {"tune": "choice", "values": [0.1, "fast"]}}, LR, "valid number"),
    ("lr-tune-int-big", {LR: {"tune": "int", "min": 1, "max": 100}}, LR, "less than or equal to 10"),
    ("epochs-tune-bool", {"training.stages.0.epochs": {"tune": "bool"}}, "training.stages[0].epochs", "valid integer"),
    ("batch-choice-bool", {"data.batch_size": {"tune": "choice", "values": [32, True]}}, "data.batch_size",
     "valid integer"),
    ("optimizer-choice-int", {f"{RATE}.type": {"tune": "choice", "values": ["adam", 3]}}, f"{RATE}.type", "adam"),
    ("rate-tune-bool", {"model.nodes.d": {"layer": "dropout", "input": "h1", "rate": {"tune": "bool"}}},
     "model.nodes.d.rate", "valid number"),
    ("activation-tune-int", {"model.nodes.h1.activation": {"tune": "int", "min": 1, "max": 3}},
     "model.nodes.h1.activation", "relu"),
]


_LISTS = ("stages", "shape", "values", "metrics", "units")


def _dotted(path: str) -> str:
    """'training.stages.0.epochs' -> 'training.stages[0].epochs', as problems name paths."""
    parts = path.split(".")
    return join_path([int(p) if p.isdigit() and i and parts[i - 1] in _LISTS else p for i, p in enumerate(parts)])


def _strict_cases() -> list[tuple]:
    cases = []
    for field in INT_FIELDS:
        for label, value, fragment in NOT_INTS:
            cases.append((f"int-{field}-{label}", {field: value}, _dotted(field), fragment))
    for field, extra in FLOAT_FIELDS.items():
        for label, value, fragment in NOT_FLOATS:
            if fragment == "less than or equal to" and field.endswith(("class_weight.3", ".scale")):
                fragment = "less than or equal to 1000000"
            cases.append((f"float-{field}-{label}", {**extra, field: value}, _dotted(field), fragment))
    cases += [(cid, changes, _dotted(path), fragment) for cid, changes, path, fragment in RANGES + TUNE_MISFITS]
    return cases


# ---------------------------------------------------------------- D: TF-free checks

LOSS_TYPOS = [
    ("crossentropyy", "binary_crossentropy"), ("sparse_categorical_crossentropyy", "sparse_categorical_crossentropy"),
    ("sparse_categoricalcrossentropy", "sparse_categorical_crossentropy"), ("mean_squared_eror", "mean_squared_error"),
    ("binary_crosentropy", "binary_crossentropy"), ("huberr", "huber"), ("accuracy", None), ("MeanSquaredErorr", "MeanSquaredError"),
]
METRIC_TYPOS = [
    ("acuracy", "accuracy"), ("accuracyy", "accuracy"), ("AUCC", "AUC"), ("f1", None), ("precison", "precision"),
    ("recal", "recall"), ("sparse_categorical_acuracy", "sparse_categorical_accuracy"), ("rmse", None),
]
NUMERIC_TARGET = {"data.target": {"name": "label", "type": "numeric"}, "model.nodes.out.units": 1,
                  "model.nodes.out.activation": DELETE, "training.metrics": ["mae"], "tuning.objective": "val_loss",
                  "data.split.stratify": False}
BINARY_TARGET = {"data.target": {"name": "label", "type": "binary"}, "model.nodes.out.units": 1,
                 "model.nodes.out.activation": "sigmoid", "training.loss": "binary_crossentropy"}
OUT = "model.nodes.out"


def _check_cases() -> list[tuple]:
    cases = []
    for name, closest in LOSS_TYPOS:
        cases.append((f"loss-unknown-{name}", {"training.loss": name}, "training.loss",
                      f"did you mean `{closest}`" if closest else "a Keras loss name"))
        cases.append((f"loss-unknown-per-output-{name}", {"training.loss": {"label": name}}, "training.loss.label",
                      f"did you mean `{closest}`" if closest else "a Keras loss name"))
    for name, closest in METRIC_TYPOS:
        cases.append((f"metric-unknown-{name}", {"training.metrics": ["accuracy", name]}, "training.metrics[1]",
                      f"`{closest}`" if closest else "a Keras metric name"))
        cases.append((f"metric-unknown-per-output-{name}", {"training.metrics": {"label": [name]}},
                      "training.metrics.label[0]", f"`{closest}`" if closest else "a Keras metric name"))
    for loss in ("categorical_crossentropy", "CategoricalCrossentropy", "categorical_focal_crossentropy", "kld",
                 "kl_divergence", "categorical_hinge"):
        cases.append((f"loss-one-hot-on-class-index-{loss}", {"training.loss": loss}, "training.loss",
                      "sparse_categorical_crossentropy"))
    for loss in ("binary_crossentropy", "bce", "binary_focal_crossentropy", "hinge"):
        cases.append((f"loss-binary-on-10-classes-{loss}", {"training.loss": loss}, "training.loss", "10 classes"))
    for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"):
        cases.append((f"loss-classification-on-numeric-{loss}", {**NUMERIC_TARGET, "training.loss": loss},
                      "training.loss", "regression loss"))
    cases.append(("loss-one-hot-on-binary", {**BINARY_TARGET, "training.loss": "categorical_crossentropy"},
                  "training.loss", "binary_crossentropy"))
    for units in (1, 5, 9, 11, 100):
        cases.append((f"output-units-{units}-for-10-classes", {f"{OUT}.units": units}, f"{OUT}.units", "units: 10"))
    cases.append(("output-units-from-class-names", {"data.target.num_classes": DELETE,
                                                    "data.target.class_names": list("abc"), f"{OUT}.units": 10},
                  f"{OUT}.units", "units: 3"))
    cases.append(("output-mlp-last-units", {OUT: {"block": "mlp", "input": "h2", "units": [32, 7]}},
                  f"{OUT}.units[1]", "units: 10"))
    cases.append(("output-binary-two-units", {**BINARY_TARGET, f"{OUT}.units": 2, f"{OUT}.activation": "softmax"},
                  f"{OUT}.units", "units: 1"))
    cases.append(("output-softmax-one-unit", {**BINARY_TARGET, f"{OUT}.activation": "softmax"},
                  f"{OUT}.activation", "sigmoid"))
    cases.append(("node-empty-key", {"model.nodes.": {"layer": "dense", "input": "h1", "units": 3}},
                  "model.nodes.", "empty node name"))
    cases.append(("feature-empty-key", {"data.features.": {"type": "numeric", "shape": [1]}},
                  "data.features.", "empty feature name"))
    return cases


# ---------------------------------------------------------------- E: names that become paths

BAD_NAMES = [("dotdot", ".."), ("dot", "."), ("slash", "a/b"), ("backslash", "a\\b"), ("hidden", ".cache"),
             ("empty", ""), ("nul", "a\x00b"), ("newline", "a\nb"), ("long", "x" * 101), ("absolute", "/etc")]
NAME_FIELDS = ["name", "training.stages.0.name", "export.model_name", "tracking.experiment", "tracking.run_name"]


def _name_cases() -> list[tuple]:
    return [(f"path-name-{field}-{label}", {field: value}, _dotted(field), "one path component")
            for field in NAME_FIELDS for label, value in BAD_NAMES]


CASES = _strict_cases() + _check_cases() + _name_cases()


# ---------------------------------------------------------------- applying a case


class _QuotingDumper(yaml.SafeDumper):
    """Writes every string double-quoted: `"3"` stays the string a user typed."""


_QuotingDumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style='"'))


def apply_case(changes: dict) -> str:
    """The YAML text of `BASE_YAML` with `changes` (dotted path -> value) applied."""
    data = yaml.safe_load(BASE_YAML)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        cur = data
        for part in parents:
            cur = cur[int(part)] if isinstance(cur, list) else cur.setdefault(part, {})
        if value is DELETE:
            cur.pop(last, None)
        elif isinstance(cur, list):
            cur[int(last)] = copy.deepcopy(value)
        else:
            cur[last] = copy.deepcopy(value)
    return yaml.dump(data, Dumper=_QuotingDumper, sort_keys=False, allow_unicode=True)
