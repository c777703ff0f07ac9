"""The Keras callback that logs epoch metrics to an MLflow run.

Only imported from `RunTracker.keras_callback` (it imports keras at the top).
"""

from __future__ import annotations

import keras
import numpy as np

from kerasflow.track.transport import metric_rows


class MlflowMetrics(keras.callbacks.Callback):
    """Logs every epoch's `logs` to one MLflow run with step = `epoch_offset` + epoch.

    Each epoch's values go to the tracking worker without waiting, so a slow or
    unreachable server costs training nothing; the worker buffers them during
    an outage and, at the end of `fit`, keeps what is still unsent in the run
    directory (re-sent when the run ends). The learning rate is logged as
    `history.csv` records it. Holds only numbers: KerasTuner deep-copies callbacks.

    Args:
        recorder: the run's id in the tracking worker (`RunTracker` knows it).
        epoch_offset: epochs completed by earlier stages.
    """

    def __init__(self, recorder: int, epoch_offset: int = 0):
        super().__init__()
        if int(epoch_offset) < 0:
            raise ValueError(
                f"Received an invalid value for epoch_offset, expected an integer >= 0. Received: {epoch_offset=}"
            )
        self.recorder = int(recorder)
        self.epoch_offset = int(epoch_offset)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if "learning_rate" not in logs and optimizer is not None:
            logs["learning_rate"] = float(np.asarray(optimizer.learning_rate))
        self._send("log_epoch", metric_rows(logs, self.epoch_offset + epoch))

    def on_train_end(self, logs=None):
        self._send("train_end")

    def _send(self, method: str, *args) -> None:
        from kerasflow.track.worker import worker

        try:
            worker().call(self.recorder, method, *args, wait=False)
        except Exception as err:  # tracking must never stop training
            import warnings

            from kerasflow.track.transport import TrackingWarning

            warnings.warn(f"epoch metrics not logged: {err}", TrackingWarning, stacklevel=2)
