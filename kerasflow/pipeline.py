"""`kerasflow run`: the stages of a pipeline in order, each skipped when the
content hash of its inputs is unchanged since it last succeeded, and resumed
from where an interrupted run stopped.

State lives in `<run_dir>/pipeline.json`; each stage writes under `<run_dir>/<stage>/`.
This module only orchestrates: `STAGES` is one record per stage (its name,
what its content hash covers, what it runs), and every runner calls into the
library. The order of stages is `kerasflow.spec.schema.PIPELINE_STAGES`.

With `training.distribution: multi_worker`, every worker runs `kerasflow run`
(the cluster from `workers`/`worker_index` or `TF_CONFIG`): the chief runs the
pipeline; another worker joins the chief's `train` stage only.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kerasflow.runs import SPEC_FILE, default_dir, write_text
from kerasflow.spec.errors import Problem, SpecError
from kerasflow.spec.loader import LoadedSpec, load_spec, load_spec_dict, spec_hash
from kerasflow.spec.schema import PIPELINE_STAGES

DEFAULT_STAGES = ("validate", "train", "evaluate", "export")
STATE_FILE = "pipeline.json"
_JOIN_TIMEOUT_SECONDS = 1800  # how long a non-chief worker waits for the chief to reach `train`


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


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: as written in `stages:`.
        reads: (spec dict, upstream hashes) -> what the stage's content hash covers.
        run: (context, resume) -> the JSON-able outputs recorded in pipeline.json
            (keys ending in _dir/_path/_spec are checked to still exist).
        trained_spec: reads the spec with the tuned values (after `tune`).
    """

    name: str
    reads: Callable[[dict, dict], Any]
    run: Callable[["_Context", bool], dict]
    trained_spec: bool = False


def _without(raw: dict, *keys: str) -> dict:
    return {k: v for k, v in raw.items() if k not in keys}


def _fit_inputs(raw: dict) -> dict:
    return _without(raw, "tracking", "export", "stages", "name", "description")


def stage_inputs(stage: str, raw: dict, upstream: dict[str, str]) -> str:
    """The content hash of what a stage reads: the spec sections it uses and the
    hashes of the stages it depends on, so editing `export:` does not retrain."""
    if stage not in _TABLE:
        raise ValueError(stage)
    return spec_hash({"stage": stage, "reads": _TABLE[stage].reads(raw, upstream)})


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
    def __init__(self, run_dir: Path, *, read_only: bool = False):
        self.path = run_dir / STATE_FILE
        self.read_only = read_only
        self.data: dict = self._read()

    def _read(self) -> dict:
        if not self.path.exists():
            return {"stages": {}}
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(Problem(path=str(self.path), message=f"corrupt pipeline state: not valid JSON ({exc})",
                                    hint="delete it to run every stage again")) from None
        if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
            raise SpecError(Problem(path=str(self.path), message="corrupt pipeline state: no `stages` object",
                                    hint="delete it to run every stage again"))
        return data

    def reload(self) -> None:
        self.data = self._read()

    def get(self, stage: str) -> dict:
        return self.data["stages"].get(stage, {})

    def put(self, stage: str, **entry) -> None:
        self.data["stages"][stage] = entry
        if self.read_only:
            return
        write_text(self.path, json.dumps(self.data, indent=2, default=str))  # a kill never leaves half a state file


def run_pipeline(path: str | os.PathLike, *, overrides: Sequence[str] = (), only: Sequence[str] = (),
                 start: str | None = None, run_dir: str | os.PathLike | None = None, quiet: bool = False,
                 echo: Callable[[str], None] = print, workers: str | Sequence[str] | None = None,
                 worker_index: int | None = None) -> PipelineResult:
    """Run a pipeline's stages; return what each did.

    Args:
        path: the pipeline spec.
        overrides: `--set` values.
        only, start: `--only` and `--from`.
        run_dir: the pipeline directory (default `runs/<name>/pipeline/`).
        quiet: no per-epoch output.
        echo: where progress lines go.
        workers, worker_index: this process's place in a `multi_worker` cluster
            (default: `TF_CONFIG`); see the module docstring.
    """
    loaded = load_spec(path, overrides)
    spec = loaded.spec
    declared = list(spec.stages or DEFAULT_STAGES)
    stages = select_stages(declared, only, start)
    run_dir = Path(run_dir) if run_dir else default_dir(spec.name, "pipeline")
    cluster = _cluster(spec, declared, workers, worker_index)
    if {"data", "tune", "train"} & set(stages):
        from kerasflow.train.session import check_shapes

        check_shapes(loaded)  # `kerasflow plan`'s checks, before any stage prepares data
    joining = cluster is not None and not cluster.is_chief
    if not joining:
        run_dir.mkdir(parents=True, exist_ok=True)
    state = _State(run_dir, read_only=joining)
    hashes: dict[str, str] = {}
    outcomes: list[StageOutcome] = []
    ctx = _Context(loaded=loaded, run_dir=run_dir, quiet=quiet, echo=echo, cluster=cluster,
                   cluster_args={"workers": workers, "worker_index": worker_index} if cluster else {})
    for stage in (s for s in PIPELINE_STAGES if s in declared):
        record = _TABLE[stage]
        digest = stage_inputs(stage, ctx.raw_for(record), hashes)
        hashes[stage] = digest
        prev = state.get(stage)
        if stage not in stages or (joining and stage != "train"):
            ctx.outputs[stage] = prev.get("outputs", {})
            continue
        if joining:
            prev = _await_chief(state, digest, echo)
        if prev.get("status") == "done" and prev.get("inputs") == digest and _outputs_exist(prev):
            echo(f"[{stage}] cached: inputs unchanged since {prev.get('finished', '?')}")
            ctx.outputs[stage] = prev.get("outputs", {})
            outcomes.append(StageOutcome(stage, "cached", 0.0, ctx.outputs[stage]))
            continue
        resume = prev.get("resume", False) if joining else (prev.get("status") == "running"
                                                              and prev.get("inputs") == digest)
        echo(f"[{stage}] {'resuming' if resume else 'running'}{' (joining the chief)' if joining else ''}")
        state.put(stage, status="running", inputs=digest, outputs=prev.get("outputs", {}) if resume else {},
                  resume=resume, started=time.time())
        began = time.perf_counter()
        outputs = record.run(ctx, resume)
        seconds = time.perf_counter() - began
        ctx.outputs[stage] = outputs
        state.put(stage, status="done", inputs=digest, outputs=outputs, seconds=round(seconds, 2),
                  finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        outcomes.append(StageOutcome(stage, "ran", seconds, outputs))
    return PipelineResult(run_dir=run_dir, outcomes=outcomes)


def _cluster(spec, declared: list[str], workers, worker_index):
    """This process's place in a multi_worker cluster, or None for other distributions."""
    from kerasflow.train.multi_worker_stages import uses_multi_worker

    if not uses_multi_worker(spec, workers, worker_index):
        return None
    if "tune" in declared:
        raise SpecError(Problem(path="stages", message="a multi_worker pipeline cannot tune: KerasTuner trains "
                                "with Keras `fit`", hint="tune in a pipeline with another distribution, then train "
                                "its best.yaml with multi_worker"))
    from kerasflow.train.cluster import resolve_cluster
    from kerasflow.train.multi_worker import make_multi_worker_strategy

    cluster = resolve_cluster(workers, worker_index)
    make_multi_worker_strategy(cluster)  # before any TensorFlow op of this process (the data stage)
    return cluster


def _await_chief(state: _State, digest: str, echo) -> dict:
    """A joining worker's view of `train`: wait until the chief has started it
    (or finds it cached) for these inputs, and decide alike."""
    began, deadline = time.time(), time.monotonic() + _JOIN_TIMEOUT_SECONDS
    echo("[train] waiting for the chief to start training")
    while time.monotonic() < deadline:
        state.reload()
        entry = state.get("train")
        if entry.get("inputs") == digest:
            if entry.get("status") == "done" and entry.get("finished") and _outputs_exist(entry):
                return entry
            if entry.get("status") == "running" and float(entry.get("started", 0)) >= began - 60:
                return entry
        time.sleep(0.5)
    raise SpecError(Problem(path="training.distribution", message=f"the chief did not start `train` in {state.path} "
                            f"within {_JOIN_TIMEOUT_SECONDS} s", hint="start the chief (worker 0) with the same "
                            "pipeline and --run-dir, on storage every worker sees"))


def _outputs_exist(entry: dict) -> bool:
    paths = [v for k, v in entry.get("outputs", {}).items() if k.endswith(("_dir", "_path", "_spec"))]
    return all(Path(p).exists() for p in paths if isinstance(p, str))


@dataclass
class _Context:
    """What stages share: the spec, the pipeline dir, earlier stages' outputs."""

    loaded: LoadedSpec
    run_dir: Path
    quiet: bool
    echo: Callable[[str], None]
    cluster: Any = None  # kerasflow.train.cluster.Cluster of a multi_worker pipeline
    cluster_args: dict = field(default_factory=dict)  # what `train` resolves the same cluster from
    outputs: dict[str, dict] = field(default_factory=dict)
    prepared: Any = None  # PreparedData, made once and shared by the stages of one run

    def raw_for(self, record: Stage) -> dict:
        """The spec a stage uses: after `tune`, training uses the best values."""
        best = self.outputs.get("tune", {}).get("best_spec")
        if record.trained_spec and best and Path(best).exists():
            return load_spec(best).raw
        return self.loaded.raw

    def trained(self) -> LoadedSpec:
        raw = self.raw_for(_TABLE["train"])
        return self.loaded if raw is self.loaded.raw else load_spec_dict(raw)

    def data(self):
        """Prepared once from the pipeline's spec; training rebatches to a tuned batch size."""
        if self.prepared is None:
            from kerasflow.data.pipeline import prepare_data

            self.prepared = prepare_data(self.loaded.spec)
        return self.prepared

    def train_dir(self) -> Path:
        train_dir = self.outputs.get("train", {}).get("run_dir")
        if not train_dir:
            raise SpecError(Problem(path="stages", message="this stage needs the outputs of `train`",
                                    hint="add `train` before it in `stages:`, or run it once without --only/--from"))
        return Path(train_dir)


# ---------------------------------------------------------------- stage runners
# Each takes the shared context and whether it resumes an interrupted attempt,
# calls into the library, and returns the outputs recorded in pipeline.json.


def _run_validate(ctx: _Context, resume: bool) -> dict:
    return {"spec_hash": ctx.loaded.hash}


def _run_data(ctx: _Context, resume: bool) -> dict:
    data = ctx.data()
    return {"fingerprint": data.fingerprint, "sizes": dict(getattr(data, "sizes", {}) or {})}


def _run_tune(ctx: _Context, resume: bool) -> dict:
    from kerasflow.tune.tuners import tune

    result = tune(ctx.loaded, run_dir=ctx.run_dir / "tune", quiet=ctx.quiet, data=ctx.data())
    return {"best_spec": str(result.best_spec_path), "best_values": result.best_values,
            "best_score": result.best_score, "run_dir": str(ctx.run_dir / "tune")}


def _run_train(ctx: _Context, resume: bool) -> dict:
    import shutil

    from kerasflow.train.stages import train

    run_dir = ctx.run_dir / "train"
    loaded = ctx.trained()
    if resume and (run_dir / SPEC_FILE).exists():
        result = train(resume=run_dir, quiet=ctx.quiet, data=ctx.data(), register=False, **ctx.cluster_args)
    else:
        if run_dir.exists() and (ctx.cluster is None or ctx.cluster.is_chief):  # outputs of other inputs
            shutil.rmtree(run_dir)
        result = train(loaded, run_dir=run_dir, quiet=ctx.quiet, data=ctx.data(), register=False, **ctx.cluster_args)
    return {"run_dir": str(run_dir), "metrics": result.metrics, "mlflow_run_id": result.mlflow_run_id}


def _run_evaluate(ctx: _Context, resume: bool) -> dict:
    from kerasflow.train.evaluate import evaluate_run

    result = evaluate_run(ctx.train_dir(), "test")
    return {"metrics": result["metrics"], "evaluation_path": str(ctx.train_dir() / "evaluation_test.json")}


def _run_export(ctx: _Context, resume: bool) -> dict:
    from kerasflow.export.names import base_path
    from kerasflow.export.trained import export_run

    spec = ctx.loaded.spec
    result = export_run(ctx.train_dir(), data=ctx.data(), settings=spec.export, base_path=base_path(spec))
    return {"export_path": str(result.path), "base_path": str(result.path.parent), "version": result.version,
            "parity_max_abs_diff": result.parity_max_abs_diff}


def _run_register(ctx: _Context, resume: bool) -> dict:
    from kerasflow.train.registration import register_run

    spec = ctx.loaded.spec
    if not spec.tracking.enabled or not spec.tracking.register_as:
        raise SpecError(Problem(path="tracking.register_as", message="stage `register` needs tracking enabled and "
                                "`tracking.register_as: NAME`"))
    decision = register_run(ctx.train_dir())
    return {"registered_version": decision.get("version"), "alias_moved": decision.get("moved"),
            "reason": decision.get("reason")}


def _run_serve_check(ctx: _Context, resume: bool) -> dict:
    """Serve the exported version on a free port, send real rows over REST, and
    hold the answers to what the trained model's serving signature computes."""
    from kerasflow.export.names import served_name
    from kerasflow.export.parity import compare_served, expected_outputs
    from kerasflow.runs import RunDir
    from kerasflow.serve.server import served_outputs

    export = ctx.outputs.get("export", {})
    if not export.get("base_path"):
        raise SpecError(Problem(path="stages", message="stage `serve_check` needs the outputs of `export`"))
    spec = ctx.loaded.spec
    data = ctx.data()
    rows = data.sample_inputs(max(spec.export.warmup_requests, 8),
                              "validation" if data.validation is not None else "test")
    run = RunDir(ctx.train_dir())
    files = run.read(need_model=True)
    expected = expected_outputs(run.load_model(files), files.targets, rows)
    outputs = served_outputs(export["base_path"], served_name(spec), export["version"], rows)
    if not isinstance(outputs, dict):  # TF Serving answers a single output without its name
        outputs = {next(iter(expected)): outputs}
    diff = compare_served(expected, outputs, atol=max(spec.export.atol, 1e-4))
    n = len(next(iter(rows.values())))
    ctx.echo(f"[serve_check] {n} rows served over REST match the trained model (max abs diff {diff:.2g})")
    return {"served_rows": n, "max_abs_diff": diff}


def _trained(raw: dict) -> dict:
    return _without(_fit_inputs(raw), "tuning")


_TABLE: dict[str, Stage] = {record.name: record for record in (
    Stage("validate", lambda raw, up: raw, _run_validate),
    Stage("data", lambda raw, up: [raw.get("data"), raw.get("seed")], _run_data),
    Stage("tune", lambda raw, up: [_fit_inputs(raw), up.get("data")], _run_tune),
    Stage("train", lambda raw, up: [_trained(raw), up.get("tune"), up.get("data")], _run_train, trained_spec=True),
    Stage("evaluate", lambda raw, up: [up.get("train")], _run_evaluate, trained_spec=True),
    Stage("export", lambda raw, up: [up.get("train"), raw.get("export"), raw.get("name")], _run_export,
          trained_spec=True),
    Stage("register", lambda raw, up: [up.get("export"), raw.get("tracking")], _run_register, trained_spec=True),
    Stage("serve_check", lambda raw, up: [up.get("export")], _run_serve_check, trained_spec=True),
)}
STAGES = tuple(_TABLE[name] for name in PIPELINE_STAGES)  # the table, in the order stages run
