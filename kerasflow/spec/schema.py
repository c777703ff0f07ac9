"""The typed, frozen `Spec` and `validate_spec`, which turns a resolved dict
into a `Spec` or a `SpecError` listing every problem with its source location."""

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kerasflow.spec.auto import AutoSpec, expand
from kerasflow.spec.base import SafeName, Seed, SpecModel
from kerasflow.spec.checks import cross_check
from kerasflow.spec.data_schema import DataSpec
from kerasflow.spec.errors import Location, Locations, Problem, SpecError, did_you_mean, join_path, locate
from kerasflow.spec.imports import import_modules, imports_allowed
from kerasflow.spec.model_schema import ModelSpec
from kerasflow.spec.registry import UNCHECKED_TYPES, UNKNOWN_NODE, load_all, node_entry
from kerasflow.spec.sections import ExportSpec, TrackingSpec, TuningSpec
from kerasflow.spec.training_schema import TrainingSpec

FORMAT_VERSION = 1
PIPELINE_STAGES = ("validate", "data", "tune", "train", "evaluate", "export", "register", "serve_check")


class Spec(SpecModel):
    """A kerasflow experiment: data, model, training, and optional tuning/tracking/export."""

    kerasflow: Literal[1] = Field(description="Spec format version.")
    name: SafeName = Field(description="Experiment name (runs/<name>/...).")
    description: str = Field("", description="Free text about the experiment (logged to MLflow).")
    seed: Seed = Field(42, description="Seed for splits, shuffling, initializers and tuners.")
    vars: dict[str, Any] = Field(default_factory=dict, description="Values for ${name} interpolation.")
    data: DataSpec = Field(description="Where the data comes from, its features, target(s) and split.")
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(auto=AutoSpec()),
                             description="The architecture (default: `auto`, chosen from the feature types).")
    training: TrainingSpec = Field(description="Loss, metrics and the training stages.")
    tuning: TuningSpec | None = Field(None, description="KerasTuner search over the spec's `tune:` markers.")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow tracking (on by default).")
    export: ExportSpec = Field(default_factory=ExportSpec, description="SavedModel export for TF Serving.")
    stages: list[Literal[PIPELINE_STAGES]] | None = Field(None, description="Pipeline stages run by `kerasflow run`.")

    @model_validator(mode="after")
    def _expand_auto(self):
        # An auto model becomes an ordinary node graph here, once: everything downstream sees `nodes`.
        model = self.model
        if model.auto is None or model.nodes is not None:
            return self
        inputs = model.inputs if model.inputs is not None else list(self.data.features)
        missing = [n for n in inputs if n not in self.data.features]
        if missing:
            return self  # cross_check reports unknown inputs
        raw_nodes, outputs = expand(model.auto, self.data, inputs)
        nodes = {}
        for name, node in raw_nodes.items():
            try:
                nodes[name] = node_entry(node).params.model_validate(node)
            except ValidationError as exc:  # e.g. a marker where the node field takes a plain value
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"model.auto: node `{name}`.{where}: {first['msg']}") from None
        expanded = model.model_copy(update={"nodes": nodes, "outputs": outputs})
        return self.model_copy(update={"model": expanded})

    @field_validator("kerasflow", mode="before")
    @classmethod
    def _version_is_an_int(cls, value: Any) -> Any:
        if type(value) is not int:  # Literal[1] alone lets `true` and `1.0` through
            raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
        return value


def validate_spec(raw: Any, locs: Locations | None = None) -> Spec:
    """Validate a resolved spec dict; raise one `SpecError` with every problem."""
    locs = locs or {}
    model = raw.get("model") if isinstance(raw, dict) else None
    context: dict[str, Any] = {}
    if isinstance(model, dict) and isinstance(model.get("imports"), list) and model["imports"]:
        if imports_allowed():
            import_modules(model["imports"], locs)
        else:  # check everything else; nodes of types the imports may register stay unchecked
            context[UNCHECKED_TYPES] = True
    try:
        spec = Spec.model_validate(raw, context=context)
    except ValidationError as exc:
        problems = [_translate(err, raw, locs, context) for err in exc.errors()]
        raise SpecError(_dedupe(problems)) from None
    problems = cross_check(spec, locs)
    if problems:
        raise SpecError(problems)
    return spec


def _walk(raw: Any, loc: tuple, missing: bool = False) -> tuple[tuple, Any, Any]:
    """Follow a pydantic error loc through the input, dropping union tags and
    union member names (parts that are not keys of the data).

    Returns (data path, parent object, value)."""
    path: list = []
    parent, cur = None, raw
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            parent, cur = cur, cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            parent, cur = cur, cur[part]
            path.append(part)
        elif missing and i == len(loc) - 1 and isinstance(cur, dict):
            path.append(part)  # the missing key itself: name it, there is no value
            parent, cur = cur, None
    return tuple(path), parent, cur


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _translate(err: dict, raw: Any, locs: Locations, context: dict) -> Problem:
    etype = err["type"]
    path, parent, value = _walk(raw, err["loc"], missing=etype == "missing")
    location = locate(locs, path)
    dotted = join_path(path)
    if etype == "extra_forbidden":
        key = path[-1] if path else "?"
        hint, allowed = context.get("suggestions", {}).get((id(parent), key), (None, []))
        return Problem(
            path=dotted, message=f"unknown key `{key}`", location=locs.get(path, location),
            expected="one of: " + ", ".join(allowed) if allowed else None, hint=hint,
        )
    if etype == "missing":
        return Problem(path=dotted, message=f"missing required key `{path[-1] if path else ''}`", location=location)
    if etype == UNKNOWN_NODE:
        return _unknown_node(dotted, value, location, locs.get(path + ("layer",)) or locs.get(path + ("block",)))
    if etype == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        field = str(ctx.get("discriminator", "type")).strip("'")
        tag = ctx.get("tag")
        field_loc = locs.get(path + (field,), location)
        return Problem(
            path=join_path(path + (field,)), message=f"unknown {field} `{tag}`", location=field_loc,
            expected="one of: " + ", ".join(tags), received=_short(tag), hint=did_you_mean(str(tag), tags),
        )
    if etype == "union_tag_not_found":
        field = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        return Problem(path=dotted, message=f"missing required key `{field}`", location=location)
    msg = err["msg"]
    if msg.startswith("Value error, "):  # our validators word the whole message
        return Problem(path=dotted, message=msg[len("Value error, "):], location=location)
    expected = msg[len("Input should be "):] if msg.startswith("Input should be ") else msg
    hint = None
    if etype == "literal_error":
        hint = did_you_mean(str(value), re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", "")))
    return Problem(path=dotted, message="invalid value", expected=expected, received=_short(value),
                   location=location, hint=hint)


def _unknown_node(dotted: str, value: Any, location: Location | None, kind_location: Location | None) -> Problem:
    if not isinstance(value, dict):
        return Problem(path=dotted, message="expected a node mapping with a `layer` or `block` key",
                       received=_short(value), location=location)
    layers, blocks = load_all()  # every name, for the suggestion
    if "layer" in value:
        kind, names = "layer", sorted(layers)
    elif "block" in value:
        kind, names = "block", sorted(blocks)
    else:
        return Problem(path=dotted, message="node needs a `layer:` or `block:` key", received=_short(value),
                       location=location)
    name = value[kind]
    other = blocks if kind == "layer" else layers
    hint = did_you_mean(str(name), names)
    if str(name) in other:
        hint = f"`{name}` is a {'block' if kind == 'layer' else 'layer'}: write `{'block' if kind == 'layer' else 'layer'}: {name}`"
    return Problem(path=f"{dotted}.{kind}", message=f"unknown {kind} `{name}`", location=kind_location or location,
                   expected=f"a registered {kind} (`kerasflow schema` lists them)", received=_short(name), hint=hint)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.path, p.message, p.expected)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


__all__ = ["Spec", "validate_spec", "Locations", "FORMAT_VERSION", "PIPELINE_STAGES"]
