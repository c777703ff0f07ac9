"""Keras callbacks of one stage: those the spec enables, plus the ones every run
has (backup for `--resume`, `history.csv` with global epoch numbers)."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import keras
import numpy as np

from kerasflow.runs import CHECKPOINTS_DIR, HISTORY_FILE, RunDir, write_text
from kerasflow.spec.errors import Problem, SpecError

EPOCH, STAGE = "epoch", "stage"


class EpochBackup(keras.callbacks.Callback):
    """Backs up a stage after every epoch into one `latest.npz` (model weights,
    optimizer variables, next epoch), written atomically; `restore` puts it back
    before the next `fit`, which then starts at the saved epoch.

    The role of Keras' `BackupAndRestore`, through public APIs only: that class
    is customised by overriding its private `_save_model`/`_load_model` and
    resumes by setting the model's private `_initial_epoch`. One `np.savez` plus
    a rename also costs a few milliseconds where the stock `.weights.h5` +
    metadata pair costs tens, which a small model pays every epoch. A kill
    leaves the previous file or the new one, never half of one. An epoch whose
    loss is NaN/Inf is not backed up, so a resume starts from the last good weights.

    Args:
        backup_dir: directory of this stage's backup (used by no other callback).
    """

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__()
        self.file = Path(backup_dir) / "latest.npz"
        self.restored_epoch: int | None = None

    @staticmethod
    def saved_epoch(backup_dir: str | os.PathLike) -> int | None:
        """The epoch a fit with this backup directory resumes at, or None."""
        file = Path(backup_dir) / "latest.npz"
        if not file.exists():
            return None
        with np.load(file) as saved:
            return int(saved["epoch"])

    def restore(self, model) -> int | None:
        """Load the backup into `model` (compiled); return the epoch to start at, or None."""
        if not self.file.exists():
            return None
        with np.load(self.file) as saved:
            model.set_weights([saved[f"w{i}"] for i in range(int(saved["n_weights"]))])
            optimizer = model.optimizer
            n = int(saved["n_optimizer"])
            if optimizer is not None and n:
                if not optimizer.built:
                    optimizer.build(model.trainable_variables)
                if len(optimizer.variables) != n:
                    raise SpecError(Problem(
                        path=str(self.file), message="the backup does not fit this stage's optimizer",
                        expected=f"{len(optimizer.variables)} optimizer variables", received=str(n),
                        hint="the run was started with another spec; start a new run"))
                for i, variable in enumerate(optimizer.variables):
                    variable.assign(saved[f"o{i}"])
            self.restored_epoch = int(saved["epoch"])
        return self.restored_epoch

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
        optimizer_vars = self.model.optimizer.variables if self.model.optimizer is not None else []
        arrays.update({f"o{i}": v.numpy() for i, v in enumerate(optimizer_vars)})
        tmp = self.file.with_name(".latest.tmp.npz")
        np.savez(tmp, n_weights=len(self.model.weights), n_optimizer=len(optimizer_vars), epoch=epoch + 1, **arrays)
        os.replace(tmp, self.file)


class NanStop(keras.callbacks.TerminateOnNaN):
    """`TerminateOnNaN` that remembers the epoch where the loss went bad, so
    `train` can fail with an error naming it instead of finishing the stage.

    Checked off the training loop (`async_safe`): Keras then dispatches the
    next step without first converting this step's loss to a Python number, as
    it does with no batch callbacks at all; a NaN stops training one step later
    at most, and the epoch's callbacks see `bad_epoch` (Keras waits for the
    checks before `on_epoch_end`)."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self.bad_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.bad_epoch is None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.bad_epoch = self._epoch


class HistoryWriter(keras.callbacks.Callback):
    """Keeps `history.csv`: one row per epoch (numbered globally from 0), the
    stage name, every logged metric and the learning rate.

    A finished epoch replaces its row and any later ones, so an epoch repeated
    after `--resume` appears once whatever the moment of the kill. The file is
    rewritten whole and atomically (it is small), so a kill never leaves half a row.

    Args:
        path: the CSV file.
        stage: stage name written in each row.
    """

    def __init__(self, path: str | os.PathLike, stage: str):
        super().__init__()
        self.path = Path(path)
        self.stage = stage
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.rows = read_history(self.path)

    def on_epoch_end(self, epoch, logs=None):
        row = {EPOCH: int(epoch), STAGE: self.stage}
        row.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        if "learning_rate" not in row:
            row["learning_rate"] = current_learning_rate(self.model.optimizer)
        self.rows = [r for r in self.rows if r[EPOCH] < epoch] + [row]
        write_history(self.path, self.rows)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer uses now (schedules evaluated at the current step)."""
    return float(np.asarray(optimizer.learning_rate))


def read_history(path: str | os.PathLike) -> list[dict]:
    """Rows of a `history.csv` (numbers as floats, epoch as int); [] if absent."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict = {}
            for key, value in raw.items():
                if key == EPOCH:
                    row[key] = int(value)
                elif key == STAGE:
                    row[key] = value
                elif value not in ("", None):
                    row[key] = float(value)
            rows.append(row)
    return rows


def write_history(path: Path, rows: list[dict]) -> None:
    columns = [EPOCH, STAGE]
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (_fmt(v) if isinstance(v, float) else v) for k, v in row.items()})
    write_text(path, buf.getvalue())


def _fmt(value: float) -> str:
    return repr(value) if math.isfinite(value) else str(value)


def history_dict(rows: list[dict]) -> dict[str, list]:
    """Rows as Keras-style `{metric: [value per epoch]}` (plus epoch and stage)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k, float("nan")) for row in rows] for k in keys}


def make_callbacks(stage, *, run_dir: Path, tracker=None, resumable: bool = True) -> list:
    """Callbacks for one stage's `fit`, in the order they must run.

    Args:
        stage: a `Stage` of the spec.
        run_dir: the run directory.
        tracker: a started `RunTracker` or None; its callback logs each epoch
            with step = global epoch (epochs are already global, so offset 0).
        resumable: include the epoch backup and `model_checkpoint` (a tuning
            trial has neither: KerasTuner keeps the best epoch itself).
    """
    run_dir = Path(run_dir)
    spec = stage.callbacks
    cbs: list = [
        # The row of an epoch is written before its backup: a kill in between
        # repeats the epoch, which then replaces its row.
        HistoryWriter(run_dir / HISTORY_FILE, stage.name),
    ]
    if resumable:
        # Kept after fit until state.json records the stage as done, so no kill
        # window loses it.
        cbs.append(EpochBackup(RunDir(run_dir).backup_dir(stage.name)))
    if spec.terminate_on_nan:
        cbs.append(NanStop())
    if spec.reduce_lr_on_plateau is not None:
        c = spec.reduce_lr_on_plateau
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=c.monitor, factor=c.factor, patience=c.patience,
                                                     min_lr=c.min_lr, mode=c.mode))
    if spec.model_checkpoint is not None and resumable:
        c = spec.model_checkpoint
        path = run_dir / CHECKPOINTS_DIR / f"{stage.name}.best.keras"
        cbs.append(keras.callbacks.ModelCheckpoint(str(path), monitor=c.monitor, mode=c.mode,
                                                   save_best_only=c.save_best_only))
    if spec.tensorboard is not None:
        c = spec.tensorboard
        cbs.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"),
                                               histogram_freq=c.histogram_freq, update_freq=c.update_freq))
    if spec.csv_logger is not None:
        (run_dir / "logs").mkdir(exist_ok=True)
        cbs.append(keras.callbacks.CSVLogger(str(run_dir / "logs" / f"{stage.name}.csv"),
                                             append=spec.csv_logger.append))
    if tracker is not None:
        cbs.append(tracker.keras_callback(0))
    if spec.early_stopping is not None:
        # Last: restore_best_weights must act after the epoch was logged and backed up.
        c = spec.early_stopping
        cbs.append(keras.callbacks.EarlyStopping(monitor=c.monitor, patience=c.patience, min_delta=c.min_delta,
                                                 mode=c.mode, restore_best_weights=c.restore_best_weights))
    return cbs
