"""The MLflow side of a run: what `RunTracker` asks for, done against the store.

A `Recorder` lives in the tracking worker process (`kerasflow.track.worker`),
so none of this runs on the training thread. Once a run has started, tracking
never stops training: a tracking server that goes away mid-run produces one
warning, metrics are buffered and re-sent, and what could not be delivered is
kept in `<run_dir>/mlflow_unsent_metrics.jsonl`.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.track import transport
from kerasflow.track.params import batches, flatten_params, truncate, valid_key
from kerasflow.track.registry import undecided_registration
from kerasflow.track.tags import context_tags
from kerasflow.track.transport import UNSENT_METRICS, TrackingWarning, client_for, first_line, http_policy, is_outage

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"
HISTORY_FILE = "history.csv"  # kerasflow.runs.HISTORY_FILE, read here without importing keras
_MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH


def default_uri() -> str:
    """`sqlite:///<cwd>/mlflow.db` (absolute, so a later chdir cannot move it)."""
    return f"sqlite:///{Path.cwd() / DEFAULT_STORE}"


def warm(uri: str, experiment: str) -> None:
    """Open the store at `uri` now (sqlite: create or check its tables), so that
    starting a run later finds it ready; failures are left for `start` to report."""
    try:
        with http_policy(transport.PROBE):
            client_for(uri).get_experiment_by_name(experiment)
    except Exception:
        pass
    _context_tags()


@functools.lru_cache(maxsize=1)
def _context_tags() -> dict[str, str]:
    return context_tags()  # MLflow's context providers run git and friends: once per worker


class Recorder:
    """One MLflow run, as `RunTracker` describes it; runs in the tracking worker.

    Args:
        tracking_cfg: the spec's `tracking` section (`enabled`, `tags`, `required`).
        run_dir: the invocation's output directory (unsent metrics land here;
            its `history.csv`, if any, is checked against MLflow when the run ends).
        kind: recorded as tag `kerasflow.kind`.
        parent_run_id: makes this a nested run.
        uri, uri_source: the tracking URI and where it came from.
        experiment_name, run_name: as resolved by `RunTracker`.
        fallback_uri: where the run goes when `uri` is unreachable and `required` is false.
    """

    def __init__(self, tracking_cfg: Mapping[str, Any], *, run_dir: str | Path,
                 kind: str, parent_run_id: str | None, uri: str, uri_source: str, experiment_name: str,
                 run_name: str, fallback_uri: str):
        self.cfg = dict(tracking_cfg or {})
        self.enabled = bool(self.cfg.get("enabled", True))
        self.run_dir = Path(run_dir)
        self.kind = kind
        self.parent_run_id = parent_run_id
        self.uri, self._uri_source = uri, uri_source
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.fallback_uri = fallback_uri
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.offline_from: str | None = None  # the unreachable URI we fell back from
        self._down_until = 0.0
        self._warned: set[str] = set()
        self._ended = False
        self._pending: list = []  # epoch metrics not yet delivered
        self._retry_at = 0.0
        self._failing = False

    def state(self) -> dict[str, Any]:
        """What the `RunTracker` in the training process mirrors."""
        return {"enabled": self.enabled, "uri": self.uri, "run_id": self.run_id,
                "experiment_id": self.experiment_id, "offline_from": self.offline_from}

    @property
    def _live(self) -> bool:
        return self.enabled and self.run_id is not None

    # -- lifecycle ---------------------------------------------------------

    def start(self, resume_run_id: str | None = None) -> None:
        """Open (or reopen) the run; see `RunTracker.start`."""
        if not self.enabled or self.run_id is not None:
            return
        try:
            self._open(resume_run_id)
        except SpecError:
            raise
        except Exception as err:
            if self.cfg.get("required", True):
                raise self._unreachable(err) from err
            fallback = self.fallback_uri
            self._warn_once("start", f"MLflow at {self.uri} is unreachable ({first_line(err)}); "
                            f"tracking.required is false, so this run is recorded in {fallback}")
            self.offline_from, self.uri = self.uri, fallback
            try:
                self._open(None)
            except Exception as err2:
                self._warn_once("offline", f"local MLflow store failed too ({first_line(err2)}); run untracked")
                self.enabled = False

    def _open(self, resume_run_id: str | None) -> None:
        client = client_for(self.uri)
        with http_policy(transport.PROBE):
            if resume_run_id:
                try:
                    run = client.get_run(resume_run_id)
                except Exception as err:
                    if is_outage(err):
                        raise
                    raise SpecError(Problem(
                        path="tracking.uri", message=f"cannot resume MLflow run {resume_run_id}: not found in {self.uri}",
                        received=first_line(err), hint="check the run id and that tracking.uri is the store it was logged to",
                    )) from err
                self.experiment_id = run.info.experiment_id
                client.update_run(resume_run_id, status="RUNNING")
                self.run_id = resume_run_id
                return
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise SpecError(Problem(
                    path="tracking.experiment", message=f"experiment {self.experiment_name!r} is deleted in {self.uri}",
                    hint=f"restore it (mlflow experiments restore --experiment-id {experiment.experiment_id}) or pick another name",
                ))
            if experiment is None:
                location = _artifact_location(self.uri, self.experiment_name)
                self.experiment_id = client.create_experiment(self.experiment_name, artifact_location=location)
            else:
                self.experiment_id = experiment.experiment_id
        tags = {**_context_tags(), "kerasflow.kind": self.kind, "kerasflow.run_dir": str(self.run_dir.resolve())}
        tags.update({str(k): str(v) for k, v in (self.cfg.get("tags") or {}).items()})
        if self.offline_from:
            tags["kerasflow.offline_from"] = self.offline_from
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        with http_policy(transport.PATIENT):
            run = client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id

    def _unreachable(self, err: BaseException) -> SpecError:
        remote = self.uri.startswith(("http://", "https://"))
        what = "cannot reach the MLflow tracking server" if remote else "cannot open the MLflow store"
        return SpecError(Problem(
            path="tracking.uri",
            message=f"{what} at {self.uri} (from {self._uri_source})",
            expected="a reachable MLflow tracking URI",
            received=first_line(err),
            hint=("start it (mlflow server --host 127.0.0.1 --port PORT), fix tracking.uri, "
                  "or set tracking.required: false to record the run locally instead"),
        ))

    def end(self, status: str = "FINISHED") -> None:
        """Deliver what is pending and end the run with `status`; idempotent."""
        if not self._live or self._ended:
            return
        self._ended = True
        self.train_end()
        self._resend_unsent()
        self._log_missing_epochs()
        done = self._attempt("ending the run", lambda c: c.set_terminated(self.run_id, status) or True, force=True)
        if not done:
            self._warn_once("end", f"run {self.run_id} could not be marked {status} at {self.uri}; "
                            f"it stays RUNNING there (reopen it with resume_run_id={self.run_id!r})")

    # -- logging -----------------------------------------------------------

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Log a nested dict (the spec, trial hyperparameters) as flattened dotted params."""
        flat = flatten_params(params, prefix)

        def send(client):
            from mlflow.entities import Param

            rejected = []
            for batch in batches(flat):
                try:
                    client.log_batch(self.run_id, params=[Param(k, v) for k, v in batch.items()])
                except Exception as err:
                    if is_outage(err):
                        raise
                    # One rejected param fails its whole batch: keep the other 99.
                    for k, v in batch.items():
                        try:
                            client.log_batch(self.run_id, params=[Param(k, v)])
                        except Exception as single:
                            if is_outage(single):
                                raise
                            rejected.append(f"{k} ({first_line(single)})")
            if rejected:
                self._warn_once("rejected params", f"MLflow rejected {len(rejected)} params: {'; '.join(rejected)}")

        self._attempt("params", send)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values as strings, cut to MLflow's 8000 characters)."""

        def send(client):
            from mlflow.entities import RunTag

            items = [RunTag(valid_key(str(k)), truncate(str(v), _MAX_TAG_VALUE)) for k, v in tags.items()]
            for start in range(0, len(items), 100):
                client.log_batch(self.run_id, tags=items[start : start + 100])

        self._attempt("tags", send)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics (e.g. final test metrics); kept for re-sending if the server is down."""
        rows = transport.metric_rows(metrics, step or 0)
        if self._live and rows and not self._attempt("metrics", lambda c: transport.send_metrics(self.uri, self.run_id, rows)):
            transport.append_unsent(self.run_dir / UNSENT_METRICS, rows)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file (under `artifact_path` if given); warns instead of failing."""
        self._attempt(f"artifact {path}", lambda c: c.log_artifact(self.run_id, str(path), artifact_path))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a directory's contents (under `artifact_path` if given); warns instead of failing."""
        self._attempt(f"artifacts {local_dir}", lambda c: c.log_artifacts(self.run_id, str(local_dir), artifact_path))

    def log_epoch(self, rows: list) -> None:
        """Metric rows of one finished epoch. During an outage they are kept and the
        server is left alone for a cool-down; every call costs one quick request at most."""
        self._pending += [tuple(r) for r in rows]
        if time.monotonic() >= self._retry_at:
            self._flush_epochs()

    def train_end(self) -> None:
        """At the end of a `fit`: what is still undeliverable goes to the unsent file."""
        self._flush_epochs()
        if self._pending:
            transport.append_unsent(self.run_dir / UNSENT_METRICS, self._pending)
            self._pending = []

    def _flush_epochs(self) -> None:
        if not self._pending or not self._live:
            return
        try:
            transport.send_metrics(self.uri, self.run_id, self._pending)
        except Exception as err:  # tracking must never stop training
            self._retry_at = time.monotonic() + transport.OUTAGE_COOLDOWN_S
            if not self._failing:
                self._warn_once("epochs", f"MLflow at {self.uri} unreachable; buffering metrics and retrying: "
                                f"{first_line(err)}")
            self._failing = True
            return
        if self._failing:
            log.warning("MLflow at %s reachable again; sent %d buffered values", self.uri, len(self._pending))
        self._failing, self._pending = False, []

    def _log_missing_epochs(self) -> None:
        """Epochs in `history.csv` that MLflow lacks (a kill between the row and its
        metrics, before a resume) are logged now, so the run holds every finished epoch."""
        path = self.run_dir / HISTORY_FILE
        if not path.exists() or not self._live:
            return
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        keys = [k for k in (rows[0] if rows else {}) if k not in ("epoch", "stage")]

        def send(client):
            now = int(time.time() * 1000)
            missing = []
            for key in keys:
                name = valid_key(key)
                logged = {m.step for m in client.get_metric_history(self.run_id, name)}
                missing += [(name, float(r[key]), now, int(r["epoch"])) for r in rows
                            if r.get(key) not in ("", None) and int(r["epoch"]) not in logged]
            if missing:
                transport.send_metrics(self.uri, self.run_id, missing)
            return True

        self._attempt("missing epochs", send, force=True)

    def _resend_unsent(self) -> None:
        path = self.run_dir / UNSENT_METRICS
        if not path.exists():
            return
        rows = transport.read_unsent(path)
        if self._attempt("buffered metrics", lambda c: transport.send_metrics(self.uri, self.run_id, rows), force=True):
            path.unlink()
            log.info("sent %d buffered metric values to %s", len(rows), self.uri)
        else:
            self._warn_once("unsent", f"{len(rows)} metric values could not be sent; they are kept in {path}")

    # -- models ------------------------------------------------------------

    def log_model(self, model_file: str, *, inputs=None, outputs=None, name: str = "model") -> str | None:
        """Log a saved `.keras` file as the run's model; see `RunTracker.log_model`."""
        from kerasflow.track.logged_model import log_keras_file

        return self._attempt("model", lambda client: log_keras_file(
            client, self.uri, self.experiment_id, self.run_id, model_file, inputs=inputs, outputs=outputs, name=name))

    def register(self, model_uri: str, name: str, *, alias: str = "champion", objective: str,
                 mode: str, value: float | None) -> dict[str, Any]:
        """Register `model_uri` as a version of `name`; see `RunTracker.register`."""
        from kerasflow.track.registry import register_version, require_model

        decision = undecided_registration(name, alias=alias, objective=objective, mode=mode, value=value)
        if not self._live or not model_uri:
            return {**decision, "reason": "tracking disabled or model not logged"}

        def send(client):
            with transport.global_uri(self.uri):  # mlflow.register_model resolves the registry globally
                require_model(model_uri, name)  # else MLflow would leave an empty registered model behind
                return {**decision, **register_version(client, model_uri, name, alias=alias, objective=objective,
                                                       mode=mode, value=value, run_id=self.run_id)}

        out = self._attempt("model registration", send, only_outages=True)
        if out is None:
            return {**decision, "reason": f"tracking server at {self.uri} unreachable"}
        self.set_tags({"kerasflow.registered_version": f"{name}/{out['version']}",
                       "kerasflow.alias_decision": f"{'moved' if out['moved'] else 'kept'} @{alias}: {out['reason']}"})
        return out

    # -- plumbing ----------------------------------------------------------

    def _attempt(self, what: str, fn: Callable[[Any], Any], *, force: bool = False, only_outages: bool = False):
        """fn(client) or None: a failure warns instead of raising (with `only_outages`,
        only an unreachable server is tolerated; other errors propagate)."""
        if not self._live:
            return None
        down = time.monotonic() < self._down_until
        if down and not force:
            self._warn_once(f"skip {what}", f"{what} not logged: MLflow at {self.uri} was unreachable moments ago")
            return None
        try:
            # A forced call during an outage gets one quick try, not the patient budget.
            with http_policy(transport.QUICK if down else transport.PATIENT):
                return fn(client_for(self.uri))
        except Exception as err:
            outage = is_outage(err)
            if only_outages and not outage:
                raise
            if outage:
                self._down_until = time.monotonic() + transport.OUTAGE_COOLDOWN_S
            self._warn_once(what, f"{what} not logged to {self.uri}: {first_line(err)}")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, TrackingWarning, stacklevel=3)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live next to its file (`<db dir>/mlruns/<experiment>`);
    MLflow would put them under the current directory, wherever the process runs."""
    if not uri.startswith("sqlite:///"):
        return None  # a server decides (and proxies) its own artifact store
    db = Path(uri[len("sqlite:///"):]).absolute()
    return (db.parent / "mlruns" / re.sub(r"[^\w.-]", "_", experiment)).as_uri()
