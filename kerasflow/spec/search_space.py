"""The search space a spec declares with `{tune: ...}` markers.

Each marker becomes one hyperparameter named by its dotted spec path
(`model.nodes.h2.units`, `training.stages[0].optimizer.learning_rate`). A
`choice` whose values are mappings (or lists, nulls, mixed types) is a set of
alternatives: KerasTuner only stores int/float/str/bool choices, so such a
choice is tuned over short labels (`exponential`, `{"l2":0.01}`, `null`) and
each label maps back to its value. Markers inside an alternative are named by
their path through the marker (`...learning_rate.values[0].initial`) and are
active only while that alternative is chosen.

No TensorFlow, Keras or KerasTuner here: the tuner turns `Param`s into
`hp.Int/Float/Choice/Boolean` calls; `kerasflow train` can fill markers with
their defaults through `substitute(raw, {})`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import TypeAdapter, ValidationError

from kerasflow.spec.base import TuneMarker, is_marker
from kerasflow.spec.errors import Problem, SpecError, join_path

# Where markers may appear. Preprocessing is adapted once per search, so data
# settings other than the batch size and the width of a category embedding
# (a model layer fed by the fixed vocabulary) cannot change between trials.
TUNABLE_SECTIONS = ("model", "training")
TUNABLE_DATA_KEYS = ("batch_size",)
TUNABLE_FEATURE_KEYS = ("embedding_dim",)
# Names KerasTuner adds to a trial's values (hyperband's epochs and parent trial).
RESERVED_PREFIX = "tuner/"
_DISCRIMINATORS = ("type", "layer", "block", "name")
_LABEL_WIDTH = 40


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a marker, where it is, and when it is active.

    Args:
        name: the dotted spec path of the marker (the KerasTuner hp name).
        kind: `int`, `float`, `choice` or `bool`.
        marker: the marker mapping as written (validated).
        conditions: `(parent name, parent label)` pairs, outermost first; the
            param is active only when every parent has that value.
        labels: for a choice over alternatives, the label of each value (what
            KerasTuner stores); None when the values are stored as they are.
    """

    name: str
    kind: str
    marker: Mapping[str, Any]
    conditions: tuple[tuple[str, Any], ...] = ()
    labels: tuple[str, ...] | None = None

    @property
    def choices(self) -> list:
        """The candidate values as KerasTuner stores them (choice only)."""
        return list(self.labels) if self.labels is not None else list(self.marker["values"])

    @property
    def default(self) -> Any:
        """The default in KerasTuner form (KerasTuner's own rule: min, first value, False)."""
        given = self.marker.get("default")
        if self.kind == "choice":
            return self.to_hp(given) if given is not None else self.choices[0]
        if given is not None:
            return given
        return False if self.kind == "bool" else self.marker["min"]

    def to_spec(self, value: Any) -> Any:
        """The spec value for a KerasTuner value (labels become what they stand for)."""
        if self.kind == "choice" and self.labels is not None:
            return copy.deepcopy(self.marker["values"][self.index(value)])
        if self.kind == "float":
            return float(value)
        if self.kind == "int":
            return int(value)
        return value

    def to_hp(self, value: Any) -> Any:
        """The KerasTuner value of a spec value (a choice value becomes its label)."""
        if self.kind == "choice" and self.labels is not None:
            return self.labels[self.marker["values"].index(value)]
        return value

    def index(self, value: Any) -> int:
        """Position of the KerasTuner `value` among the choice's values."""
        choices = self.choices
        if value not in choices:
            raise SpecError(Problem(path=self.name, message=f"{value!r} is not one of the values of this choice",
                                    expected="one of: " + ", ".join(map(str, choices)), received=repr(value)))
        return choices.index(value)


def find_params(raw: Mapping[str, Any]) -> list[Param]:
    """Every marker of a resolved spec dict, parents before the params they condition.

    Raises:
        SpecError: a marker outside `model`, `training`, `data.batch_size` and
            `data.features.*.embedding_dim`, or an invalid marker inside an
            alternative (the schema checks markers at tunable fields, not ones
            nested in a choice's values).
    """
    params: list[Param] = []
    problems: list[Problem] = []
    for key, section in raw.items():
        if key == "vars":
            continue  # already interpolated; markers there are plain data
        if key in TUNABLE_SECTIONS:
            _collect(section, (key,), (), params, problems)
        elif key == "data" and isinstance(section, dict):
            for dkey, value in section.items():
                if dkey in TUNABLE_DATA_KEYS:
                    _collect(value, ("data", dkey), (), params, problems)
                elif dkey == "features" and isinstance(value, dict):
                    for fname, feature in value.items():
                        for fkey, fvalue in (feature.items() if isinstance(feature, dict) else ()):
                            where = ("data", "features", fname, fkey)
                            if fkey in TUNABLE_FEATURE_KEYS:
                                _collect(fvalue, where, (), params, problems)
                            else:
                                _reject(fvalue, where, problems)
                else:
                    _reject(value, ("data", dkey), problems)
        else:
            _reject(section, (key,), problems)
    if problems:
        raise SpecError(problems)
    return params


def substitute(raw: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """A copy of `raw` with every marker replaced by its value in `values`
    (KerasTuner form, keyed by param name) or, when absent, by its default.

    Markers inside a chosen alternative are filled too; alternatives not chosen
    disappear with their markers. Keys starting with `tuner/` (hyperband's
    bookkeeping) are ignored; any other unknown name is an error.
    """
    params = {p.name: p for p in find_params(raw)}
    unknown = [k for k in values if k not in params and not str(k).startswith(RESERVED_PREFIX)]
    if unknown:
        expected = "one of: " + ", ".join(params) if params else "no `tune:` markers"
        raise SpecError([Problem(path=str(k), message="not a tunable value of this spec", expected=expected)
                         for k in unknown])

    def fill(node: Any, path: tuple) -> Any:
        if is_marker(node):
            param = params[join_path(path)]
            chosen = values.get(param.name, param.default)
            if param.kind == "choice" and param.labels is not None:
                i = param.index(chosen)
                return fill(param.marker["values"][i], path + ("values", i))
            return param.to_spec(_check_value(param, chosen))
        if isinstance(node, dict) and path != ("vars",):
            return {k: fill(v, path + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v, path + (i,)) for i, v in enumerate(node)]
        return copy.deepcopy(node)

    return fill(dict(raw), ())


def defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The default value (KerasTuner form) of every param active under the defaults."""
    out: dict[str, Any] = {}
    for p in find_params(raw):
        if all(out.get(parent) == label for parent, label in p.conditions):
            out[p.name] = p.default
    return out


def has_markers(raw: Mapping[str, Any]) -> bool:
    """True when the spec declares anything to tune."""
    return bool(find_params(raw))


# ---------------------------------------------------------------- internals


_MARKER = TypeAdapter(TuneMarker)


def _collect(node: Any, path: tuple, conditions: tuple, params: list[Param], problems: list[Problem]) -> None:
    if is_marker(node):
        name = join_path(path)
        try:
            _MARKER.validate_python(node)
        except ValidationError as exc:
            for err in exc.errors():
                where = join_path(path + tuple(p for p in err["loc"] if p in node or isinstance(p, int)))
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(Problem(path=where or name, message=f"invalid tune marker: {msg}",
                                        received=_short(node)))
            return
        labels = _labels(node["values"]) if node["tune"] == "choice" else None
        param = Param(name=name, kind=node["tune"], marker=node, conditions=conditions, labels=labels)
        params.append(param)
        if labels is not None:
            for i, value in enumerate(node["values"]):
                _collect(value, path + ("values", i), conditions + ((name, labels[i]),), params, problems)
        return
    if isinstance(node, dict):
        for k, v in node.items():
            _collect(v, path + (k,), conditions, params, problems)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _collect(v, path + (i,), conditions, params, problems)


def _reject(node: Any, path: tuple, problems: list[Problem]) -> None:
    if is_marker(node):
        problems.append(Problem(
            path=join_path(path), message="this value cannot be tuned",
            expected="`tune:` markers under model, training, data.batch_size or data.features.*.embedding_dim",
            hint="data preprocessing is adapted once per search; give this a fixed value",
        ))
    elif isinstance(node, dict):
        for k, v in node.items():
            _reject(v, path + (k,), problems)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _reject(v, path + (i,), problems)


def _labels(values: list) -> tuple[str, ...] | None:
    """None when KerasTuner can hold the values as they are (one of str, int, float)."""
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and kinds <= {str, int, float}:
        return None
    labels: list[str] = []
    for i, v in enumerate(values):
        label = _label(v)
        if label in labels:
            label = f"{label}#{i}"
        labels.append(label)
    return tuple(labels)


def _label(value: Any) -> str:
    if isinstance(value, dict):
        for key in _DISCRIMINATORS:
            if isinstance(value.get(key), str):
                return value[key]
    if isinstance(value, str):
        return value
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= _LABEL_WIDTH else text[: _LABEL_WIDTH - 3] + "..."


def _check_value(param: Param, value: Any) -> Any:
    m = param.marker
    if param.kind == "bool":
        ok, expected = isinstance(value, bool), "true or false"
    elif param.kind == "choice":
        ok, expected = value in m["values"], "one of: " + ", ".join(map(str, param.choices))
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and m["min"] <= value <= m["max"] and (param.kind == "float" or float(value).is_integer())
        expected = f"{'an integer' if param.kind == 'int' else 'a number'} in [{m['min']}, {m['max']}]"
    if not ok:
        raise SpecError(Problem(path=param.name, message="value outside the search space", expected=expected,
                                received=repr(value)))
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
