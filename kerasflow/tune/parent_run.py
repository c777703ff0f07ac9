"""The parent MLflow run of a KerasTuner search (one child run per trial),
shared by a chief and its workers through the project directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerasflow.runs import write_text
from kerasflow.tune.distributed import Role

PARENT_RUN_FILE = "mlflow_parent_run_id"  # in the project directory: the run a rerun or a worker reopens


class ParentRun:
    """The parent MLflow run of a search, opened on first use.

    A rerun reopens the run whose id the project holds. A worker opens it when
    its first trial starts, so a chief started at the same time has written the
    id by then (to the shared project directory); it nests its trials under the
    chief's run and leaves ending it to the chief. A worker that finds no id
    opens a run of its own.
    """

    def __init__(self, loaded, run_dir: Path, project: Path, role: Role, restart: bool, tuner_id: str | None):
        self.cfg = loaded.spec.tracking.model_dump()
        self.loaded, self.run_dir, self.role = loaded, run_dir, role
        self.file = project / PARENT_RUN_FILE
        self.restart, self.tuner_id = restart, tuner_id
        self.tracker = None
        self.owned = False
        self._earlier: dict[str, Any] | None = None
        self.resumed = False

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker is not None else None

    def get(self):
        if self.tracker is None and self.cfg.get("enabled", True):
            from kerasflow.track.mlflow import RunTracker

            previous = self.file.read_text().strip() if self.file.exists() and not self.restart else None
            cfg = dict(self.cfg)
            if self.role == "worker" and not previous:
                cfg["run_name"] = cfg.get("run_name") or f"{self.loaded.spec.name}-tune-{self.tuner_id}"
            self.tracker = RunTracker(cfg, spec_dict=self.loaded.raw, run_dir=self.run_dir, kind="tune")
            self.tracker.start(resume_run_id=previous)
            self.resumed = bool(previous)
            self.owned = self.role != "worker" or not previous
        return self.tracker

    def save(self) -> None:
        if self.run_id:
            write_text(self.file, self.run_id)  # a kill mid-write would leave no id: a second parent run

    def trial_runs(self) -> dict[str, Any]:
        """The MLflow runs earlier attempts of this search opened, by trial id,
        read from the store once (what survives a kill; later trials are this
        process's own)."""
        if self._earlier is None:
            tracker = self.get()
            self._earlier = {}
            if tracker is not None and tracker.run_id and self.resumed:  # a new parent run has no trials yet
                from kerasflow.track.transport import client_for

                runs = client_for(tracker.uri).search_runs(
                    [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{tracker.run_id}'",
                    order_by=["attributes.start_time ASC"], max_results=5000)
                self._earlier = {run.data.tags["kerasflow.trial_id"]: run for run in runs
                                 if "kerasflow.trial_id" in run.data.tags}
        return self._earlier

    def end_trial_run(self, run_id: str, status: str) -> None:
        from kerasflow.track.transport import client_for

        client = client_for(self.get().uri)
        client.set_tag(run_id, "kerasflow.trial_status", "COMPLETED" if status == "FINISHED" else status)
        client.set_terminated(run_id, status)

    def end(self, status: str) -> None:
        if self.tracker is not None and self.owned:
            self.tracker.end(status)
