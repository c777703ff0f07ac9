"""MLflow tracking: one run per train/tune/evaluate, nested runs per trial.

`mlflow` (over a second to import) and `keras` are imported inside the
functions that use them, so importing this module costs nothing.

Once a run has started, tracking never stops training: a tracking server that
goes away mid-run produces one warning, metrics are buffered and re-sent, and
what could not be delivered is kept in `<run_dir>/mlflow_unsent_metrics.jsonl`.
"""

from __future__ import annotations

import contextlib

import logging
import os
import re
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.track import transport
from kerasflow.track.params import batches, flatten_params, truncate, valid_key
from kerasflow.track.tags import context_tags, default_tags
from kerasflow.track.transport import UNSENT_METRICS, TrackingWarning, client_for, first_line, http_policy, is_outage
from kerasflow.track.ui import launch_ui

__all__ = ["RunTracker", "TrackingWarning", "default_tags", "launch_ui", "resolve_uri"]

log = logging.getLogger(__name__)

DEFAULT_STORE = "mlflow.db"
_MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH


def resolve_uri(tracking_cfg: Mapping[str, Any]) -> str:
    """The tracking URI: spec `tracking.uri`, else env `MLFLOW_TRACKING_URI`, else
    `sqlite:///<cwd>/mlflow.db` (absolute, so a later chdir cannot move it)."""
    return _resolve_uri(tracking_cfg)[0]


def _resolve_uri(tracking_cfg: Mapping[str, Any]) -> tuple[str, str]:
    if tracking_cfg.get("uri"):
        return str(tracking_cfg["uri"]), "tracking.uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "env MLFLOW_TRACKING_URI"
    return f"sqlite:///{Path.cwd() / DEFAULT_STORE}", "default"


class RunTracker:
    """One MLflow run for a train/tune/evaluate invocation.

    Args:
        tracking_cfg: the spec's `tracking` section as a dict; read here: `enabled`,
            `uri`, `experiment`, `run_name`, `tags`, `required` (`register_as`,
            `alias` and `log_model` are for the caller). `enabled: false` makes
            every method a no-op.
        spec_dict: the resolved spec; logged as params on start and used
            for the default experiment (`name`) and run name.
        run_dir: the invocation's output directory (unsent metrics land here).
        kind: `train`, `tune`, `evaluate` or `trial`; recorded as a tag.
        parent_run_id: makes this a nested run (a tuning trial).

    Use as a context manager (or call `start` / `end`): the run ends FINISHED,
    FAILED on an exception, KILLED on KeyboardInterrupt.
    """

    def __init__(
        self,
        tracking_cfg: Mapping[str, Any],
        *,
        spec_dict: Mapping[str, Any],
        run_dir: str | Path,
        kind: str = "train",
        parent_run_id: str | None = None,
    ):
        self.cfg = dict(tracking_cfg or {})
        self.enabled = bool(self.cfg.get("enabled", True))
        self.spec_dict = spec_dict
        self.run_dir = Path(run_dir)
        self.kind = kind
        self.parent_run_id = parent_run_id
        self.uri, self._uri_source = _resolve_uri(self.cfg)
        name = str((spec_dict or {}).get("name") or "kerasflow")
        self.experiment_name = str(self.cfg.get("experiment") or name)
        self.run_name = str(self.cfg.get("run_name") or f"{name}-{kind}")
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.offline_from: str | None = None  # the unreachable URI we fell back from
        self._down_until = 0.0
        self._warned: set[str] = set()
        self._ended = False

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI when the URI is an http(s) server."""
        if not self.run_id or not self.uri.startswith(("http://", "https://")):
            return None
        return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    @property
    def _live(self) -> bool:
        return self.enabled and self.run_id is not None

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, resume_run_id: str | None = None) -> "RunTracker":
        """Open (or with `resume_run_id` reopen) the run.

        Raises:
            SpecError: naming `tracking.uri` when the store cannot be reached,
                unless `tracking.required` is false: then a warning, and the run
                goes to the local default store instead.
        """
        if not self.enabled or self.run_id is not None:
            return self
        try:
            self._open(resume_run_id)
        except SpecError:
            raise
        except Exception as err:
            if self.cfg.get("required", True):
                raise self._unreachable(err) from err
            fallback = f"sqlite:///{Path.cwd() / DEFAULT_STORE}"
            self._warn_once("start", f"MLflow at {self.uri} is unreachable ({first_line(err)}); "
                            f"tracking.required is false, so this run is recorded in {fallback}")
            self.offline_from, self.uri = self.uri, fallback
            try:
                self._open(None)
            except Exception as err2:
                self._warn_once("offline", f"local MLflow store failed too ({first_line(err2)}); run untracked")
                self.enabled = False
        return self

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
        tags = {**context_tags(), "kerasflow.kind": self.kind, "kerasflow.run_dir": str(self.run_dir.resolve())}
        tags.update({str(k): str(v) for k, v in (self.cfg.get("tags") or {}).items()})
        if self.offline_from:
            tags["kerasflow.offline_from"] = self.offline_from
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        with http_policy(transport.PATIENT):
            run = client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        if self.parent_run_id is None:
            self.log_params(self.spec_dict)

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
        """End the run with `status` (FINISHED, FAILED or KILLED); idempotent."""
        if not self._live or self._ended:
            return
        self._ended = True
        self._resend_unsent()
        done = self._attempt("ending the run", lambda c: c.set_terminated(self.run_id, status) or True, force=True)
        if not done:
            self._warn_once("end", f"run {self.run_id} could not be marked {status} at {self.uri}; "
                            f"it stays RUNNING there (reopen it with resume_run_id={self.run_id!r})")

    def __enter__(self) -> "RunTracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.end_for(exc)
        return False

    def end_for(self, exc: BaseException | None) -> None:
        """End the run as its outcome says: FINISHED, KILLED (Ctrl-C) or FAILED (tagged with the error)."""
        if exc is None:
            self.end("FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.set_tags({"kerasflow.error": f"{type(exc).__name__}: {exc}"})
            self.end("FAILED")

    @contextlib.contextmanager
    def ending(self):
        """Around work on an already started run: end it as `end_for` does, re-raising any error."""
        try:
            yield self
        except BaseException as exc:
            self.end_for(exc)
            raise
        self.end_for(None)

    def child(self, run_name: str) -> "RunTracker":
        """A started nested run (one tuning trial) in the same experiment and store."""
        cfg = {**self.cfg, "uri": self.uri, "experiment": self.experiment_name, "run_name": run_name, "required": True}
        trial_dir = self.run_dir / "trials" / re.sub(r"[^\w.-]", "_", run_name)
        child = RunTracker(cfg, spec_dict=self.spec_dict, run_dir=trial_dir, kind="trial", parent_run_id=self.run_id)
        if not self._live:
            child.enabled = False
            return child
        try:
            child.start()
        except SpecError as err:
            self._warn_once("child", f"trial run {run_name!r} not tracked: {first_line(err)}")
            child.enabled = False
        return child

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

    def keras_callback(self, epoch_offset: int = 0):
        """A Keras callback logging each epoch's logs with step = `epoch_offset` + epoch.

        Pass the number of epochs of earlier stages as `epoch_offset` so steps are
        global across stages. The callback holds only strings and numbers (KerasTuner
        deep-copies callbacks) and never raises into training.
        """
        if not self._live:
            import keras

            return keras.callbacks.Callback()
        from kerasflow.track.callback import MlflowMetrics

        return MlflowMetrics(self.uri, self.run_id, epoch_offset, str(self.run_dir / UNSENT_METRICS))

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

    def log_model(self, keras_model, *, input_example=None, name: str = "model") -> str | None:
        """Log `keras_model` (MLflow keras flavor, `.keras` format); returns its model URI.

        `mlflow.pyfunc.load_model(uri).predict(x)` then equals `keras_model.predict(x)`.
        `input_example` (an array or dict of arrays) fixes the signature.
        Returns None (after a TrackingWarning saying why) when tracking is off, the
        server is unreachable or MLflow cannot save the model: training is over by
        then and its outputs are on disk, so this never fails the run.
        """
        if not self._live:
            return None
        import mlflow
        from mlflow.models import Model

        def send(client):
            signature = _signature(keras_model, input_example)
            # The LoggedModel is created here so it lands in this run's experiment
            # (Model.log would use the default one); Model.log finds the store
            # through the global URI.
            logged = client.create_logged_model(self.experiment_id, name=name, source_run_id=self.run_id)
            with transport.global_uri(self.uri):
                info = Model.log(
                    artifact_path=None, name=name, flavor=mlflow.keras, model=keras_model, run_id=self.run_id,
                    model_id=logged.model_id, signature=signature, pip_requirements=_pip_requirements(),
                )
            return info.model_uri

        return self._attempt("model", send)

    def register(self, model_uri: str, name: str, *, alias: str = "champion", objective: str,
                 mode: str, value: float | None) -> dict[str, Any]:
        """Register `model_uri` as a new version of `name` and move `alias` to it only
        when this run did not fail and `value` of `objective` is at least as good
        (>= for mode `max`, <= for `min`) as the alias holder's.

        The decision and its reason are tags on the version (`kerasflow.alias_decision`,
        `kerasflow.alias_reason`) and on the run. Returns the decision as a dict.
        """
        from kerasflow.track.registry import register_version

        if mode not in ("max", "min"):
            raise ValueError(f"Received an invalid value for mode, expected 'max' or 'min'. Received: mode={mode!r}")
        decision: dict[str, Any] = {"name": name, "version": None, "alias": alias, "moved": False,
                                    "objective": objective, "mode": mode, "value": value,
                                    "previous_version": None, "previous_value": None}
        if not self._live or not model_uri:
            return {**decision, "reason": "tracking disabled or model not logged"}

        def send(client):
            with transport.global_uri(self.uri):  # mlflow.register_model resolves the registry globally
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


def _signature(keras_model, input_example):
    if input_example is None:
        return None
    from mlflow.models import infer_signature

    return infer_signature(input_example, keras_model.predict(input_example, verbose=0))


def _pip_requirements() -> list[str]:
    # Given explicitly: MLflow would otherwise infer them by loading the model in
    # a subprocess that imports TensorFlow (seconds per logged model).
    reqs = []
    for dist in ("keras", "tensorflow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return reqs
