"""`kerasflow run`: the stages of a pipeline in order, each skipped when the
content hash of its inputs is unchanged since it last succeeded, and resumed
from where an interrupted run stopped.

State lives in `<run_dir>/pipeline.json`; each stage writes under `<run_dir>/<stage>/`.
This module only orchestrates: every stage calls into `kerasflow.api`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.spec.loader import LoadedSpec, load_spec
from kerasflow.spec.schema import PIPELINE_STAGES

DEFAULT_STAGES = ("validate", "train", "evaluate", "export")
STATE_FILE = "pipeline.json"


@dataclass
class StageOutcome:
    name: str
    status: str  # "ran", "cached", "skipped"
    seconds: float = 0.0
    outputs: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    run_dir: Path
    outcomes: list[StageOutcome]

    def outputs(self, stage: str) -> dict:
        for o in self.outcomes:
            if o.name == stage:
                return o.outputs
        return {}


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _without(raw: dict, *keys: str) -> dict:
    return {k: v for k, v in raw.items() if k not in keys}


def stage_inputs(stage: str, raw: dict, upstream: dict[str, str]) -> str:
    """The content hash of what a stage reads: the spec sections it uses and the
    hashes of the stages it depends on, so editing `export:` does not retrain."""
    fit = _without(raw, "tracking", "export", "stages", "name", "description")
    if stage == "validate":
        return _digest(stage, raw)
    if stage == "data":
        return _digest(stage, raw.get("data"), raw.get("seed"))
    if stage == "tune":
        return _digest(stage, fit, upstream.get("data"))
    if stage == "train":
        return _digest(stage, _without(fit, "tuning"), upstream.get("tune"), upstream.get("data"))
    if stage == "evaluate":
        return _digest(stage, upstream.get("train"))
    if stage == "export":
        return _digest(stage, upstream.get("train"), raw.get("export"), raw.get("name"))
    if stage == "register":
        return _digest(stage, upstream.get("export"), raw.get("tracking"))
    if stage == "serve_check":
        return _digest(stage, upstream.get("export"))
    raise ValueError(stage)


def select_stages(declared: Sequence[str], only: Sequence[str] = (), start: str | None = None) -> list[str]:
    """Apply `--only` and `--from` to the declared stage list."""
    problems = []
    for flag, names in (("--only", only), ("--from", [start] if start else [])):
        for n in names:
            if n not in declared:
                problems.append(Problem(path=flag, message=f"`{n}` is not a stage of this pipeline",
                                        expected="one of: " + ", ".join(declared)))
    if problems:
        raise SpecError(problems)
    stages = list(declared)
    if start:
        stages = stages[stages.index(start):]
    if only:
        stages = [s for s in stages if s in only]
    return stages


class _State:
    def __init__(self, run_dir: Path):
        self.path = run_dir / STATE_FILE
        self.data: dict = json.loads(self.path.read_text()) if self.path.exists() else {"stages": {}}

    def get(self, stage: str) -> dict:
        return self.data["stages"].get(stage, {})

    def put(self, stage: str, **entry) -> None:
        self.data["stages"][stage] = entry
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)  # atomic: a kill never leaves half a state file


def run_pipeline(path: str | os.PathLike, *, overrides: Sequence[str] = (), only: Sequence[str] = (),
                 start: str | None = None, run_dir: str | os.PathLike | None = None, quiet: bool = False,
                 echo: Callable[[str], None] = print) -> PipelineResult:
    """Run a pipeline's stages; return what each did."""
    loaded = load_spec(path, overrides)
    spec = loaded.spec
    declared = list(spec.stages or DEFAULT_STAGES)
    stages = select_stages(declared, only, start)
    run_dir = Path(run_dir) if run_dir else Path("runs") / spec.name / "pipeline"
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _State(run_dir)
    hashes: dict[str, str] = {}
    outcomes: list[StageOutcome] = []
    ctx = _Context(loaded=loaded, run_dir=run_dir, state=state, quiet=quiet, echo=echo)
    for stage in PIPELINE_STAGES:
        if stage not in declared:
            continue
        digest = stage_inputs(stage, ctx.raw_for(stage), hashes)
        hashes[stage] = digest
        prev = state.get(stage)
        if stage not in stages:
            ctx.outputs[stage] = prev.get("outputs", {})
            continue
        if prev.get("status") == "done" and prev.get("inputs") == digest and ctx.outputs_exist(stage, prev):
            echo(f"[{stage}] cached: inputs unchanged since {prev.get('finished', '?')}")
            ctx.outputs[stage] = prev.get("outputs", {})
            outcomes.append(StageOutcome(stage, "cached", 0.0, ctx.outputs[stage]))
            continue
        resume = prev.get("status") == "running" and prev.get("inputs") == digest
        echo(f"[{stage}] {'resuming' if resume else 'running'}")
        state.put(stage, status="running", inputs=digest, outputs=prev.get("outputs", {}) if resume else {})
        began = time.perf_counter()
        outputs = _RUNNERS[stage](ctx, resume)
        seconds = time.perf_counter() - began
        ctx.outputs[stage] = outputs
        state.put(stage, status="done", inputs=digest, outputs=outputs, seconds=round(seconds, 2),
                  finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        outcomes.append(StageOutcome(stage, "ran", seconds, outputs))
    return PipelineResult(run_dir=run_dir, outcomes=outcomes)


@dataclass
class _Context:
    """What stages share: the spec, the pipeline dir, earlier stages' outputs."""

    loaded: LoadedSpec
    run_dir: Path
    state: _State
    quiet: bool
    echo: Callable[[str], None]
    outputs: dict[str, dict] = field(default_factory=dict)
    prepared: Any = None  # PreparedData, made once and shared by the stages of one run

    def raw_for(self, stage: str) -> dict:
        """The spec a stage uses: after `tune`, training uses the best values."""
        best = self.outputs.get("tune", {}).get("best_spec")
        if stage in ("train", "evaluate", "export", "register", "serve_check") and best and Path(best).exists():
            return load_spec(best).raw
        return self.loaded.raw

    def outputs_exist(self, stage: str, entry: dict) -> bool:
        paths = [v for k, v in entry.get("outputs", {}).items() if k.endswith(("_dir", "_path", "_spec"))]
        return all(Path(p).exists() for p in paths if isinstance(p, str))


# ---------------------------------------------------------------- stage runners
# Each takes the shared context and whether it resumes an interrupted attempt,
# calls into the library, and returns the JSON-able outputs recorded in
# pipeline.json (keys ending in _dir/_path/_spec are checked to still exist).


def _loaded_for_training(ctx: _Context) -> LoadedSpec:
    from kerasflow.spec.loader import load_spec_dict

    raw = ctx.raw_for("train")
    return ctx.loaded if raw is ctx.loaded.raw else load_spec_dict(raw)


def _data(ctx: _Context):
    if ctx.prepared is None:
        from kerasflow.data.pipeline import prepare_data

        ctx.prepared = prepare_data(ctx.loaded.spec)
    return ctx.prepared


def _run_validate(ctx: _Context, resume: bool) -> dict:
    return {"spec_hash": ctx.loaded.hash}


def _run_data(ctx: _Context, resume: bool) -> dict:
    data = _data(ctx)
    return {"fingerprint": data.fingerprint, "sizes": dict(getattr(data, "sizes", {}) or {})}


def _run_tune(ctx: _Context, resume: bool) -> dict:
    from kerasflow.tune.tuners import tune

    result = tune(ctx.loaded, run_dir=ctx.run_dir / "tune", quiet=ctx.quiet, data=_data(ctx))
    return {"best_spec": str(result.best_spec_path), "best_values": result.best_values,
            "best_score": result.best_score, "run_dir": str(ctx.run_dir / "tune")}


def _run_train(ctx: _Context, resume: bool) -> dict:
    import shutil

    from kerasflow.train import rundir as rd
    from kerasflow.train.stages import train

    run_dir = ctx.run_dir / "train"
    if resume and (run_dir / rd.SPEC_FILE).exists():
        result = train(resume=run_dir, quiet=ctx.quiet, data=_data(ctx))
    else:
        if run_dir.exists():  # outputs of other inputs: this run replaces them
            shutil.rmtree(run_dir)
        result = train(_loaded_for_training(ctx), run_dir=run_dir, quiet=ctx.quiet, data=_data(ctx))
    return {"run_dir": str(run_dir), "metrics": result.metrics, "mlflow_run_id": result.mlflow_run_id}


def _train_dir(ctx: _Context) -> Path:
    train_dir = ctx.outputs.get("train", {}).get("run_dir")
    if not train_dir:
        raise SpecError(Problem(path="stages", message="this stage needs the outputs of `train`",
                                hint="add `train` before it in `stages:`, or run it once without --only/--from"))
    return Path(train_dir)


def _run_evaluate(ctx: _Context, resume: bool) -> dict:
    from kerasflow.train.evaluate import evaluate_run

    result = evaluate_run(_train_dir(ctx), "test")
    return {"metrics": result["metrics"], "evaluation_path": str(_train_dir(ctx) / "evaluation_test.json")}


def _run_export(ctx: _Context, resume: bool) -> dict:
    from kerasflow import api

    spec = ctx.loaded.spec
    result = api.export(_train_dir(ctx), data=_data(ctx), settings=spec.export,
                        base_path=spec.export.base_path or Path("models") / spec.name)
    return {"export_path": str(result.path), "base_path": str(result.path.parent), "version": result.version,
            "parity_max_abs_diff": result.parity_max_abs_diff}


def _run_register(ctx: _Context, resume: bool) -> dict:
    import json

    from kerasflow.track.mlflow import RunTracker
    from kerasflow.train import rundir as rd

    spec = ctx.loaded.spec
    if not spec.tracking.enabled or not spec.tracking.register_as:
        raise SpecError(Problem(path="tracking.register_as", message="stage `register` needs tracking enabled and "
                                "`tracking.register_as: NAME`"))
    train_dir = _train_dir(ctx)
    state = rd.read_state(train_dir)
    metrics = json.loads((train_dir / rd.METRICS_FILE).read_text())
    objective, mode = _registry_objective(spec, metrics)
    tracker = RunTracker(spec.tracking.model_dump(), spec_dict={}, run_dir=train_dir, kind="register")
    tracker.start(resume_run_id=state.get("mlflow_run_id"))
    try:
        decision = tracker.register(state.get("mlflow_model_uri") or f"runs:/{state.get('mlflow_run_id')}/model",
                                    spec.tracking.register_as, alias=spec.tracking.alias, objective=objective,
                                    mode=mode, value=metrics.get(objective))
    finally:
        tracker.end("FINISHED")
    return {"registered_version": decision.get("version"), "alias_moved": decision.get("moved"),
            "reason": decision.get("reason")}


def _registry_objective(spec, metrics: dict) -> tuple[str, str]:
    """The test metric that decides whether the alias moves, and its direction."""
    if spec.tuning is not None:
        name = spec.tuning.objective_name().removeprefix("val_")
        if f"test_{name}" in metrics:
            return f"test_{name}", "min" if "loss" in name or "error" in name else "max"
    for name in metrics:
        if name != "test_loss" and "loss" not in name:
            return name, "min" if any(w in name for w in ("error", "mae", "mse")) else "max"
    return "test_loss", "min"


def _run_serve_check(ctx: _Context, resume: bool) -> dict:
    """Serve the exported version on a free port, send real rows over REST, and
    compare the answers with the trained Keras model's predictions."""
    import json
    import urllib.request

    import numpy as np

    from kerasflow.serve.server import EmbeddedServer
    from kerasflow.train import rundir as rd
    from kerasflow.train.evaluate import load_run_model

    export = ctx.outputs.get("export", {})
    if not export.get("base_path"):
        raise SpecError(Problem(path="stages", message="stage `serve_check` needs the outputs of `export`"))
    data = _data(ctx)
    rows = data.sample_inputs(max(ctx.loaded.spec.export.warmup_requests, 8),
                              "validation" if data.validation is not None else "test")
    model = load_run_model(rd.read_run(_train_dir(ctx), need_model=True))
    expected = model.predict(_tensors(rows), verbose=0)
    name = Path(export["base_path"]).name
    payload = {"inputs": {k: np.asarray(v).tolist() for k, v in rows.items()}}
    with EmbeddedServer(export["base_path"], model_name=name, rest_port=0, grpc_port=None).start() as server:
        request = urllib.request.Request(f"{server.rest_url}/v1/models/{name}/versions/{export['version']}:predict",
                                         data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            outputs = json.loads(response.read())["outputs"]
    diff = _max_abs_diff(expected, outputs, ctx.loaded.spec)
    tol = max(ctx.loaded.spec.export.atol, 1e-4)
    if not diff <= tol:
        raise SpecError(Problem(path="export.atol", message="the served model disagrees with the trained model",
                                expected=f"max |served - keras| <= {tol}", received=f"{diff:.3g}"))
    n = len(next(iter(rows.values())))
    ctx.echo(f"[serve_check] {n} rows served over REST match the trained model (max abs diff {diff:.2g})")
    return {"served_rows": n, "max_abs_diff": diff}


def _tensors(rows: dict) -> dict:
    """Keras' predict refuses numpy object arrays: pass string columns as tf strings."""
    import numpy as np
    import tensorflow as tf

    return {k: tf.constant(np.asarray(v).astype(str)) if np.asarray(v).dtype.kind in "OUS" else v
            for k, v in rows.items()}


def _max_abs_diff(expected, served, spec) -> float:
    """Compare Keras outputs (dict by target) with the served float outputs."""
    import numpy as np

    expected = expected if isinstance(expected, dict) else {spec.data.targets()[0].name: expected}
    if not isinstance(served, dict):
        served = {next(iter(expected)): served}
    worst = 0.0
    for target, value in expected.items():
        value = np.asarray(value, dtype=np.float64)
        candidates = [k for k in served if k in (target, "probabilities", f"{target}/probabilities")]
        if not candidates:
            raise SpecError(Problem(path="export", message=f"served outputs lack `{target}`",
                                    received=", ".join(served)))
        got = np.asarray(served[candidates[0]], dtype=np.float64)
        if got.shape != value.shape and value.shape[-1:] == (1,) and got.shape[-1:] == (2,):
            got = got[..., 1:]  # binary: served [1-p, p], Keras p
        worst = max(worst, float(np.max(np.abs(got.reshape(value.shape) - value))))
    return worst


_RUNNERS: dict[str, Callable[[_Context, bool], dict]] = {
    "validate": _run_validate, "data": _run_data, "tune": _run_tune, "train": _run_train,
    "evaluate": _run_evaluate, "export": _run_export, "register": _run_register, "serve_check": _run_serve_check,
}
