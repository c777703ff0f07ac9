"""Data-parallel training of a Keras 3 model over several processes (one per
machine) with `tf.distribute.MultiWorkerMirroredStrategy`.

Keras 3.15's `fit` and `evaluate` fail under this strategy (the trainer hands a
nested batch to `Strategy.reduce`, and reduces scalar step logs along axis 0;
keras-team/keras#20585). `fit_multi_worker` runs the model's own `train_step`
and `test_step` through `strategy.run` instead, one `tf.function` per epoch over
`strategy.experimental_distribute_dataset` of the usual global-batch pipeline.
Everything else is Keras and TF: the loss is scaled by the number of replicas
and gradients are all-reduced by the Keras optimizer, metrics are all-reduced
when read, and Keras callbacks run through a `CallbackList`. Each epoch a
`tf.train.Checkpoint` (model, optimizer, epoch) is saved, which every worker
restores when the cluster is started again.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.train.cluster import TF_CONFIG, Cluster


_STRATEGIES: dict[str, object] = {}  # one per process and cluster: TF configures collectives once


def make_multi_worker_strategy(cluster: Cluster):
    """`MultiWorkerMirroredStrategy` for `cluster`; the first call must come before
    any TensorFlow op of the process, later calls return the same strategy."""
    config = cluster.tf_config()
    if config in _STRATEGIES:
        return _STRATEGIES[config]
    os.environ[TF_CONFIG] = config
    import tensorflow as tf

    try:
        _STRATEGIES[config] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES[config]
    except RuntimeError as exc:  # "Collective ops must be configured at program startup"
        raise SpecError(Problem(
            path="training.distribution", message=f"multi_worker cannot start: {exc}",
            hint="TensorFlow already ran in this process; start one fresh `kerasflow train` process per worker",
        )) from None


def weights_fingerprint(model) -> str:
    """Short sha256 of every weight's bytes: equal fingerprints, equal models."""
    digest = hashlib.sha256()
    for weight in model.get_weights():  # this worker's local copy: no collective
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def synchronize_batch_norm(model) -> None:
    """Batch statistics over the global batch: otherwise each worker's moving
    mean/variance follow its own shard and the workers' models drift apart."""
    import keras

    def walk(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True  # read when the step is traced
        for inner in getattr(layer, "layers", []):
            walk(inner)

    walk(model)


def build_training_state(model, ds) -> None:
    """Create optimizer slots and metric variables now, under the strategy scope
    (`fit` does this in the very function that fails), so a backup restores into
    existing variables and no variable is first created inside a traced step."""
    batch = next(iter(ds.take(1)))
    x, y = batch[0], batch[1]
    model.optimizer.build(model.trainable_variables)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred)
    model.compute_metrics(x, y, y_pred)
    model.reset_metrics()


def fit_multi_worker(model, strategy, train_ds, validation_ds=None, *, epochs: int, initial_epoch: int = 0,
                     steps_per_epoch: int | None = None, callbacks=(), backup_dir=None, restore_dir=None,
                     verbose: int = 0) -> int:
    """`model.fit` for a model built and compiled under `MultiWorkerMirroredStrategy`.

    Every worker calls this with the same arguments. Epoch logs are global
    (metrics are all-reduced), so callbacks such as EarlyStopping decide alike
    everywhere; batch hooks see the last batch of each epoch only.

    Args:
        model: a compiled Keras model whose variables live in `strategy`.
        strategy: the `MultiWorkerMirroredStrategy`.
        train_ds, validation_ds: datasets of global batches, the same on every
            worker (same seed); each worker trains on its share of each batch.
        epochs: index of the last epoch + 1 (as `fit`).
        initial_epoch: first epoch to run.
        steps_per_epoch: batches per epoch of a repeating `train_ds` (None: one pass).
        callbacks: Keras callbacks.
        backup_dir: where this worker saves a checkpoint after every finite epoch
            (the chief's is the one restored; give others a scratch directory).
            Left in place: delete it once the stage's result is saved.
        restore_dir: the chief's `backup_dir`, restored by every worker if it holds one.
        verbose: 2 prints a line per epoch, 0 nothing.

    Returns:
        The epoch after the last one trained (less than `epochs` if training stopped early).
    """
    import keras
    import numpy as np

    if not model.optimizer.built:  # a backup restores into existing slots only
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    backup = _Backup(model, backup_dir, restore_dir)
    first = backup.restore(initial_epoch)
    if not _same_everywhere(strategy, first):
        raise SpecError(Problem(path="training.distribution", message="the workers restored backups of different "
                                "epochs", hint="the run directory (backups) must be on storage every worker sees"))
    train_dist = strategy.experimental_distribute_dataset(_sharded_by_data(train_ds))
    val_dist = None if validation_ds is None else strategy.experimental_distribute_dataset(
        _sharded_by_data(validation_ds))
    train_steps = _epoch_function(strategy, model.train_step, steps_per_epoch)
    test_steps = _epoch_function(strategy, model.test_step, None)
    source = iter(train_dist) if steps_per_epoch else train_dist  # a repeating dataset continues across epochs
    steps = steps_per_epoch or max(int(train_ds.cardinality()), 1)  # for the progress line
    cbs = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose > 0, model=model,
                                       verbose=verbose, epochs=epochs, steps=steps)

    def logs(prefix=""):
        # Collective: metric variables are summed over workers when read, so every
        # worker must read them, and all read the same global values.
        values = {prefix + k: np.asarray(v) for k, v in model.get_metrics_result().items()}
        return {k: float(v) if v.ndim == 0 else v for k, v in values.items()}

    end = first
    model.stop_training = False
    cbs.on_train_begin()
    for epoch in range(first, epochs):
        cbs.on_epoch_begin(epoch)
        model.reset_metrics()
        train_steps(source)
        epoch_logs = logs()
        cbs.on_train_batch_end(steps - 1, epoch_logs)  # the epoch's last batch: e.g. TerminateOnNaN
        if val_dist is not None:
            model.reset_metrics()
            test_steps(val_dist)
            epoch_logs.update(logs("val_"))
        cbs.on_epoch_end(epoch, epoch_logs)
        end = epoch + 1
        if math.isfinite(epoch_logs.get("loss", 0.0)):
            backup.save(end)
        if model.stop_training:
            break
    cbs.on_train_end()
    return end


def _sharded_by_data(ds):
    """Each worker reads the whole (identically shuffled) pipeline and keeps its
    part of every global batch; there are no files to split by."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _epoch_function(strategy, step, steps: int | None):
    import tensorflow as tf

    if steps is None:
        @tf.function
        def run(dataset):
            for batch in dataset:
                strategy.run(step, args=(batch,))
    else:
        @tf.function
        def run(iterator):
            for _ in tf.range(steps):
                strategy.run(step, args=(next(iterator),))
    return run


def _same_everywhere(strategy, value: int) -> bool:
    """Whether every replica holds `value` (a collective: all workers must ask)."""
    import tensorflow as tf

    @tf.function  # run eagerly, a collective strategy warns of overhead
    def gather():
        return strategy.gather(strategy.run(lambda: tf.constant([int(value)], tf.int64)), axis=0)

    values = gather()
    return bool(tf.reduce_all(values == values[0]))


class _Backup:
    """The latest finished epoch as a `tf.train.Checkpoint` of model, optimizer
    and epoch. Keras' `BackupAndRestore` resumes through `fit` only, and would
    have every worker write the same file."""

    def __init__(self, model, save_dir, restore_dir):
        import tensorflow as tf

        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self.epoch)
        self.restore_dir = restore_dir
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(save_dir), max_to_keep=1) if save_dir else None

    def restore(self, initial_epoch: int) -> int:
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(self.restore_dir)) if self.restore_dir is not None else None
        if latest is None:
            return initial_epoch
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        print(f"restored {latest}: continuing at epoch {int(self.epoch.numpy()) + 1}", file=sys.stderr, flush=True)
        return max(initial_epoch, int(self.epoch.numpy()))

    def save(self, next_epoch: int) -> None:
        if self.manager is not None:
            self.epoch.assign(next_epoch)
            self.manager.save()
