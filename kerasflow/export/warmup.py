"""TF Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

TensorFlow Serving replays these `PredictionLog` records when it loads a
version, so the first real request does not pay for graph optimisation. Each
record is a one-row `PredictRequest` built from real sample rows, cycling
through them when fewer rows than records are given (and through the predict
signatures: `serving_default`, and `serving_bytes` with real encoded images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from kerasflow.spec.errors import Problem, SpecError

WARMUP_FILE = "tf_serving_warmup_requests"


def _apis():
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as err:  # the [serving] extra
        raise SpecError(Problem(
            "export.warmup_requests", "writing warmup records needs the tensorflow-serving-api package",
            hint="pip install 'tensorflow-serving-api>=2.21,<2.22', or set export.warmup_requests: 0")) from err
    return model_pb2, predict_pb2, prediction_log_pb2


def write_warmup_requests(
    path: str | os.PathLike,
    rows: Mapping[str, np.ndarray],
    *,
    model_name: str,
    count: int,
    signature_name: str = "serving_default",
    others: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> int:
    """Write `count` one-row PredictRequests as a TFRecord of PredictionLog protos; returns count.

    `others` maps further predict signatures (e.g. `serving_bytes`, whose
    image inputs are real encoded images) to their rows; records then cycle
    through the signatures as well as through the rows.
    """
    import tensorflow as tf

    model_pb2, predict_pb2, prediction_log_pb2 = _apis()
    cases = [(signature_name, rows), *dict(others or {}).items()]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out)) as writer:
        for i in range(count):
            signature, signature_rows = cases[i % len(cases)]
            row = (i // len(cases)) % len(next(iter(signature_rows.values())))
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            for name, values in signature_rows.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values[row:row + 1]))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return count


def read_warmup_requests(path: str | os.PathLike) -> list:
    """The PredictionLog protos of a warmup file (empty list when there is none)."""
    import tensorflow as tf

    _, _, prediction_log_pb2 = _apis()
    if not Path(path).exists():
        return []
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    return logs
