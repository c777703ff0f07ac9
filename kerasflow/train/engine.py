"""The one engine that runs a spec's training stages.

Single-process training, multi-worker training and every tuning trial go
through `run_stages`; they differ only in *how one stage fits*, a `Fitter`:
Keras `fit` (`keras_fit`), the multi-worker loop
(`kerasflow.train.multi_worker_stages`), or `fit` with KerasTuner's callbacks.

Per stage the engine applies `freeze`/`unfreeze` (replayed for finished stages,
so flags carry over), rebatches to the stage's batch size, compiles a fresh
optimizer and schedule, builds the callbacks, fits, stops on a NaN loss, and —
when the run is resumable — saves the stage's weights and records it in
`state.json`, so a killed run continues after its last finished stage.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kerasflow.runs import RunDir
from kerasflow.spec.errors import Problem, SpecError


@dataclass
class StageRun:
    """One stage as the engine hands it to a `Fitter`.

    Attributes:
        index: position in `training.stages`.
        stage: the spec's `Stage`.
        dataset: training batches at the stage's batch size (repeating when
            `steps_per_epoch` is set).
        validation: validation batches, or None.
        steps: optimizer steps per epoch.
        initial_epoch: first global epoch of this stage.
        epochs: global epoch after the stage's last one (as `fit`'s `epochs`).
        callbacks: Keras callbacks of the stage, in the order they must run.
        verbose: Keras verbosity.
    """

    index: int
    stage: Any
    dataset: Any
    validation: Any
    steps: int
    initial_epoch: int
    epochs: int
    callbacks: list
    verbose: int


# How one stage fits: returns the global epoch after the last one trained
# (less than `run.epochs` when training stopped early).
Fitter = Callable[[Any, StageRun], int]


def keras_fit(model, run: StageRun) -> int:
    """The single-process `Fitter`: Keras `fit`, after restoring the stage's
    `EpochBackup` (a resumed stage starts at the epoch after the backed-up one)."""
    from kerasflow.train.callbacks import EpochBackup

    first = run.initial_epoch
    for cb in run.callbacks:
        if isinstance(cb, EpochBackup):
            first = max(first, cb.restore(model) or 0)
    history = model.fit(
        run.dataset, validation_data=run.validation, epochs=run.epochs, initial_epoch=first,
        steps_per_epoch=run.stage.steps_per_epoch, shuffle=False,  # the dataset shuffles itself
        callbacks=run.callbacks, verbose=run.verbose,
    )
    # Early stopping may end a stage sooner; a restored backup may have done every epoch.
    return max([first - 1] + list(history.epoch)) + 1


@dataclass
class Session:
    """What one run of the stages works on.

    Attributes:
        loaded: the `LoadedSpec` (every marker resolved).
        model: the built model; its weights are the starting point.
        data: the `PreparedData`.
        run_dir: where stage files go (`state.json`, history, backups, stage weights).
        state: the run's state dict (`stages`, `epoch`), updated in place.
        strategy: a `tf.distribute` strategy whose scope compiles the model, or None.
        tracker: a started `RunTracker` logging each epoch, or None.
        resumable: keep backups and stage weights, write `state.json` (False for tuning trials).
        restore_dir: the run directory whose stage weights and backups a resumed run
            reads (the chief's, on a multi-worker worker); default `run_dir`.
        extra_callbacks: appended to every stage's callbacks (e.g. KerasTuner's).
        last_stage: index of the last stage to run (default: all).
        epochs_of: the epochs a stage runs (default: its `epochs`), e.g. Hyperband's budget.
        quiet: no stage headers, no Keras progress output.
        note: a phrase for the stage headers (e.g. "worker 1 of 2").
    """

    loaded: Any
    model: Any
    data: Any
    run_dir: Path
    state: dict
    strategy: Any = None
    tracker: Any = None
    resumable: bool = True
    restore_dir: Path | None = None
    extra_callbacks: tuple = ()
    last_stage: int | None = None
    epochs_of: Callable[[Any], int] | None = None
    quiet: bool = False
    note: str = ""


def run_stages(session: Session, fit_stage: Fitter = keras_fit) -> int:
    """Run the spec's stages on `session.model`, each through `fit_stage`.

    Returns:
        The optimizer steps per epoch of the last stage run (its schedule goes
        into a saved model).

    Raises:
        SpecError: the loss became NaN/Inf; a finished stage's weights are gone.
    """
    from kerasflow.train.callbacks import make_callbacks
    from kerasflow.train.compile import compile_model

    loaded, model, data, state = session.loaded, session.model, session.data, session.state
    spec = loaded.spec
    stages = spec.training.stages[:None if session.last_stage is None else session.last_stage + 1]
    runs, restore = RunDir(session.run_dir), RunDir(session.restore_dir or session.run_dir)
    finished = [s.name for s in stages if state["stages"].get(s.name, {}).get("done")]
    if finished and session.resumable:  # resumed: continue from the weights the last finished stage ended with
        restore.load_stage_weights(model, finished[-1])
    train_ds, nodes = _set_up(session)
    steps = 1
    for index, stage in enumerate(stages):
        set_trainable(model, nodes, stage)
        if stage.name in finished:
            continue
        stage_ds = stage_batches(train_ds, stage, spec, data)
        steps = int(stage.steps_per_epoch or num_batches(stage_ds))
        if stage.steps_per_epoch:
            stage_ds = stage_ds.repeat()
        with _scope(session.strategy):
            compile_model(model, spec, stage=index, steps_per_epoch=steps, targets=data.targets)
        start = int(state["epoch"])
        epochs = int(session.epochs_of(stage) if session.epochs_of else stage.epochs)
        callbacks = make_callbacks(stage, run_dir=session.run_dir, tracker=session.tracker,
                                   resumable=session.resumable) + list(session.extra_callbacks)
        if not session.quiet:
            print(_header(model, nodes, stages, index, start, epochs, steps, restore, session.note), flush=True)
        verbose = 0 if session.quiet else (1 if sys.stdout.isatty() else 2)
        end = fit_stage(model, StageRun(index=index, stage=stage, dataset=stage_ds, validation=data.validation,
                                        steps=steps, initial_epoch=start, epochs=start + epochs, callbacks=callbacks,
                                        verbose=verbose))
        check_finite(callbacks, index, stage.name)
        state["stages"][stage.name] = {"done": True, "first_epoch": start, "end_epoch": end,
                                       "batch_size": batch_size(stage, spec), "steps_per_epoch": steps,
                                       "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights)}
        state["epoch"] = end
        if session.resumable:
            runs.save_stage_weights(model, stage.name)
            runs.write_state(state)
            runs.remove_backup(stage.name)
    if not model.compiled:  # resumed after every stage had finished: compile to evaluate
        with _scope(session.strategy):
            compile_model(model, spec, stage=len(stages) - 1, steps_per_epoch=1, targets=data.targets)
    return steps


def _scope(strategy):
    import contextlib

    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _set_up(session: Session) -> tuple[Any, list[str]]:
    """Before the first stage: run tags, the model summary file, class weights
    on the training set. Returns (training dataset, node names)."""
    from kerasflow.train.compile import class_weights

    loaded, data, state = session.loaded, session.data, session.state
    spec = loaded.spec
    if session.tracker is not None and not state.get("tags_logged"):
        from kerasflow.track.mlflow import default_tags

        session.tracker.set_tags(default_tags(loaded.hash, data.fingerprint))
        state["tags_logged"] = True
    if session.resumable:
        from kerasflow.model.plan import summary_text

        (Path(session.run_dir) / "model_summary.txt").write_text(summary_text(session.model) + "\n")
    train_ds = data.train
    weights = class_weights(spec, data.targets, data.arrays("train")[1]) if spec.training.class_weight else {}
    if weights:
        train_ds = with_sample_weights(train_ds, weights, data.targets)
    return train_ds, node_names(spec)


def _header(model, nodes, stages, index, start, epochs, steps, restore: RunDir, note: str) -> str:
    from kerasflow.data.features import plain
    from kerasflow.train.callbacks import EpochBackup

    stage = stages[index]
    frozen = [n for n in nodes if is_frozen(model, n)]
    resumed = EpochBackup.saved_epoch(restore.backup_dir(stage.name))
    return (f"\n== stage {index + 1}/{len(stages)} `{stage.name}`: epochs {start + 1}-{start + epochs},"
            f" {steps} steps each, {plain(stage.optimizer.type)}"
            f"{'; frozen: ' + ', '.join(frozen) if frozen else ''}"
            f"{f'; resuming after epoch {resumed}' if resumed else ''}{f'; {note}' if note else ''} ==")


def node_names(spec) -> list[str]:
    """The model graph's node names (what `freeze`/`unfreeze` patterns match)."""
    names = spec.model.inputs if spec.model.inputs is not None else list(spec.data.features)
    return list(spec.model.graph(default_input=names[0] if len(names) == 1 else None))


def set_trainable(model, nodes: list[str], stage) -> None:
    """Apply a stage's `freeze` then `unfreeze` patterns to the layers of matching nodes."""
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


def is_frozen(model, node: str) -> bool:
    """Whether every layer of `node` that has weights is frozen."""
    from kerasflow.model.builder import node_layers

    layers = [layer for layer in node_layers(model, node) if layer.weights]
    return bool(layers) and not any(layer.trainable for layer in layers)


def check_finite(callbacks: list, index: int, stage_name: str) -> None:
    """Raise the spec error for a stage whose loss became NaN/Inf (`NanStop` saw it)."""
    from kerasflow.train.callbacks import NanStop

    for cb in callbacks:
        if isinstance(cb, NanStop) and cb.bad_epoch is not None:
            raise SpecError(Problem(
                path=f"training.stages[{index}].optimizer.learning_rate",
                message=f"training diverged: the loss became NaN/Inf in epoch {cb.bad_epoch + 1} (stage `{stage_name}`)",
                hint="lower the learning rate, clip gradients (clipnorm / global_clipnorm) or look for NaN in the data; "
                     "--resume continues from the last finite epoch",
            ))


def stage_batches(ds, stage, spec, data):
    """`ds` (prepared at `data.batch_size`) at the stage's batch size: the stage's
    own, else the spec's `data.batch_size` — which differs from the prepared one
    when the data was prepared from a spec whose batch size is tuned.

    `rebatch` loses the cardinality; restoring it lets Keras know the steps per
    epoch instead of running into the end of the data."""
    wanted = batch_size(stage, spec)
    if wanted == int(data.batch_size):
        return ds
    import tensorflow as tf

    ds = ds.rebatch(wanted)
    size = (getattr(data, "sizes", None) or {}).get("train")
    if size:
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-int(size) // wanted)))
    return ds


def batch_size(stage, spec) -> int:
    """Examples per batch in `stage`: its own `batch_size`, else `data.batch_size`."""
    from kerasflow.data.features import plain

    return int(plain(stage.batch_size if stage.batch_size is not None else spec.data.batch_size))


def num_batches(ds) -> int:
    """Batches in one pass over `ds` (counted once when the cardinality is unknown)."""
    n = int(ds.cardinality())
    if n >= 0:
        return max(n, 1)
    return max(int(ds.reduce(0, lambda count, _: count + 1)), 1)


def with_sample_weights(ds, weights: dict[str, list[float]], targets: dict):
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
