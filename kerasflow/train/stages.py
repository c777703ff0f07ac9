"""`train`: the declared model on the declared data through the declared stages.

Each stage is one `fit` with its own optimizer, callbacks and frozen nodes;
weights carry over and epochs are numbered globally (`initial_epoch`), so
learning curves of consecutive stages line up. `state.json` records finished
stages and `EpochBackup` (a `BackupAndRestore`) the last finished epoch of the
running one, so `train(resume=RUN_DIR)` continues a killed run losing at most
one epoch.
"""

from __future__ import annotations

import contextlib

import fnmatch
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerasflow.spec.errors import Problem, SpecError, join_path
from kerasflow.train import rundir as rd


@dataclass
class TrainResult:
    """What `train` produced."""

    run_dir: Path
    model: Any  # keras.Model
    history: dict  # {metric: [value per global epoch]}, plus "epoch" and "stage"
    metrics: dict  # final test metrics, as in metrics.json (`val_*` when there is no test split)
    data: Any  # kerasflow.data.pipeline.PreparedData
    mlflow_run_id: str | None


def train(loaded=None, *, run_dir=None, resume: str | Path | None = None, quiet: bool = False,
          data=None, tracker=None, workers=None, worker_index: int | None = None) -> TrainResult:
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
    """
    from kerasflow.train.multi_worker_stages import train_multi_worker, uses_multi_worker

    if uses_multi_worker(loaded, resume, workers, worker_index):  # its own loop: Keras fit fails there
        return train_multi_worker(loaded, run_dir=run_dir, resume=resume, quiet=quiet, data=data, tracker=tracker,
                                  workers=workers, worker_index=worker_index)
    loaded, run_dir, state = _open_run(loaded, run_dir, resume)
    spec = loaded.spec
    _check_resolved(spec, loaded.locs)
    if tracker is None:  # the background worker opens the MLflow store while TensorFlow imports
        from kerasflow.track.mlflow import warm_up

        warm_up(spec.tracking.model_dump(), loaded.raw)

    from kerasflow.train.strategy import dtype_policy, make_strategy, seed_everything

    seed_everything(spec.seed, spec.training.deterministic)
    strategy = make_strategy(spec.training)
    if data is None:
        from kerasflow.data.pipeline import prepare_data

        data = prepare_data(spec)
    if state.get("data_fingerprint") not in (None, data.fingerprint):
        raise SpecError(Problem(path="data", message=f"the data changed since {run_dir} started "
                                f"(fingerprint {state['data_fingerprint']} -> {data.fingerprint})",
                                hint="start a new run instead of resuming this one"))
    state.update(spec_hash=loaded.hash, data_fingerprint=data.fingerprint)
    rd.write_inputs(run_dir, loaded.raw, data.stats, data.targets)

    own = tracker is None
    if own:
        from kerasflow.track.mlflow import RunTracker

        tracker = RunTracker(spec.tracking.model_dump(), spec_dict=loaded.raw, run_dir=run_dir, kind="train")
        tracker.start(resume_run_id=state.get("mlflow_run_id"))
    state["mlflow_run_id"] = tracker.run_id if tracker.enabled else None
    rd.write_json(run_dir / rd.STATE_FILE, state)
    # A caller's tracker is the caller's to end; ours ends FINISHED, KILLED or FAILED.
    with tracker.ending() if own else contextlib.nullcontext(), dtype_policy(spec.training.mixed_precision):
        result = _train(loaded, run_dir, state, data, strategy, tracker if tracker.enabled else None, quiet)
    return result


def _open_run(loaded, run_dir, resume) -> tuple[Any, Path, dict]:
    if resume is None:
        if loaded is None:
            raise SpecError(Problem(path="", message="nothing to train: give a spec file or --resume RUN_DIR"))
        run_dir = Path(run_dir) if run_dir is not None else rd.new_run_dir(loaded.spec.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        if rd.read_state(run_dir).get("stages"):
            raise SpecError(Problem(path=str(run_dir), message="the run directory already holds a run",
                                    hint=f"continue it with --resume {run_dir}, or choose another --run-dir"))
        return loaded, run_dir, {"stages": {}, "epoch": 0}
    run_dir = Path(resume)
    files = rd.read_run(run_dir)
    if loaded is not None and loaded.hash != files.loaded.hash:
        raise SpecError(Problem(path=str(resume), message="the spec differs from the one this run started with",
                                expected=f"spec hash {files.loaded.hash}", received=f"spec hash {loaded.hash}",
                                hint="resume without a spec file (the run keeps its own), or start a new run"))
    state = rd.read_state(run_dir) or {"stages": {}, "epoch": 0}
    return files.loaded, run_dir, state


def _check_resolved(spec, locs) -> None:
    """Training values must be values: markers are filled by `kerasflow tune`."""
    from kerasflow.model.builder import unresolved_markers
    from kerasflow.spec.base import TuneBool, TuneChoice, TuneFloat, TuneInt
    from kerasflow.spec.schema import locate

    problems = unresolved_markers(spec, locs)
    markers = (TuneInt, TuneFloat, TuneChoice, TuneBool)

    def walk(value, path):
        if isinstance(value, markers):
            problems.append(Problem(path=join_path(path), message="unresolved `tune:` marker: training needs a value",
                                    hint="run `kerasflow tune` or set a value, e.g. "
                                         f"--set {'.'.join(map(str, path))}=...",
                                    location=locate(locs or {}, path)))
        elif hasattr(type(value), "model_fields"):
            for key in type(value).model_fields:
                walk(getattr(value, key), path + (key,))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, path + (i,))

    walk(spec.training, ("training",))
    walk(spec.data.batch_size, ("data", "batch_size"))
    if problems:
        raise SpecError(problems)


def _train(loaded, run_dir: Path, state: dict, data, strategy, tracker, quiet: bool) -> TrainResult:
    from kerasflow.data.features import plain
    from kerasflow.model.builder import build_model
    from kerasflow.train.callbacks import EpochBackup, backup_dir, make_callbacks
    from kerasflow.train.compile import compile_model

    spec = loaded.spec
    stages = spec.training.stages
    with strategy.scope():
        model = build_model(loaded, data.stats)
    finished = [s.name for s in stages if state["stages"].get(s.name, {}).get("done")]
    if finished:  # resumed: continue from the weights the last finished stage ended with
        _load_stage_weights(model, run_dir, finished[-1])
    train_ds, nodes = prepare_stages(loaded, model, run_dir, state, data, tracker)
    for index, stage in enumerate(stages):
        _set_trainable(model, nodes, stage)  # replayed for finished stages: flags carry over
        if stage.name in finished:
            continue
        stage_ds = _rebatch(train_ds, stage, data.batch_size)
        steps = int(stage.steps_per_epoch or _num_batches(stage_ds))
        if stage.steps_per_epoch:
            stage_ds = stage_ds.repeat()
        with strategy.scope():
            compile_model(model, spec, stage=index, steps_per_epoch=steps, targets=data.targets)
        start, epochs = int(state["epoch"]), int(stage.epochs)
        if not quiet:
            frozen = [n for n in nodes if _frozen(model, n)]
            resumed = EpochBackup.saved_epoch(backup_dir(run_dir, stage.name))
            print(f"\n== stage {index + 1}/{len(stages)} `{stage.name}`: epochs {start + 1}-{start + epochs},"
                  f" {steps} steps each, {plain(stage.optimizer.type)}"
                  f"{'; frozen: ' + ', '.join(frozen) if frozen else ''}"
                  f"{f'; resuming after epoch {resumed}' if resumed else ''} ==", flush=True)
        model._initial_epoch = None  # set by a restored backup; must not leak into this fit
        callbacks = make_callbacks(stage, run_dir=run_dir, tracker=tracker)
        history = model.fit(
            stage_ds, validation_data=data.validation, epochs=start + epochs, initial_epoch=start,
            steps_per_epoch=stage.steps_per_epoch, shuffle=False,  # the dataset shuffles itself
            callbacks=callbacks, verbose=0 if quiet else (1 if sys.stdout.isatty() else 2),
        )
        _check_finite(callbacks, index, stage.name)
        # Early stopping may end a stage sooner; a restored backup may have done every epoch.
        end = max([start - 1, (model._initial_epoch or 0) - 1] + list(history.epoch)) + 1
        _save_stage_weights(model, run_dir, stage.name)
        state["stages"][stage.name] = {"done": True, "first_epoch": start, "end_epoch": end,
                                       "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights)}
        state["epoch"] = end
        rd.write_json(run_dir / rd.STATE_FILE, state)
        _remove_backup(backup_dir(run_dir, stage.name))
    if not model.compiled:  # resumed after every stage had finished: compile to evaluate
        with strategy.scope():
            compile_model(model, spec, stage=len(stages) - 1, steps_per_epoch=1, targets=data.targets)
    return _finish(loaded, model, run_dir, state, data, tracker)


def prepare_stages(loaded, model, run_dir: Path, state: dict, data, tracker) -> tuple[Any, list[str]]:
    """What every training engine does before its first stage: run tags, the model
    summary file, class weights on the training set. Returns (train dataset, node names)."""
    from kerasflow.train.compile import class_weights

    spec = loaded.spec
    if tracker is not None and not state.get("tags_logged"):
        from kerasflow.track.mlflow import default_tags

        tracker.set_tags(default_tags(loaded.hash, data.fingerprint))
        state["tags_logged"] = True
    lines: list[str] = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line), line_length=100)
    (run_dir / "model_summary.txt").write_text("\n".join(lines) + "\n")

    train_ds = data.train
    weights = class_weights(spec, data.targets, data.arrays("train")[1]) if spec.training.class_weight else {}
    if weights:
        train_ds = _with_sample_weights(train_ds, weights, data.targets)
    nodes = list(spec.model.graph(default_input=_single_input(spec)))
    return train_ds, nodes


def _check_finite(callbacks: list, index: int, stage_name: str) -> None:
    from kerasflow.train.callbacks import NanStop

    for cb in callbacks:
        if isinstance(cb, NanStop) and cb.bad_epoch is not None:
            raise SpecError(Problem(
                path=f"training.stages[{index}].optimizer.learning_rate",
                message=f"training diverged: the loss became NaN/Inf in epoch {cb.bad_epoch + 1} (stage `{stage_name}`)",
                hint="lower the learning rate, clip gradients (clipnorm / global_clipnorm) or look for NaN in the data; "
                     "--resume continues from the last finite epoch",
            ))


def _remove_backup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    try:
        path.parent.rmdir()  # the shared backup/ directory, once no stage needs it
    except OSError:
        pass


def _single_input(spec) -> str | None:
    names = spec.model.inputs if spec.model.inputs is not None else list(spec.data.features)
    return names[0] if len(names) == 1 else None


def _set_trainable(model, nodes: list[str], stage) -> None:
    from kerasflow.model.builder import node_layers

    for patterns, trainable in ((stage.freeze, False), (stage.unfreeze, True)):
        for pattern in patterns:
            if not isinstance(pattern, str):  # {node, top | layers}: part of a nested model (a backbone)
                from kerasflow.model.backbones import set_top_trainable

                for node in fnmatch.filter(nodes, pattern.node):
                    for layer in node_layers(model, node):
                        set_top_trainable(layer, pattern.top, pattern.layers)
                continue
            for node in fnmatch.filter(nodes, pattern):
                for layer in node_layers(model, node):
                    layer.trainable = trainable


def _frozen(model, node: str) -> bool:
    from kerasflow.model.builder import node_layers

    layers = [layer for layer in node_layers(model, node) if layer.weights]
    return bool(layers) and not any(layer.trainable for layer in layers)


def _stage_weights(run_dir: Path, stage_name: str) -> Path:
    return run_dir / rd.CHECKPOINTS_DIR / f"{stage_name}.end.npz"


def _save_stage_weights(model, run_dir: Path, stage_name: str) -> None:
    # Plain arrays, not .weights.h5: that file also holds this stage's optimizer
    # state, which the next stage's (different) optimizer cannot load.
    import numpy as np

    path = _stage_weights(run_dir, stage_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, *model.get_weights())
    tmp.replace(path)


def _load_stage_weights(model, run_dir: Path, stage_name: str) -> None:
    import numpy as np

    path = _stage_weights(run_dir, stage_name)
    if not path.exists():
        raise SpecError(Problem(path=str(run_dir), message=f"cannot resume: {path} is missing",
                                hint="state.json says the stage finished but its weights are gone; start a new run"))
    with np.load(path) as arrays:
        model.set_weights([arrays[f"arr_{i}"] for i in range(len(arrays.files))])


def _rebatch(ds, stage, batch_size: int):
    if stage.batch_size is None or int(stage.batch_size) == int(batch_size):
        return ds
    return ds.rebatch(int(stage.batch_size))


def _num_batches(ds) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return max(n, 1)
    return max(int(ds.reduce(0, lambda count, _: count + 1)), 1)  # unknown cardinality: count once


def _with_sample_weights(ds, weights: dict[str, list[float]], targets: dict):
    """(x, y) -> (x, y, sample weights per output): class weights that work for
    dict outputs too (Keras' `class_weight` takes one output only)."""
    import tensorflow as tf

    tables = {name: tf.constant(w, tf.float32) for name, w in weights.items()}

    def add(x, y):
        sw = {}
        for name in targets:
            label = y[name]
            if name in tables:
                index = tf.cast(tf.reshape(label, [tf.shape(label)[0], -1])[:, 0], tf.int32)
                sw[name] = tf.gather(tables[name], index)
            else:
                sw[name] = tf.ones([tf.shape(label)[0]], tf.float32)
        return x, y, sw

    return ds.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def _finish(loaded, model, run_dir: Path, state: dict, data, tracker) -> TrainResult:
    """Save the model, test metrics and plots; log them to MLflow."""
    from kerasflow.train.callbacks import history_dict, read_history
    from kerasflow.train.evaluate import collect_predictions
    from kerasflow.train.plots import learning_curves, plot_predictions

    spec = loaded.spec
    rows = read_history(run_dir / rd.HISTORY_FILE)
    plots = run_dir / rd.PLOTS_DIR
    plots.mkdir(exist_ok=True)
    model.save(run_dir / rd.MODEL_FILE)
    split, ds = ("test", data.test) if data.test is not None else ("validation", data.validation)
    metrics: dict = {}
    if rows:
        learning_curves(rows, plots / "learning_curves.png")
    if ds is not None:
        results = model.evaluate(ds, return_dict=True, verbose=0)
        prefix = "test_" if split == "test" else "val_"
        metrics = {prefix + k: float(v) for k, v in results.items()}
        plot_predictions(plots, *collect_predictions(model, ds), data.targets)
    rd.write_json(run_dir / rd.METRICS_FILE, metrics)
    if tracker is not None:
        tracker.log_metrics(metrics, step=state["epoch"])
        for name in (rd.SPEC_FILE, "model_summary.txt", rd.HISTORY_FILE, rd.METRICS_FILE):
            tracker.log_artifact(run_dir / name)
        tracker.log_artifacts(plots, "plots")
        if spec.tracking.log_model:
            uri = tracker.log_model(model, input_example=data.sample_inputs(5, split if ds is not None else "train"),
                                    model_file=run_dir / rd.MODEL_FILE)
            state["mlflow_model_uri"] = uri  # what `register` registers
    state["finished"] = True
    rd.write_json(run_dir / rd.STATE_FILE, state)
    return TrainResult(run_dir=run_dir, model=model, history=history_dict(rows), metrics=metrics, data=data,
                       mlflow_run_id=state.get("mlflow_run_id"))
