"""`tune`: a KerasTuner search over a spec's `tune:` markers.

KerasTuner's own tuners (RandomSearch, BayesianOptimization, Hyperband,
GridSearch) drive the search; this module picks one from `tuning:`, gives it
the spec's HyperModel, keeps the project under the run directory so that a
rerun resumes it, tracks a parent MLflow run with one child per trial, and at
the end writes `best.yaml`. Distributed search uses KerasTuner's chief/worker
mode: the chief serves the oracle over gRPC, workers run trials.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.src import protos as kt_protos
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import oracle_chief

from kerasflow.runs import default_dir, write_json
from kerasflow.spec.checks import validation_problems
from kerasflow.spec.errors import Problem, SpecError
from kerasflow.spec.loader import spec_hash
from kerasflow.spec.search_space import RESERVED_PREFIX, find_params
from kerasflow.spec.sections import TuningSpec
from kerasflow.tune import report
from kerasflow.tune.distributed import Role, environment, role_environment
from kerasflow.tune.hypermodel import SpecHyperModel
from kerasflow.tune.parent_run import ParentRun

PROJECT = "keras_tuner"  # KerasTuner's project directory inside the run directory
BEST_FILE = "best.yaml"
PLOT_FILE = "tuning.png"
_SEARCH_FILE = "kerasflow_search.json"  # which search space the project belongs to


# KerasTuner writes its state files (oracle.json, trial.json, tuner0.json) with
# `utils.save_json`, which truncates then writes: a search killed in between left
# an empty oracle.json and the resume crashed reading it. Every one goes through
# `Stateful.save` -> `utils.save_json` (tests/test_library_contracts.py keeps that
# true), so kerasflow's atomic writer takes its place.
kt_utils.save_json = write_json


def _serve_oracle(oracle) -> None:
    """KerasTuner's `oracle_chief.start_server` (keras-tuner<1.5), which re-checks
    only every 20 s whether the last workers have left once the search is over:
    `kerasflow tune --chief` then printed its results up to 20 s late. The same
    server and end condition, checked twice a second."""
    import grpc

    servicer = oracle_chief.OracleServicer(oracle)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    kt_protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(0.5)
    finally:
        server.stop(grace=1.0)


oracle_chief.start_server = _serve_oracle  # `BaseTuner.search` looks it up there (tests/test_library_contracts.py)


@dataclass
class TuneResult:
    """What a search produced.

    Attributes:
        best_values: the best trial's hyperparameters by spec path (KerasTuner
            form: alternatives by label); empty on a worker.
        best_spec_path: `best.yaml` (the spec with every marker filled), or None on a worker.
        best_score: the best trial's objective value.
        objective: (metric name, "min" | "max").
        trials: one row per trial: trial_id, status, score, values, message.
        run_dir: where the project, `best.yaml` and the plot are.
        mlflow_run_id: the parent MLflow run (None when tracking is off).
    """

    best_values: dict[str, Any]
    best_spec_path: Path | None
    best_score: float | None
    objective: tuple[str, str]
    trials: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    mlflow_run_id: str | None = None


def tune(loaded, *, run_dir=None, restart: bool = False, role: Role = "standalone", chief_address: str | None = None,
         port: int | None = None, worker_id: str | None = None, quiet: bool = False, data=None) -> TuneResult:
    """Search the spec's `tune:` markers with the tuner its `tuning:` section names.

    Args:
        loaded: a `LoadedSpec` whose raw dict holds the markers.
        run_dir: output directory (default `runs/<name>/tune/`); rerunning with the
            same directory resumes the search, keeping finished trials.
        restart: delete the project and start over (ignored by workers, which
            must never delete a project they share).
        role: `standalone`, `chief` (serves the oracle on `port`, runs no trial)
            or `worker` (runs trials of the chief at `chief_address` = HOST:PORT).
        chief_address: the chief's HOST:PORT (workers), or the address a chief binds
            (default 0.0.0.0, all interfaces).
        port: the chief's port.
        worker_id: a worker's unique id (default `worker-<host>-<pid>`).
        quiet: no tables, no per-epoch output.
        data: a `PreparedData` to reuse instead of preparing the data here.

    Raises:
        SpecError: nothing to tune, an objective whose direction is unclear, a
            project made for another search space, too many failed trials in a row.
    """
    spec = loaded.spec
    tuning = spec.tuning or TuningSpec()
    params = find_params(loaded.raw)
    if not params:
        raise SpecError(Problem(path="", message="nothing to tune: the spec has no `tune:` markers",
                                hint="mark a value, e.g. units: {tune: int, min: 32, max: 256, step: 32}"))
    objective = make_objective(tuning)
    env = role_environment(role, chief_address, port, worker_id)
    from kerasflow.train.session import check_shapes

    check_shapes(loaded)  # `kerasflow plan`'s checks, with markers at their defaults, before any data
    run_dir = Path(run_dir) if run_dir is not None else default_dir(spec.name, "tune")
    run_dir.mkdir(parents=True, exist_ok=True)
    project = run_dir / PROJECT
    search_key = _search_key(loaded.raw)
    _check_project(project, search_key, restart and role != "worker")

    from kerasflow.train.strategy import configure_runtime

    configure_runtime(spec.training, spec.seed)
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)  # progress bars only on a terminal
    hypermodel = SpecHyperModel(loaded, data=data, stage=tuning.stage, verbose=verbose)
    if role != "chief":  # the chief trains nothing
        # Prepared once, here, so a data problem stops the search instead of failing every trial.
        if hypermodel.data.validation is None and (problems := validation_problems(spec, loaded.locs, tuning=True)):
            raise SpecError(problems)
    with environment(env):
        parent = ParentRun(loaded, run_dir, project, role, restart and role != "worker", env["KERASTUNER_TUNER_ID"])
        end = parent.end
        tuner = None
        try:
            if role != "worker":
                parent.get()  # opened before the oracle serves, so workers find its id
            tuner = _make_tuner(tuning, hypermodel, objective, project, spec.seed,
                                overwrite=restart and role != "worker", parent=parent)
            if role != "worker":
                write_json(project / _SEARCH_FILE, {"search": search_key})
                parent.save()
                tuner.settle_trial_runs()
            tuner.search(verbose=0 if quiet else 1)
        except RuntimeError as err:
            if "consecutive failures" not in str(err):
                raise
            end("FAILED")
            raise SpecError(Problem(
                path="tuning.max_consecutive_failed_trials",
                message=f"{tuning.max_consecutive_failed_trials} trials in a row failed; the search stopped",
                received=report.last_error(str(err)),
                hint="the last trial's error is above; fix the space or raise the limit",
            )) from None
        except KeyboardInterrupt:
            if tuner is not None:
                tuner.end_running_trials("KILLED")
            end("KILLED")
            raise
        except BaseException:
            if tuner is not None:
                tuner.end_running_trials("FAILED")
            end("FAILED")
            raise
    if role == "worker":
        end("FINISHED")
        return TuneResult(best_values={}, best_spec_path=None, best_score=None, objective=_pair(objective),
                          trials=tuner.trial_rows, run_dir=run_dir, mlflow_run_id=parent.run_id)
    return _finish(loaded, tuner, objective, params, run_dir, parent.get(), quiet)


def make_objective(tuning: TuningSpec) -> kt.Objective:
    """The KerasTuner objective: the declared direction, else inferred from the metric name."""
    from kerasflow.train.objective import direction

    if not isinstance(tuning.objective, str):
        return kt.Objective(tuning.objective.name, direction(tuning.objective.name, tuning.objective.direction))
    return kt.Objective(tuning.objective, direction(tuning.objective))


# ---------------------------------------------------------------- tuners


class _SpecTuner:
    """Mixed into KerasTuner's tuners: the space comes from the spec, each trial
    gets an MLflow child run, and rows of finished trials are kept.

    MLflow handles stay on the tuner (KerasTuner deep-copies callbacks); the
    per-trial callback holds only the run id and URI.
    """

    def __init__(self, *args, parent: ParentRun, **kwargs):
        self._parent = parent
        self._trial_runs: dict[str, Any] = {}
        self.trial_rows: list[dict] = []
        super().__init__(*args, **kwargs)

    def _populate_initial_space(self):
        # The spec states the whole space, conditions included: declare it without
        # building models (KerasTuner would build one per conditional branch).
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        tracker = self._parent.get()
        if tracker is not None:
            # A trial retried after a kill keeps its run: one MLflow run per trial.
            earlier = self._parent.trial_runs().pop(trial.trial_id, None)
            child = tracker.child(f"trial-{trial.trial_id}", resume_run_id=earlier.info.run_id if earlier else None)
            if earlier is None:
                child.log_params(dict(trial.hyperparameters.values), wait=False)  # queued behind its start
            child.set_tags({"kerasflow.trial_id": trial.trial_id, "kerasflow.tuner_id": self.tuner_id,
                            "kerasflow.trial_status": "RUNNING"})
            self._trial_runs[trial.trial_id] = child

    def settle_trial_runs(self) -> None:
        """End the MLflow runs a killed search left RUNNING: a trial the oracle
        finished ends as it did; one it will retry stays for `on_trial_begin` to reuse."""
        for trial_id, run in self._parent.trial_runs().items():
            trial = self.oracle.trials.get(trial_id)
            if run.info.status != "RUNNING" or trial is None or trial.status in ("RUNNING", "IDLE"):
                continue
            self._parent.end_trial_run(run.info.run_id, "FINISHED" if trial.status == "COMPLETED" else "FAILED")

    def end_running_trials(self, status: str) -> None:
        """End this process's open trial runs (the search was interrupted)."""
        for trial_id in list(self._trial_runs):
            child = self._trial_runs.pop(trial_id)
            child.set_tags({"kerasflow.trial_status": status})
            child.end(status)

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.begin_trial(self.get_trial_dir(trial.trial_id))
        child = self._trial_runs.get(trial.trial_id)
        if child is not None:
            kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [child.keras_callback()]
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        finally:
            try:
                final = self.oracle.get_trial(trial.trial_id)  # status and score as the oracle decided
            except Exception:  # the chief may be gone; report what this process knows
                final = trial
            row = report.trial_row(final)
            self.trial_rows.append(row)
            child = self._trial_runs.pop(trial.trial_id, None)
            if child is not None:
                if row["score"] is not None:
                    child.log_metrics({"score": row["score"]})
                child.set_tags({"kerasflow.trial_status": row["status"],
                                **({"kerasflow.error": row["message"]} if row["message"] else {})})
                # Not waited for: the worker ends it while the next trial trains (the
                # search's own run, ended with a wait, follows it in the worker's queue).
                child.end("FINISHED" if row["status"] == "COMPLETED" else "FAILED", wait=False)


_BASES = {"random": kt.RandomSearch, "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband,
          "grid": kt.GridSearch}
_CLASSES = {kind: type(f"Spec{base.__name__}", (_SpecTuner, base), {}) for kind, base in _BASES.items()}


def _make_tuner(tuning: TuningSpec, hypermodel: SpecHyperModel, objective, project: Path, spec_seed: int, *,
                overwrite: bool, parent: ParentRun):
    kwargs: dict[str, Any] = dict(
        hypermodel=hypermodel, objective=objective, seed=tuning.seed if tuning.seed is not None else spec_seed,
        max_consecutive_failed_trials=tuning.max_consecutive_failed_trials,
        executions_per_trial=tuning.executions_per_trial,
        directory=str(project.parent), project_name=project.name, overwrite=overwrite, parent=parent,
    )
    if tuning.tuner == "hyperband":
        kwargs.update(max_epochs=tuning.max_epochs or _stage_epochs(hypermodel), factor=tuning.factor)
    else:
        kwargs["max_trials"] = tuning.max_trials
    if tuning.tuner == "bayesian":
        kwargs["num_initial_points"] = tuning.num_initial_points
    distribution = hypermodel.loaded.spec.training.distribution
    if distribution != "default":
        from kerasflow.train.strategy import make_strategy

        kwargs["distribution_strategy"] = make_strategy(hypermodel.loaded.spec.training)
    return _CLASSES[tuning.tuner](**kwargs)


def _stage_epochs(hypermodel: SpecHyperModel) -> int:
    """Hyperband's budget: the tuned stage's epochs (the largest when they are tuned too)."""
    _, stage = hypermodel.stage_of(hypermodel.loaded.spec)
    epochs = stage.epochs
    return int(getattr(epochs, "max", epochs))


# ---------------------------------------------------------------- results


def _finish(loaded, tuner, objective, params, run_dir: Path, tracker, quiet: bool) -> TuneResult:
    oracle = tuner.oracle
    rows = [report.trial_row(t) for t in sorted(oracle.trials.values(), key=lambda t: t.trial_id)]
    name, direction = _pair(objective)
    completed = report.ranked(rows, direction)
    plot = report.plot_trials(rows, params, name, direction, run_dir / PLOT_FILE)
    if not quiet:
        report.print_table(rows, name, direction)
    if not completed:
        if tracker is not None:
            tracker.end("FAILED")
        last = next((r["message"] for r in reversed(rows) if r["message"]), None)
        raise SpecError(Problem(path="tuning", message=f"no trial completed ({len(rows)} failed)", received=last,
                                hint=f"each trial's error is in {tuner.project_dir}/trial_*/trial.json"))
    best = completed[0]
    values = {k: v for k, v in best["values"].items() if not k.startswith(RESERVED_PREFIX)}
    source = f" from {loaded.path}" if loaded.path else ""
    header = f"kerasflow tune{source}: trial {best['trial_id']}, {name}={best['score']:.6g}"
    best_path = report.write_best(loaded.raw, values, run_dir / BEST_FILE, header=header)
    if tracker is not None:
        tracker.log_metrics({f"best_{name}": best["score"], "trials_completed": len(completed),
                             "trials_failed": sum(r["status"] == "FAILED" for r in rows)})
        tracker.set_tags({"kerasflow.best_trial": best["trial_id"]})
        tracker.log_params(values, prefix="best")
        tracker.log_artifact(best_path)
        if plot is not None:
            tracker.log_artifact(plot)
        tracker.end("FINISHED")
    return TuneResult(best_values=values, best_spec_path=best_path, best_score=best["score"],
                      objective=(name, direction), trials=rows, run_dir=run_dir,
                      mlflow_run_id=tracker.run_id if tracker is not None else None)


def _pair(objective) -> tuple[str, str]:
    return objective.name, objective.direction


# ---------------------------------------------------------------- project


def _search_key(raw: dict) -> str:
    """Hash of what trials depend on; `max_trials` may grow between runs of one project."""
    keep = {k: v for k, v in raw.items() if k not in ("tracking", "export", "stages", "description", "tuning")}
    tuning = {k: v for k, v in (raw.get("tuning") or {}).items()
              if k not in ("max_trials", "max_consecutive_failed_trials")}
    return spec_hash({**keep, "tuning": tuning})


def _check_project(project: Path, key: str, restart: bool) -> None:
    marker = project / _SEARCH_FILE
    if restart or not marker.exists():
        return
    states = {}
    for state in sorted(project.glob("**/*.json")):  # written atomically now; an older kerasflow could leave a cut one
        try:
            states[state] = json.loads(state.read_text())
        except (ValueError, OSError):
            raise SpecError(Problem(path=str(state), message="a killed search left this tuning file incomplete",
                                    hint="rerun with --restart to start over, or use another --run-dir")) from None
    if states[marker].get("search") != key:
        raise SpecError(Problem(path=str(project), message="this tuning project was started for another search space",
                                hint="rerun with --restart to start over, or use another --run-dir"))
