"""`train`: the declared model on the declared data through the declared stages.

The stages run through `kerasflow.train.engine` with Keras `fit`; weights carry
over and epochs are numbered globally, so learning curves of consecutive
stages line up. `state.json` records finished stages and `EpochBackup` the last
finished epoch of the running one, so `train(resume=RUN_DIR)` continues a
killed run losing at most one epoch. `training.distribution: multi_worker`
runs the same engine through `kerasflow.train.multi_worker_stages`.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from kerasflow.runs import RunDir, new_run_path, removed_if_left_empty
from kerasflow.train.session import TrainResult

__all__ = ["train", "TrainResult"]


def train(loaded=None, *, run_dir=None, resume: str | Path | None = None, quiet: bool = False,
          data=None, tracker=None, workers=None, worker_index: int | None = None,
          register: bool = True) -> TrainResult:
    """Train a spec through all its stages and write the run directory.

    Args:
        loaded: a `LoadedSpec`; optional with `resume` (the run's own spec is used).
        run_dir: output directory (default: a new `runs/<name>/<run_id>/`).
        resume: a run directory to continue: finished stages are skipped, the
            running one restarts from its last finished epoch, and MLflow logs
            into the same run.
        quiet: no stage headers, no Keras progress output.
        data: a `PreparedData` to reuse (default: `prepare_data(spec)`).
        tracker: a started `RunTracker` owned by the caller (not ended here);
            default: one from `spec.tracking`, ended FINISHED / FAILED / KILLED.
        workers, worker_index: `distribution: multi_worker` only, see
            `kerasflow.train.multi_worker_stages.train_multi_worker`.
        register: register the model as `tracking.register_as` when the spec
            names one (a pipeline leaves that to its `register` stage).
    """
    from kerasflow.train.multi_worker_stages import train_multi_worker, uses_multi_worker
    from kerasflow.train.session import check_resolved, check_shapes, finish, open_run, prepare_inputs, tracking

    spec = loaded.spec if loaded is not None else RunDir(resume).loaded().spec if resume is not None else None
    if uses_multi_worker(spec, workers, worker_index):  # its own loop: Keras fit fails there
        result = train_multi_worker(loaded, run_dir=run_dir, resume=resume, quiet=quiet, data=data, tracker=tracker,
                                    workers=workers, worker_index=worker_index)
    else:
        if resume is None and run_dir is None and loaded is not None:
            run_dir = new_run_path(loaded.spec.name)
        # A spec or data error found before anything is written leaves no empty run directory.
        with removed_if_left_empty(run_dir) if resume is None and run_dir is not None else nullcontext():
            loaded, run, state = open_run(loaded, run_dir, resume)
            spec = loaded.spec
            check_resolved(spec, loaded.locs)
            if tracker is None:  # the background worker opens the MLflow store while TensorFlow imports
                from kerasflow.track.mlflow import warm_up

                warm_up(spec.tracking.model_dump(), loaded.raw)
            check_shapes(loaded)

            from kerasflow.train.strategy import make_strategy, seed_everything

            seed_everything(spec.seed, spec.training.deterministic)
            strategy = make_strategy(spec.training)
            data = prepare_inputs(loaded, run, state, data)

        from kerasflow.model.builder import build_model
        from kerasflow.train.engine import Session, run_stages
        from kerasflow.train.strategy import dtype_policy

        with tracking(loaded, run, state, tracker) as active, dtype_policy(spec.training.mixed_precision):
            with strategy.scope():
                model = build_model(loaded, data.stats)
            run_stages(Session(loaded=loaded, model=model, data=data, run_dir=run.path, state=state,
                               strategy=strategy, tracker=active, quiet=quiet))
            result = finish(loaded, model, run, state, data, active)
    if register and result.mlflow_run_id:
        from kerasflow.train.registration import register_run

        register_run(result.run_dir, quiet=quiet)
    return result
