"""The Keras callback that logs epoch metrics to an MLflow run.

Only imported from `RunTracker.keras_callback` (it imports keras at the top).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import keras

from kerasflow.track.transport import (
    OUTAGE_COOLDOWN_S,
    TrackingWarning,
    append_unsent,
    first_line,
    metric_rows,
    send_metrics,
)

log = logging.getLogger(__name__)


class MlflowMetrics(keras.callbacks.Callback):
    """Logs every epoch's `logs` to one MLflow run with step = `epoch_offset` + epoch.

    Holds only strings and numbers, never an MLflow client: KerasTuner deep-copies
    callbacks for each trial. If the server cannot be reached it warns once, keeps
    the values, retries after a cool-down, and at the end of `fit` appends what is
    still unsent to `unsent_path` (the tracker re-sends that file when the run ends).

    Args:
        uri: tracking URI.
        run_id: the MLflow run to log to.
        epoch_offset: epochs completed by earlier stages.
        unsent_path: JSON-lines file for values that could not be delivered.
    """

    def __init__(self, uri: str, run_id: str, epoch_offset: int = 0, unsent_path: str | None = None):
        super().__init__()
        if int(epoch_offset) < 0:
            raise ValueError(
                f"Received an invalid value for epoch_offset, expected an integer >= 0. Received: {epoch_offset=}"
            )
        self.uri = uri
        self.run_id = run_id
        self.epoch_offset = int(epoch_offset)
        self.unsent_path = unsent_path
        self.pending: list = []
        self.retry_at = 0.0
        self.failing = False

    def on_epoch_end(self, epoch, logs=None):
        self.pending += metric_rows(logs, self.epoch_offset + epoch)
        if time.monotonic() >= self.retry_at:
            self._flush()

    def on_train_end(self, logs=None):
        self._flush()
        if self.pending and self.unsent_path:
            append_unsent(Path(self.unsent_path), self.pending)
            self.pending = []

    def _flush(self):
        if not self.pending:
            return
        try:
            send_metrics(self.uri, self.run_id, self.pending)
        except Exception as err:  # tracking must never stop training
            self.retry_at = time.monotonic() + OUTAGE_COOLDOWN_S
            if not self.failing:
                warnings.warn(f"MLflow at {self.uri} unreachable; buffering metrics and retrying: {first_line(err)}",
                              TrackingWarning, stacklevel=2)
            self.failing = True
            return
        if self.failing:
            log.warning("MLflow at %s reachable again; sent %d buffered values", self.uri, len(self.pending))
        self.failing, self.pending = False, []
