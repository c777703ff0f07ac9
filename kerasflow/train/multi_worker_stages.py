"""`train` for `training.distribution: multi_worker`: the spec's stages on one
worker of a cluster, run by `kerasflow.train.engine` with `fit_multi_worker`
as the way one stage fits.

Every worker runs the same stages, callbacks and writes; a non-chief worker
writes into a scratch directory it deletes at the end (TF's documented pattern,
which keeps collectives in step), so only the chief fills the run directory,
logs to MLflow and saves the model. A relaunched cluster continues from the
chief's backup with `--resume RUN_DIR` (or the same `--run-dir`).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path

from kerasflow.runs import HISTORY_FILE, RunDir, new_run_path, removed_if_left_empty
from kerasflow.spec.errors import Problem, SpecError
from kerasflow.train.cluster import Cluster, resolve_cluster
from kerasflow.train.engine import Session, StageRun, run_stages, set_trainable
from kerasflow.train.multi_worker import (build_training_state, fit_multi_worker, make_multi_worker_strategy,
                                          synchronize_batch_norm, weights_fingerprint)
from kerasflow.train.session import (TrainResult, check_resolved, check_shapes, finish, open_run, prepare_inputs,
                                     tracking)


@dataclass
class MultiWorkerResult(TrainResult):
    """What `train` produced on one worker. Only the chief's has `metrics` and a
    written `run_dir`; a non-chief's `run_dir` is the chief's when it was given."""

    task: str  # e.g. "worker 1 of 2"
    is_chief: bool
    weights_fingerprint: str  # equal on every worker after a correct run


def uses_multi_worker(spec, workers=None, worker_index=None) -> bool:
    """Whether `spec` trains multi_worker; `--workers` with another distribution is an error."""
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
    from kerasflow.train.strategy import dtype_policy, seed_everything

    cluster = resolve_cluster(workers, worker_index)
    scratch = None if cluster.is_chief else Path(tempfile.mkdtemp(prefix="kerasflow-worker-"))
    # As single-worker `train`: the chief failing before it writes anything leaves no empty run directory.
    # Only the chief: a worker must never remove the directory the chief is about to fill.
    new_chief_run = scratch is None and resume is None and loaded is not None
    if new_chief_run and run_dir is None:
        run_dir = new_run_path(loaded.spec.name)
    with removed_if_left_empty(run_dir) if new_chief_run else nullcontext():
        try:
            if scratch is None:
                loaded, run, state = open_run(loaded, run_dir, resume)
                shared = run
            elif resume is not None:  # the chief's run dir, read (stage weights, backups) but never written
                loaded, shared, state = open_run(loaded, None, resume)
                run = RunDir(scratch)
            else:
                loaded, run, state = open_run(loaded, scratch, None)
                shared = RunDir(run_dir) if run_dir is not None else None
            spec = loaded.spec
            check_resolved(spec, loaded.locs)
            _check_callbacks(spec.training.stages)
            strategy = make_multi_worker_strategy(cluster)  # before the data stage: no TF op may run earlier
            check_shapes(loaded)
            seed_everything(spec.seed, spec.training.deterministic)  # one seed everywhere: shuffles must agree
            if not quiet:
                print(f"multi_worker: {cluster.task}, {strategy.num_replicas_in_sync} replicas in sync", flush=True)
            data = prepare_inputs(loaded, run, state, data, shared=shared)
            with dtype_policy(spec.training.mixed_precision):
                if not cluster.is_chief:
                    return _train(loaded, run, shared, state, data, strategy, cluster, None, quiet)
                with tracking(loaded, run, state, tracker) as active:
                    if active is not None:
                        active.log_params({"workers": cluster.size, "replicas_in_sync": strategy.num_replicas_in_sync},
                                          prefix="multi_worker")
                    return _train(loaded, run, shared, state, data, strategy, cluster, active, quiet)
        except Exception as exc:
            if not _lost_worker(exc):
                raise
            # TF cannot recover in-process: the whole cluster must start again.
            raise SpecError(Problem(
                path="training.distribution",
                message=f"{cluster.task}: another worker left the cluster ({_reason(exc)})",
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


def _train(loaded, run: RunDir, shared: RunDir | None, state: dict, data, strategy, cluster: Cluster, tracker,
           quiet: bool) -> MultiWorkerResult:
    """The engine's stages, each through `fit_multi_worker`; `shared` is the chief's run dir."""
    from kerasflow.model.builder import build_model
    from kerasflow.train.callbacks import EpochBackup, history_dict, read_history

    with strategy.scope():
        model = build_model(loaded, data.stats)
    synchronize_batch_norm(model)

    def fit_stage(model, stage: StageRun) -> int:
        with strategy.scope():
            build_training_state(model, stage.validation if stage.validation is not None else stage.dataset)
        # The Keras backup resumes through `fit`; this loop keeps its own.
        callbacks = [cb for cb in stage.callbacks if not isinstance(cb, EpochBackup)]
        stage.callbacks[:] = callbacks  # what the engine checks for a NaN loss
        return fit_multi_worker(
            model, strategy, stage.dataset, stage.validation, epochs=stage.epochs, initial_epoch=stage.initial_epoch,
            steps_per_epoch=stage.stage.steps_per_epoch, callbacks=callbacks,
            backup_dir=run.backup_dir(stage.stage.name),
            restore_dir=shared.backup_dir(stage.stage.name) if shared is not None else None,
            verbose=0 if quiet else 2)

    steps = run_stages(Session(loaded=loaded, model=model, data=data, run_dir=run.path, state=state,
                               strategy=strategy, tracker=tracker, restore_dir=shared.path if shared else None,
                               quiet=quiet, note=cluster.task), fit_stage)
    fingerprint = weights_fingerprint(model)
    single = _single_process_copy(loaded, data, model, steps)
    if cluster.is_chief:
        result = finish(loaded, single, run, state, data, tracker)
    else:
        rows = read_history(run / HISTORY_FILE)
        result = TrainResult(run_dir=shared.path if shared else None, model=single, history=history_dict(rows),
                             metrics={}, data=data, mlflow_run_id=None)
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


def _single_process_copy(loaded, data, model, steps_per_epoch: int):
    """The trained weights in a model built outside the strategy: it saves,
    evaluates and exports like a single-process run's (Keras' `evaluate` fails
    under the strategy) and reads no other worker."""
    from kerasflow.model.builder import build_model
    from kerasflow.train.compile import compile_model
    from kerasflow.train.engine import node_names

    spec = loaded.spec
    copy = build_model(loaded, data.stats)
    for stage in spec.training.stages:
        set_trainable(copy, node_names(spec), stage)
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
