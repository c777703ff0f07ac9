"""MLflow tracking: one run per train/tune/evaluate, nested runs per trial.

`RunTracker` is what training code holds. The MLflow work itself happens in
the tracking worker process (`kerasflow.track.worker`, where a `Recorder`
does it): this process never imports mlflow, waits only for calls that
return something, and so trains while MLflow opens its store, writes
metrics, copies artifacts and logs the model.

Once a run has started, tracking never stops training: a tracking server that
goes away mid-run produces one warning, metrics are buffered and re-sent, and
what could not be delivered is kept in `<run_dir>/mlflow_unsent_metrics.jsonl`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from kerasflow.track.recorder import default_uri
from kerasflow.track.registry import undecided_registration
from kerasflow.track.tags import default_tags
from kerasflow.track.transport import TrackingWarning
from kerasflow.track.ui import launch_ui

__all__ = ["RunTracker", "TrackingWarning", "default_tags", "launch_ui", "resolve_uri", "warm_up"]


def resolve_uri(tracking_cfg: Mapping[str, Any]) -> str:
    """The tracking URI: spec `tracking.uri`, else env `MLFLOW_TRACKING_URI`, else
    `sqlite:///<cwd>/mlflow.db` (absolute, so a later chdir cannot move it)."""
    return _resolve_uri(tracking_cfg)[0]


def _resolve_uri(tracking_cfg: Mapping[str, Any]) -> tuple[str, str]:
    if tracking_cfg.get("uri"):
        return str(tracking_cfg["uri"]), "tracking.uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "env MLFLOW_TRACKING_URI"
    return default_uri(), "default"


def _experiment(tracking_cfg: Mapping[str, Any], spec_dict: Mapping[str, Any] | None) -> str:
    return str(tracking_cfg.get("experiment") or (spec_dict or {}).get("name") or "kerasflow")


def warm_up(tracking_cfg: Mapping[str, Any], spec_dict: Mapping[str, Any] | None = None) -> None:
    """Start the background worker and, in it, open the store while this process
    goes on (tracking enabled), or prepare plotting (disabled: a tracked run
    prepares it once its MLflow run has started, so starting never waits on it).

    Call it before importing TensorFlow: the store is then ready when the run
    starts, and drawing the run's plots later costs less.
    """
    from kerasflow.track.worker import worker

    cfg = dict(tracking_cfg or {})
    try:
        w = worker()
        if cfg.get("enabled", True):
            w.call(0, "warm", resolve_uri(cfg), _experiment(cfg, spec_dict), wait=False)
        else:
            w.call(0, "prepare_plots", wait=False)
    except Exception:  # only a head start: starting the run reports what is wrong
        pass


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
    FAILED on an exception, KILLED on KeyboardInterrupt. Calls that return
    nothing (metrics, tags, artifacts) return at once and are delivered in
    order by the tracking worker; `end` waits until all of them are.
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
        self.experiment_name = _experiment(self.cfg, spec_dict)
        self.run_name = str(self.cfg.get("run_name") or f"{name}-{kind}")
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.offline_from: str | None = None  # the unreachable URI we fell back from
        self._id: int | None = None  # this run's Recorder in the worker
        self._started = False  # `start` sent (the worker's Recorder drops calls if the run did not open)
        self._ended = False

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI when the URI is an http(s) server."""
        if not self.run_id or not self.uri.startswith(("http://", "https://")):
            return None
        return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    @property
    def _live(self) -> bool:
        return self.enabled and self._started

    def _call(self, method: str, *args, wait: bool = True, **kwargs):
        if wait:
            return self._submit(method, *args, **kwargs)()
        from kerasflow.track.worker import WorkerError, worker

        try:
            return worker().call(self._id, method, *args, wait=False, **kwargs)
        except WorkerError as err:
            return self._not_done(method, err)

    def _submit(self, method: str, *args, **kwargs) -> Callable[[], Any]:
        """Send `method` to the worker now; the function returned waits for its result."""
        from kerasflow.track.worker import WorkerError, worker

        w = worker()
        try:
            pending = w.submit(self._id, method, *args, **kwargs)
        except WorkerError as err:
            failed = err
            return lambda: self._not_done(method, failed)

        def result():
            try:
                return pending()
            except WorkerError as err:
                return self._not_done(method, err)
            finally:
                self.__dict__.update(w.state(self._id))

        return result

    @staticmethod
    def _not_done(method: str, err: Exception) -> None:
        if method in ("start", "register"):  # no training left to protect: the caller decides
            raise err
        import warnings

        # Tracking never breaks training: the run's files stay in its directory.
        warnings.warn(f"MLflow {method} not done: {err}", TrackingWarning, stacklevel=4)

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, resume_run_id: str | None = None, wait: bool = True) -> "RunTracker":
        """Open (or with `resume_run_id` reopen) the run.

        Args:
            resume_run_id: the MLflow run to continue.
            wait: until the run exists (its id is then `run_id`). Without, the
                worker opens it while this process goes on and later calls are
                queued behind it; a failure to open is a `TrackingWarning` and
                those calls are dropped (a tuning trial's run: never worth
                holding up the search).

        Raises:
            SpecError: naming `tracking.uri` when the store cannot be reached,
                unless `tracking.required` is false: then a warning, and the run
                goes to the local default store instead.
        """
        if not self.enabled or self._started:
            return self
        from kerasflow.track.worker import worker

        w = worker()
        self._id = w.new_id()
        # Paths absolute: the worker keeps the directory it started in.
        w.call(self._id, "open", self.cfg, run_dir=str(self.run_dir.absolute()),
               kind=self.kind, parent_run_id=self.parent_run_id, uri=self.uri, uri_source=self._uri_source,
               experiment_name=self.experiment_name, run_name=self.run_name, fallback_uri=default_uri(), wait=False)
        self._call("start", resume_run_id, wait=wait)
        self._started = True
        if self.parent_run_id is None and (resume_run_id is None or self.offline_from):
            self._call("log_params", dict(self.spec_dict or {}), wait=False)  # the spec, logged while training starts
        return self

    def end(self, status: str = "FINISHED", *, wait: bool = True) -> None:
        """End the run with `status` (FINISHED, FAILED or KILLED) once everything sent
        before has been delivered; idempotent. Without `wait`, the worker ends it
        after what it holds while this process goes on (a tuning trial: the
        search's own run, ended with `wait`, is ended after it)."""
        if not self.enabled and wait:  # nothing to end, but the run's plots may still be drawing
            from kerasflow.track.worker import sync

            sync()
        if not self._live or self._ended:
            return
        try:
            self._call("end", status, wait=wait)
        finally:
            self._ended = True

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

    def child(self, run_name: str, *, resume_run_id: str | None = None) -> "RunTracker":
        """A nested run (one tuning trial) in the same experiment and store, opened
        by the worker while the trial trains; `resume_run_id` reopens an earlier
        one (a trial retried after a kill)."""
        from kerasflow.spec.errors import SpecError

        cfg = {**self.cfg, "uri": self.uri, "experiment": self.experiment_name, "run_name": run_name, "required": True}
        trial_dir = self.run_dir / "trials" / re.sub(r"[^\w.-]", "_", run_name)
        child = RunTracker(cfg, spec_dict=self.spec_dict, run_dir=trial_dir, kind="trial", parent_run_id=self.run_id)
        if not self._live:
            child.enabled = False
            return child
        try:
            child.start(resume_run_id=resume_run_id, wait=False)  # queued: the trial trains meanwhile
        except SpecError as err:
            import warnings

            from kerasflow.track.transport import first_line

            warnings.warn(f"trial run {run_name!r} not tracked: {first_line(err)}", TrackingWarning, stacklevel=2)
            child.enabled = False
        return child

    # -- logging -----------------------------------------------------------

    def log_params(self, params: Mapping[str, Any], prefix: str = "", *, wait: bool = True) -> None:
        """Log a nested dict (the spec, trial hyperparameters) as flattened dotted params;
        without `wait`, rejected params warn at a later call instead of this one."""
        if self._live:
            self._call("log_params", dict(params), prefix, wait=wait)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (values as strings, cut to MLflow's 8000 characters)."""
        if self._live:
            self._call("set_tags", {str(k): str(v) for k, v in tags.items()}, wait=False)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics (e.g. final test metrics); kept for re-sending if the server is down."""
        if self._live:
            from kerasflow.track.transport import metric_rows

            scalars = {key: value for key, value, _, _ in metric_rows(metrics, 0)}  # arrays and strings dropped
            self._call("log_metrics", scalars, step, wait=False)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file (under `artifact_path` if given); warns instead of failing."""
        if self._live:
            self._call("log_artifact", str(Path(path).absolute()), artifact_path, wait=False)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Upload a directory's contents (under `artifact_path` if given); warns instead of failing."""
        if self._live:
            self._call("log_artifacts", str(Path(local_dir).absolute()), artifact_path, wait=False)

    def keras_callback(self, epoch_offset: int = 0):
        """A Keras callback logging each epoch's logs with step = `epoch_offset` + epoch.

        Pass the number of epochs of earlier stages as `epoch_offset` so steps are
        global across stages. The callback holds only strings and numbers (KerasTuner
        deep-copies callbacks), hands each epoch to the tracking worker without
        waiting, and never raises into training.
        """
        if not self._live:
            import keras

            return keras.callbacks.Callback()
        from kerasflow.track.callback import MlflowMetrics

        return MlflowMetrics(self._id, epoch_offset)

    # -- models ------------------------------------------------------------

    def log_model(self, keras_model, *, input_example=None, name: str = "model",
                  model_file: str | Path | None = None) -> str | None:
        """Log `keras_model` (MLflow keras flavor, `.keras` format); returns its model URI.

        `mlflow.pyfunc.load_model(uri).predict(x)` then equals `keras_model.predict(x)`.
        `input_example` (an array or dict of arrays; strings allowed) fixes the
        signature, inputs and outputs named as the model names them.
        `model_file`: the model already saved as `.keras` (it is copied, not saved
        again); default: saved here to a temporary file.
        Returns None (after a TrackingWarning saying why) when tracking is off, the
        server is unreachable or MLflow cannot log the model: training is over by
        then and its outputs are on disk, so this never fails the run.
        """
        if not self._live:
            return None
        if model_file is not None:
            return self.log_model_later(keras_model, input_example=input_example, name=name, model_file=model_file)()
        with tempfile.TemporaryDirectory(prefix="kerasflow-model-") as tmp:
            model_file = Path(tmp) / "model.keras"
            keras_model.save(model_file)
            return self.log_model_later(keras_model, input_example=input_example, name=name, model_file=model_file)()

    def log_model_later(self, keras_model, *, model_file: str | Path, input_example=None,
                        name: str = "model") -> Callable[[], str | None]:
        """`log_model` of the saved `model_file`, sent to the worker now; the
        function returned waits for the model URI (None as for `log_model`), so
        this process can evaluate meanwhile. `model_file` must stay until then."""
        if not self._live:
            return lambda: None
        from kerasflow.track.logged_model import example_arrays, example_outputs

        inputs = outputs = None
        if input_example is not None:
            inputs = example_arrays(input_example)
            try:
                outputs = example_outputs(keras_model, inputs)
            except Exception as err:  # the model is still worth logging
                import warnings

                from kerasflow.track.transport import first_line

                warnings.warn(f"model logged without a signature: predicting the input example failed "
                              f"({first_line(err)})", TrackingWarning, stacklevel=2)
                inputs = None
        return self._submit("log_model", str(Path(model_file).absolute()), inputs=inputs, outputs=outputs, name=name)

    def register(self, model_uri: str, name: str, *, alias: str = "champion", objective: str,
                 mode: str, value: float | None) -> dict[str, Any]:
        """Register `model_uri` as a new version of `name` and move `alias` to it only
        when this run did not fail and `value` of `objective` is at least as good
        (>= for mode `max`, <= for `min`) as the alias holder's.

        The decision and its reason are tags on the version (`kerasflow.alias_decision`,
        `kerasflow.alias_reason`) and on the run. Returns the decision as a dict.
        """
        decision = undecided_registration(name, alias=alias, objective=objective, mode=mode, value=value)
        if not self._live or not model_uri:
            return {**decision, "reason": "tracking disabled or model not logged"}
        return self._call("register", model_uri, name, alias=alias, objective=objective, mode=mode, value=value)
