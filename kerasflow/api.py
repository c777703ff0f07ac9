"""The Python API that the CLI wraps. Each function parses nothing from the
command line and prints nothing; heavy imports happen inside the functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from kerasflow.spec.loader import LoadedSpec, load_spec

TEMPLATES = ("mlp", "cnn", "rnn", "transformer")


def validate(path: str | os.PathLike, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Load and validate a spec; raises `SpecError` listing every problem."""
    return load_spec(path, overrides)


def render(path: str | os.PathLike, overrides: Sequence[str] = (), explicit: bool = False) -> str:
    """The fully resolved spec, defaults filled in, as YAML.

    An `auto` model is written as its `auto:` choices, or with `explicit` as
    the ordinary `model.nodes` graph it expands to (same layers, same names:
    it builds and trains the same model)."""
    import yaml

    loaded = load_spec(path, overrides)
    data = loaded.spec.model_dump(mode="json", exclude_none=True)
    _keep_meaningful_nulls(loaded.spec, data)
    model = loaded.spec.model
    if model.auto is not None:
        # Values equal to their defaults are left out, so a null that differs from its default stays.
        drop = {"auto"} if explicit else {"nodes", "outputs"}
        data["model"] = model.model_dump(mode="json", exclude_defaults=True, exclude=drop)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    names = model.inputs if model.inputs is not None else list(loaded.spec.data.features)
    graph = model.graph(default_input=names[0] if len(names) == 1 else None)
    if model.nodes is None or list(graph) != list(model.nodes):  # `repeat` expanded: show the nodes it makes
        data["model"].pop("sequential", None)
        data["model"]["nodes"] = {}
        for name, node in graph.items():
            data["model"]["nodes"][name] = node.model_dump(mode="json", exclude_none=True)
            _keep_meaningful_nulls(node, data["model"]["nodes"][name])
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def _keep_meaningful_nulls(value, dumped) -> None:
    """Put back the nulls `exclude_none` dropped where null is not the default
    (e.g. a backbone's `weights: null`), so the rendered spec means the same."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if item is None and field.default is not None and field.default_factory is None:
                dumped[name] = None
            elif name in dumped:
                _keep_meaningful_nulls(item, dumped[name])
    elif isinstance(value, (list, tuple)) and isinstance(dumped, list):
        for item, out in zip(value, dumped):
            _keep_meaningful_nulls(item, out)
    elif isinstance(value, dict) and isinstance(dumped, dict):
        for key, item in value.items():
            _keep_meaningful_nulls(item, dumped.get(key))


def json_schema() -> dict:
    """JSON Schema of a spec file, for editors (yaml-language-server)."""
    from kerasflow.spec.registry import load_all
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
    loaded = load_spec(path, overrides)  # spec errors first: the import below takes seconds
    from kerasflow.model.plan import plan_model

    return plan_model(loaded, plot)


def train(path: str | os.PathLike | None = None, overrides: Sequence[str] = (), *, run_dir=None, resume=None,
          quiet: bool = False, workers: str | Sequence[str] | None = None, worker_index: int | None = None):
    """Train a spec through its stages (or continue `resume`); returns a `TrainResult`.

    `workers` (every worker's host:port) and `worker_index` place this process in
    a `distribution: multi_worker` cluster (default: the TF_CONFIG variable)."""
    loaded = load_spec(path, overrides) if path is not None else None  # spec errors before TensorFlow
    from kerasflow.train.stages import train as _train

    return _train(loaded, run_dir=run_dir, resume=resume, quiet=quiet, workers=workers, worker_index=worker_index)


def evaluate(run_dir: str | os.PathLike, split: str = "test") -> dict:
    """Metrics of a trained run on a split, with per-class precision/recall/F1."""
    from kerasflow.train.evaluate import evaluate_run

    return evaluate_run(run_dir, split)


def predict(run_dir: str | os.PathLike, input_file: str | os.PathLike, output_file: str | os.PathLike) -> int:
    """Predict raw-feature rows from CSV/Parquet/JSONL; returns rows written."""
    from kerasflow.train.evaluate import predict_run

    return predict_run(run_dir, input_file, output_file)


def tune(path: str | os.PathLike, overrides: Sequence[str] = (), **options):
    """Run (or resume) the KerasTuner search a spec declares; returns a `TuneResult`."""
    loaded = load_spec(path, overrides)  # spec errors before KerasTuner and TensorFlow (seconds)
    if loaded.spec.tracking.enabled:  # the worker opens the MLflow store while KerasTuner and TensorFlow import
        from kerasflow.track.mlflow import warm_up

        warm_up(loaded.spec.tracking.model_dump(), loaded.raw)
    from kerasflow.tune.tuners import tune as _tune

    return _tune(loaded, **options)


def export(run_dir: str | os.PathLike, *, base_path: str | os.PathLike | None = None, version: int | None = None,
           keep: int | None = None, tfserving_config: str | os.PathLike | None = None, data=None, settings=None):
    """Export a trained run as the next TF Serving version; returns an `ExportResult`.

    `settings` (an `ExportSpec`) replaces the run's own `export:` section, for a
    pipeline whose training was cached but whose export settings changed."""
    from kerasflow.export.trained import export_run

    return export_run(run_dir, base_path=base_path, version=version, keep=keep, tfserving_config=tfserving_config,
                      data=data, settings=settings)


def serve(base_path: str | os.PathLike, **options) -> int:
    """Serve a TF Serving base path until interrupted; returns an exit code."""
    from kerasflow.serve.server import serve as _serve

    return _serve(base_path, **options)


def ui(uri: str | None = None, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the MLflow UI against the configured store until interrupted."""
    from kerasflow.track.mlflow import resolve_uri
    from kerasflow.track.ui import launch_ui

    return launch_ui(uri or resolve_uri({}), host=host, port=port)


def run(path: str | os.PathLike, overrides: Sequence[str] = (), **options):
    """Run a pipeline's stages; returns a `PipelineResult`."""
    from kerasflow.pipeline import run_pipeline

    return run_pipeline(path, overrides=overrides, **options)


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
