"""Searches in separate processes: a search killed with SIGKILL resumes without
redoing finished trials, and KerasTuner's chief/worker mode (gRPC oracle on
127.0.0.1) runs each trial exactly once across two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow_server import free_port

BASE = Path(__file__).resolve().parent / "specs" / "valid_mlp.yaml"
REPO = Path(__file__).resolve().parents[1]
LR = "training.stages[0].optimizer.learning_rate"
DRIVER = """
import json, sys
from kerasflow.spec.loader import load_spec
from kerasflow.tune import tune
spec, run_dir, role, address, port, worker = sys.argv[1:7]
result = tune(load_spec(spec), run_dir=run_dir, quiet=True, role=role, chief_address=address or None,
              port=int(port) if port else None, worker_id=worker or None)
print("RESULT " + json.dumps({"trials": result.trials, "best": str(result.best_spec_path),
                              "run": result.mlflow_run_id}))
"""

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def write_spec(tmp_path: Path, name: str, *, max_trials: int, epochs: int, tracking: dict) -> Path:
    spec = yaml.safe_load(BASE.read_text())
    spec["name"] = name
    spec["model"]["nodes"]["h1"]["units"] = 32
    spec["model"]["nodes"]["h2"]["units"] = {"tune": "choice", "values": [16, 32]}
    spec["training"].update(jit_compile=False, stages=[{"name": "main", "epochs": epochs, "optimizer": {
        "type": "adam", "learning_rate": {"tune": "choice", "values": [1e-2, 3e-3]}}}])
    spec["tuning"] = {"tuner": "random", "objective": "val_accuracy", "max_trials": max_trials}
    spec["tracking"] = tracking
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def start(spec: Path, run_dir: Path, role: str = "standalone", address: str = "", port: str = "",
          worker: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(spec), str(run_dir), role, address, port, worker],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=run_dir.parent)


def result_of(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def trial_files(project: Path) -> dict[str, dict]:
    out = {}
    for path in project.glob("trial_*/trial.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:  # being written right now
            pass
    return out


def test_a_killed_search_resumes_without_redoing_finished_trials(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, "resume", max_trials=3, epochs=2, tracking={"enabled": False})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    project = run_dir / "keras_tuner"
    proc = start(spec, run_dir)
    deadline = time.monotonic() + 400
    done: dict[str, dict] = {}
    while not done and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        done = {k: v for k, v in trial_files(project).items() if v["status"] == "COMPLETED"}
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert done, "no trial finished before the deadline"
    before = {name: (project / name / "checkpoint.weights.h5").stat().st_mtime_ns for name in done}

    # Resumed in this process: what it reads is the killed search's directory, and a
    # fresh interpreter would only add a TensorFlow import.
    from kerasflow.spec.loader import load_spec
    from kerasflow.tune import tune

    monkeypatch.chdir(run_dir.parent)  # where the killed process ran
    result = {"trials": tune(load_spec(spec), run_dir=run_dir, quiet=True).trials}
    assert [r["status"] for r in result["trials"]] == ["COMPLETED"] * 3
    assert sorted(trial_files(project)) == ["trial_0", "trial_1", "trial_2"]  # no extra trial
    for name, trial in done.items():
        assert trial_files(project)[name] == trial  # finished trials were kept as they were ...
        assert (project / name / "checkpoint.weights.h5").stat().st_mtime_ns == before[name]  # ... not retrained
    values = {(r["values"][LR], r["values"]["model.nodes.h2.units"]) for r in result["trials"]}
    assert len(values) == 3  # the resumed oracle still knows what was tried


def test_chief_and_two_workers_run_each_trial_once(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(tmp_path, "distributed", max_trials=4, epochs=1, tracking={"uri": uri, "experiment": "dist"})
    run_dir = tmp_path / "run"  # one directory on storage all processes share
    run_dir.mkdir()
    port = free_port()
    # Started together: workers wait for the chief's oracle (gRPC wait_for_ready).
    chief = start(spec, run_dir, "chief", "127.0.0.1", str(port))
    workers = [start(spec, run_dir, "worker", f"127.0.0.1:{port}", worker=f"w{i}") for i in (1, 2)]
    try:
        ran = [result_of(w) for w in workers]
        summary = result_of(chief)
    finally:
        for proc in [chief, *workers]:
            if proc.poll() is None:
                proc.kill()

    by_worker = [[r["trial_id"] for r in w["trials"]] for w in ran]
    everything = sorted(t for ids in by_worker for t in ids)
    assert len(everything) == 4 and len(set(everything)) == 4  # each trial ran once, on one worker
    assert sorted(r["trial_id"] for r in summary["trials"]) == everything  # the chief sees them all
    reported = {r["trial_id"]: r["score"] for w in ran for r in w["trials"]}
    assert {r["trial_id"]: r["score"] for r in summary["trials"]} == reported  # the chief has the workers' scores
    assert all(r["status"] == "COMPLETED" and r["score"] > 0.2 for r in summary["trials"])  # chance is 0.1
    assert Path(summary["best"]).exists()

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(summary["run"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["kerasflow.tuner_id"] for c in children) == sorted(
        f"w{i}" for i, ids in enumerate(by_worker, start=1) for _ in ids)
    assert parent.info.status == "FINISHED"
