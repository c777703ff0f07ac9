"""Nothing is lost: `kerasflow train` killed (SIGKILL, Ctrl-C) with tracking on,
then resumed; every epoch in history.csv is in MLflow with its value, and a
normal run's MLflow metrics are its history.csv."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow_server import migrated_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = """\
kerasflow: 1
name: resumable
seed: 3
data:
  source: {type: sklearn, name: digits}
  features:
    pixels: {type: numeric, shape: [64], normalize: true, column: data}
  target: {name: label, type: category, num_classes: 10, column: target}
  split: {validation: 0.1, test: 0.1}
  batch_size: 16
model:
  sequential:
    - {layer: dense, units: 64, activation: relu}
    - {layer: dense, units: 10, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  stages:
    - {name: main, epochs: EPOCHS, optimizer: {type: adam, learning_rate: 0.001}}
tracking: {experiment: resumable}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return migrated_store(tmp_path_factory.mktemp("template") / "mlflow.db")


@pytest.fixture
def workdir(tmp_path, template):
    """The user's directory: a spec and the default store `mlflow.db`."""
    shutil.copyfile(template, tmp_path / "mlflow.db")
    return tmp_path


def _spec(workdir: Path, epochs: int) -> Path:
    path = workdir / "spec.yaml"
    path.write_text(SPEC.replace("EPOCHS", str(epochs)))
    return path


def _train(workdir: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen([sys.executable, "-m", "kerasflow.cli", "train", *args, "--quiet"], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _mlflow_epochs(workdir: Path, run_id: str, keys) -> dict[str, dict[int, float]]:
    """The latest value MLflow holds for each (metric, step)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    out = {}
    for key in keys:
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        out[key] = {m.step: m.value for m in points}
    return out


def _assert_history_in_mlflow(workdir: Path, run_dir: Path, *, exactly: bool) -> str:
    from mlflow import MlflowClient

    rows = _history(run_dir)
    run_id = json.loads((run_dir / "state.json").read_text())["mlflow_run_id"]
    keys = [k for k in rows[0] if k not in ("epoch", "stage")]
    assert {"loss", "val_accuracy", "learning_rate"} <= set(keys)
    logged = _mlflow_epochs(workdir, run_id, keys)
    for key in keys:
        assert logged[key] == {int(r["epoch"]): float(r[key]) for r in rows}, key
    run = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FINISHED"
    if exactly:  # one value per epoch: nothing logged twice
        client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
        assert len(client.get_metric_history(run_id, "loss")) == len(rows)
    return run_id


def test_a_normal_runs_mlflow_metrics_are_its_history_csv(workdir):
    proc = _train(workdir, str(_spec(workdir, 4)), "--run-dir", "run")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert len(_history(workdir / "run")) == 4
    _assert_history_in_mlflow(workdir, workdir / "run", exactly=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_every_finished_epoch_is_in_mlflow_after_a_kill_and_resume(workdir, sig):
    epochs = 40
    proc = _train(workdir, str(_spec(workdir, epochs)), "--run-dir", "run")
    deadline = time.monotonic() + 300
    while len(_history(workdir / "run")) < 3:  # killed in the middle of training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    state = json.loads((workdir / "run" / "state.json").read_text())
    finished = len(_history(workdir / "run"))
    assert 3 <= finished < epochs, out[-3000:]

    resumed = _train(workdir, "--resume", "run")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert len(_history(workdir / "run")) == epochs
    run_id = _assert_history_in_mlflow(workdir, workdir / "run", exactly=False)
    assert run_id == state["mlflow_run_id"]  # the same MLflow run continued
