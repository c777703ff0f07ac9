"""Registering a trained run's model as `tracking.register_as`: what
`kerasflow train` does at its end and what a pipeline's `register` stage runs."""

from __future__ import annotations

import os

from kerasflow.runs import RunDir
from kerasflow.spec.errors import Problem, SpecError


def register_run(run_dir: str | os.PathLike, *, quiet: bool = True) -> dict:
    """Register the run's logged model as `tracking.register_as` and move
    `tracking.alias` to it when its test metric is at least as good as the holder's.

    Returns:
        {} when the spec registers nothing, else `RunTracker.register`'s decision.

    Raises:
        SpecError: the run has no MLflow run (tracking disabled).
    """
    from kerasflow.track.mlflow import RunTracker
    from kerasflow.train.objective import registry_objective

    run = RunDir(run_dir)
    spec = run.loaded().spec
    if not spec.tracking.register_as:
        return {}
    state = run.state()
    if not spec.tracking.enabled or not state.get("mlflow_run_id"):
        raise SpecError(Problem(path="tracking.register_as", message="registering needs tracking enabled and a "
                                "tracked run", hint="set tracking.enabled: true, or remove register_as"))
    metrics = run.metrics()
    objective, mode = registry_objective(spec, metrics)
    tracker = RunTracker(spec.tracking.model_dump(), spec_dict={}, run_dir=run.path, kind="register")
    tracker.start(resume_run_id=state["mlflow_run_id"])
    try:
        decision = tracker.register(state.get("mlflow_model_uri") or f"runs:/{state['mlflow_run_id']}/model",
                                    spec.tracking.register_as, alias=spec.tracking.alias, objective=objective,
                                    mode=mode, value=metrics.get(objective))
    finally:
        tracker.end("FINISHED")
    if not quiet:
        print(f"registered {spec.tracking.register_as} v{decision.get('version')}: "
              f"{'moved' if decision.get('moved') else 'kept'} @{spec.tracking.alias} ({decision.get('reason')})")
    return decision
