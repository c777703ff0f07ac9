"""`train` for `training.distribution: multi_worker`: the spec's stages on one
worker of a cluster, each through `fit_multi_worker`.

Every worker runs the same stages, callbacks and writes; a non-chief worker
writes into a scratch directory it deletes at the end (TF's documented pattern,
which keeps collectives in step), so only the chief fills the run directory,
logs to MLflow and saves the model. A relaunched cluster continues from the
chief's backup with `--resume RUN_DIR` (or the same `--run-dir`).
"""

from __future__ import annotations

import contextlib

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.train import rundir as rd
from kerasflow.train.cluster import Cluster, resolve_cluster
from kerasflow.train.multi_worker import (build_training_state, fit_multi_worker, make_multi_worker_strategy,
                                          synchronize_batch_norm, weights_fingerprint)
from kerasflow.train.stages import TrainResult


@dataclass
class MultiWorkerResult(TrainResult):
    """What `train` produced on one worker. Only the chief's has `metrics` and a
    written `run_dir`; a non-chief's `run_dir` is the chief's when it was given."""

    task: str  # e.g. "worker 1 of 2"
    is_chief: bool
    weights_fingerprint: str  # equal on every worker after a correct run


def uses_multi_worker(loaded=None, resume=None, workers=None, worker_index=None) -> bool:
    """Whether `train` runs multi_worker; `--workers` with another distribution is an error."""
    spec = loaded.spec if loaded is not None else rd.read_run(resume).spec if resume is not None else None
    if spec is None or spec.training.distribution != "multi_worker":
        if workers is not None or worker_index is not None:
            raise SpecError(Problem(path="training.distribution", message="--workers/--worker-index need "
                                    "distribution multi_worker", received=spec.training.distribution if spec else None,
                                    hint="--set training.distribution=multi_worker"))
        return False
    return True


def train_multi_worker(loaded=None, *, run_dir=None, resume=None, quiet: bool = False, data=None, tracker=None,
                       workers=None, worker_index: int | None = None) -> MultiWorkerResult:
    """`kerasflow.train.stages.train` for one worker of a multi_worker cluster.

    Args: as `train` (a `tracker` is used on the chief only), plus
        workers: every worker's `host:port` (default: `TF_CONFIG`).
        worker_index: this process's index in `workers`.

    Raises:
        SpecError: a bad cluster; TensorFlow already running in this process;
            another worker lost (start every worker again with `--resume`).
    """
    from kerasflow.train.stages import _check_resolved, _open_run
    from kerasflow.train.strategy import dtype_policy, seed_everything

    cluster = resolve_cluster(workers, worker_index)
    scratch = None if cluster.is_chief else Path(tempfile.mkdtemp(prefix="kerasflow-worker-"))
    try:
        if scratch is None:
            loaded, run_dir, state = _open_run(loaded, run_dir, resume)
            shared = run_dir
        elif resume is not None:  # the chief's run dir, read (stage weights, backups) but never written
            loaded, shared, state = _open_run(loaded, None, resume)
        else:
            loaded, _, state = _open_run(loaded, scratch, None)
            shared = Path(run_dir) if run_dir is not None else None
        run_dir = scratch or run_dir
        spec = loaded.spec
        _check_resolved(spec, loaded.locs)
        _check_callbacks(spec.training.stages)
        strategy = make_multi_worker_strategy(cluster)  # before the data stage: no TF op may run earlier
        seed_everything(spec.seed, spec.training.deterministic)  # one seed everywhere: shuffles must agree
        if not quiet:
            print(f"multi_worker: {cluster.task}, {strategy.num_replicas_in_sync} replicas in sync", flush=True)
        if data is None:
            from kerasflow.data.pipeline import prepare_data

            data = prepare_data(spec)
        if state.get("data_fingerprint") not in (None, data.fingerprint):
            raise SpecError(Problem(path="data", message=f"the data changed since {shared} started "
                                    f"(fingerprint {state['data_fingerprint']} -> {data.fingerprint})",
                                    hint="start a new run instead of resuming this one"))
        state.update(spec_hash=loaded.hash, data_fingerprint=data.fingerprint)
        rd.write_inputs(run_dir, loaded.raw, data.stats, data.targets)
        if cluster.is_chief:
            return _with_tracker(loaded, run_dir, state, data, strategy, cluster, tracker, quiet)
        with dtype_policy(spec.training.mixed_precision):
            return _train(loaded, run_dir, shared, state, data, strategy, cluster, None, quiet)
    except Exception as exc:
        if not _lost_worker(exc):
            raise
        # TF cannot recover in-process: the whole cluster must start again.
        raise SpecError(Problem(
            path="training.distribution", message=f"{cluster.task}: another worker left the cluster ({_reason(exc)})",
            hint=f"start every worker again with --resume {shared}: training continues after the last finished "
                 "epoch" if shared is not None else "start every worker again; give the chief's --run-dir "
                 "(on storage every worker sees) to each worker so a relaunch can --resume it")) from None
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _lost_worker(exc: Exception) -> bool:
    tf = sys.modules.get("tensorflow")  # not imported yet: not a TensorFlow error
    return tf is not None and isinstance(exc, (tf.errors.UnavailableError, tf.errors.AbortedError))


def _reason(exc) -> str:
    """The informative line of a collective's error (the first is "Graph execution error:")."""
    lines = [line.strip() for line in str(exc.message).splitlines() if line.strip()]
    cause = next((line for line in lines if re.search(r"aborted by|unhealthy|reset by peer|crashed", line)), lines[0])
    return cause[:300]


def _with_tracker(loaded, run_dir, state, data, strategy, cluster, tracker, quiet):
    """The chief's MLflow run around training, ended as `stages.train` ends its own."""
    from kerasflow.train.strategy import dtype_policy

    spec = loaded.spec
    own = tracker is None
    if own:
        from kerasflow.track.mlflow import RunTracker

        tracker = RunTracker(spec.tracking.model_dump(), spec_dict=loaded.raw, run_dir=run_dir, kind="train")
        tracker.start(resume_run_id=state.get("mlflow_run_id"))
    state["mlflow_run_id"] = tracker.run_id if tracker.enabled else None
    rd.write_json(run_dir / rd.STATE_FILE, state)
    if tracker.enabled:
        tracker.log_params({"workers": cluster.size, "replicas_in_sync": strategy.num_replicas_in_sync},
                           prefix="multi_worker")
    # A caller's tracker is the caller's to end; ours ends FINISHED, KILLED or FAILED.
    with tracker.ending() if own else contextlib.nullcontext(), dtype_policy(spec.training.mixed_precision):
        result = _train(loaded, run_dir, run_dir, state, data, strategy, cluster,
                        tracker if tracker.enabled else None, quiet)
    return result


def _train(loaded, run_dir: Path, shared: Path | None, state: dict, data, strategy, cluster: Cluster, tracker,
           quiet: bool) -> MultiWorkerResult:
    """The stages of `stages._train`, each through `fit_multi_worker`; `shared` is the chief's run dir."""
    from kerasflow.model.builder import build_model
    from kerasflow.train.callbacks import EpochBackup, backup_dir, history_dict, make_callbacks, read_history
    from kerasflow.train.compile import compile_model
    from kerasflow.train.stages import (_check_finite, _finish, _load_stage_weights, _num_batches, _rebatch,
                                        _remove_backup, _save_stage_weights, _set_trainable, prepare_stages)

    spec = loaded.spec
    stages = spec.training.stages
    with strategy.scope():
        model = build_model(loaded, data.stats)
    synchronize_batch_norm(model)
    finished = [s.name for s in stages if state["stages"].get(s.name, {}).get("done")]
    if finished:
        _load_stage_weights(model, shared, finished[-1])
    train_ds, nodes = prepare_stages(loaded, model, run_dir, state, data, tracker)
    steps = 1  # of the last stage run (its schedule goes into the saved model)
    for index, stage in enumerate(stages):
        _set_trainable(model, nodes, stage)
        if stage.name in finished:
            continue
        stage_ds = _rebatch(train_ds, stage, data.batch_size)
        steps = int(stage.steps_per_epoch or _num_batches(stage_ds))
        with strategy.scope():
            compile_model(model, spec, stage=index, steps_per_epoch=steps, targets=data.targets)
            build_training_state(model, data.validation if data.validation is not None else stage_ds)
        start = int(state["epoch"])
        if not quiet:
            print(f"\n== stage {index + 1}/{len(stages)} `{stage.name}`: epochs {start + 1}-"
                  f"{start + int(stage.epochs)}, {steps} global batches each, {cluster.task} ==", flush=True)
        # The Keras backup resumes through `fit`; this loop keeps its own (below).
        callbacks = [cb for cb in make_callbacks(stage, run_dir=run_dir, tracker=tracker)
                     if not isinstance(cb, EpochBackup)]
        end = fit_multi_worker(
            model, strategy, stage_ds.repeat() if stage.steps_per_epoch else stage_ds, data.validation,
            epochs=start + int(stage.epochs), initial_epoch=start, steps_per_epoch=stage.steps_per_epoch,
            callbacks=callbacks, backup_dir=backup_dir(run_dir, stage.name),
            restore_dir=backup_dir(shared, stage.name) if shared is not None else None, verbose=0 if quiet else 2)
        _check_finite(callbacks, index, stage.name)
        _save_stage_weights(model, run_dir, stage.name)
        state["stages"][stage.name] = {"done": True, "first_epoch": start, "end_epoch": end}
        state["epoch"] = end
        rd.write_json(run_dir / rd.STATE_FILE, state)
        _remove_backup(backup_dir(run_dir, stage.name))
    fingerprint = weights_fingerprint(model)
    single = _single_process_copy(loaded, data, model, nodes, steps)
    if cluster.is_chief:
        result = _finish(loaded, single, run_dir, state, data, tracker)
    else:
        rows = read_history(run_dir / rd.HISTORY_FILE)
        result = TrainResult(run_dir=shared, model=single, history=history_dict(rows), metrics={}, data=data,
                             mlflow_run_id=None)
    return MultiWorkerResult(**{f.name: getattr(result, f.name) for f in fields(TrainResult)}, task=cluster.task,
                             is_chief=cluster.is_chief, weights_fingerprint=fingerprint)


def _check_callbacks(stages) -> None:
    """Callbacks see whole epochs here: the epoch is one compiled step loop."""
    problems = []
    for index, stage in enumerate(stages):
        board = stage.callbacks.tensorboard
        if board is not None and board.update_freq != "epoch":
            problems.append(Problem(
                path=f"training.stages[{index}].callbacks.tensorboard.update_freq",
                message="multi_worker logs once per epoch (each epoch runs as one compiled loop)",
                expected="epoch", received=str(board.update_freq)))
    if problems:
        raise SpecError(problems)


def _single_process_copy(loaded, data, model, nodes: list[str], steps_per_epoch: int):
    """The trained weights in a model built outside the strategy: it saves,
    evaluates and exports like a single-process run's (Keras' `evaluate` fails
    under the strategy) and reads no other worker."""
    from kerasflow.model.builder import build_model
    from kerasflow.train.compile import compile_model
    from kerasflow.train.stages import _set_trainable

    spec = loaded.spec
    copy = build_model(loaded, data.stats)
    for stage in spec.training.stages:
        _set_trainable(copy, nodes, stage)
    copy.set_weights(model.get_weights())
    compile_model(copy, spec, stage=len(spec.training.stages) - 1, steps_per_epoch=steps_per_epoch,
                  targets=data.targets)
    # The optimizer state too, as a single-process model.keras holds it.
    copy.optimizer.build(copy.trainable_variables)
    optimizer = getattr(model, "optimizer", None)  # none when every stage had finished before a resume
    trained = optimizer.variables if optimizer is not None else []
    if len(copy.optimizer.variables) == len(trained):
        for mine, value in zip(copy.optimizer.variables, trained):
            mine.assign(value.numpy())
    return copy
