"""The Python API that the CLI wraps. Each function parses nothing from the
command line and prints nothing; heavy imports happen inside the functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from kerasflow.spec.loader import LoadedSpec, load_spec

TEMPLATES = ("mlp", "cnn", "rnn", "transformer")


def validate(path: str | os.PathLike, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Load and validate a spec; raises `SpecError` listing every problem."""
    return load_spec(path, overrides)


def render(path: str | os.PathLike, overrides: Sequence[str] = ()) -> str:
    """The fully resolved spec, defaults filled in, as YAML."""
    import yaml

    loaded = load_spec(path, overrides)
    data = loaded.spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def json_schema() -> dict:
    """JSON Schema of a spec file, for editors (yaml-language-server)."""
    from kerasflow.model.registry import load_all
    from kerasflow.spec.schema import Spec

    schema = Spec.model_json_schema()
    layers, blocks = load_all()
    defs = schema.get("$defs", {})
    for kind, table in (("layer", layers), ("block", blocks)):
        for name, entry in table.items():
            props = defs.get(entry.params.__name__, {}).get("properties", {})
            if kind in props:  # one constant per type so editors complete `layer:` values
                props[kind] = {"const": name, "description": entry.doc or props[kind].get("description", "")}
    schema["properties"]["extends"] = {
        "description": "Spec files merged underneath this one (paths relative to this file).",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kerasflow spec"
    return schema


def plan(path: str | os.PathLike, overrides: Sequence[str] = (), plot: str | None = None) -> str:
    """Build the model without data and describe it (summary, shapes, memory, step time)."""
    from kerasflow.model.plan import plan_model

    return plan_model(load_spec(path, overrides), plot)


def reference() -> str:
    """Markdown reference of every spec key, layer and block."""
    from kerasflow.spec.reference import render_reference

    return render_reference()


def init(name: str, template: str = "mlp", directory: str | os.PathLike = ".") -> Path:
    """Write a starter spec `<directory>/<name>.yaml` from a template; never overwrites."""
    from importlib import resources

    from kerasflow.spec.errors import Problem, SpecError

    if template not in TEMPLATES:
        raise SpecError(Problem(path="--template", message=f"unknown template `{template}`",
                                expected="one of: " + ", ".join(TEMPLATES)))
    target = Path(directory) / f"{name}.yaml"
    if target.exists():
        raise SpecError(Problem(path=str(target), message="file exists; choose another name or remove it"))
    text = resources.files("kerasflow").joinpath(f"templates/{template}.yaml").read_text()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace("__NAME__", name))
    return target
