"""Talking to an MLflow store without letting an outage reach training.

MLflow's HTTP client retries for minutes by default; kerasflow picks a budget
per kind of call, detects outages, and buffers metrics it could not send.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from kerasflow.track.params import truncate, valid_key

UNSENT_METRICS = "mlflow_unsent_metrics.jsonl"
MAX_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
# After a failed call the server is left alone this long, so an outage costs
# training one failed request, not one per epoch.
OUTAGE_COOLDOWN_S = 30.0
# (max retries, backoff factor, timeout in s) for MLflow's HTTP client; used
# only where the user has not set MLFLOW_HTTP_REQUEST_* themselves.
QUICK = (0, 0, 5)  # per-epoch metrics: training must not wait on a dead server
PROBE = (1, 0, 10)  # reachability check at start
PATIENT = (2, 1, 60)  # params, artifacts, models: ride out a short hiccup

_POLICY_VARS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT")

Row = tuple[str, float, int, int]  # key, value, timestamp ms, step


class TrackingWarning(UserWarning):
    """Tracking degraded (server unreachable, value rejected); training goes on."""


@functools.lru_cache(maxsize=16)
def client_for(uri: str):
    """One MlflowClient per URI, shared (callbacks keep only the URI string)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def http_policy(policy: tuple[int, int, int]) -> Iterator[None]:
    """Apply a retry/timeout budget: MLflow reads these variables on every request."""
    added = [(n, str(v)) for n, v in zip(_POLICY_VARS, policy) if n not in os.environ]  # the user's own wins
    os.environ.update(added)
    try:
        yield
    finally:
        for name, _ in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def global_uri(uri: str) -> Iterator[None]:
    """`mlflow.set_tracking_uri(uri)` for the block only: MLflow also writes it to
    env MLFLOW_TRACKING_URI, which would otherwise outlive the run and redirect
    later runs (and subprocesses) to this store."""
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri keeps both in step
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def is_outage(err: BaseException | None) -> bool:
    """True when `err` (or an exception it chains) means the server could not be reached."""
    import requests

    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
             requests.exceptions.RetryError, ConnectionError, TimeoutError)
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kinds):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def first_line(err: BaseException) -> str:
    problems = getattr(err, "problems", None)  # SpecError: its first problem says it all
    text = problems[0].message if problems else (str(err).strip() or type(err).__name__)
    return truncate(text.splitlines()[0], 400)


def metric_rows(logs: Mapping[str, Any] | None, step: int) -> list[Row]:
    """Scalar entries of `logs` as metric rows; arrays and strings are skipped."""
    now = int(time.time() * 1000)
    rows = []
    for key, value in (logs or {}).items():
        try:
            rows.append((valid_key(str(key)), float(value), now, int(step)))
        except (TypeError, ValueError):
            pass
    return rows


def send_metrics(uri: str, run_id: str, rows: list[Row]) -> bool:
    """Send rows with the QUICK budget; raises on failure."""
    from mlflow.entities import Metric

    client = client_for(uri)
    with http_policy(QUICK):
        for start in range(0, len(rows), MAX_METRICS_PER_BATCH):
            chunk = rows[start : start + MAX_METRICS_PER_BATCH]
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in chunk])
    return True


def append_unsent(path: str | Path, rows: list[Row]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(list(row)) + "\n")


def read_unsent(path: Path) -> list[Row]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
