"""A search killed in the middle of a trial and resumed: the trial's MLflow run
is ended (KILLED) or reused, never left RUNNING, and no trial gets two runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import DIGITS_MLP

from kerasflow.spec.loader import load_spec

# Many one-step epochs: a trial lasts seconds (~0.1 s an epoch), so a kill sent
# as soon as its first epoch is written lands inside it. (60 epochs made the
# resumed search, which trains both trials again, take twice as long.)
SETS = ["training.stages=[{name: main, epochs: 30, steps_per_epoch: 1, optimizer: {type: adam, learning_rate: "
        "{tune: choice, values: [0.01, 0.001]}}}]", "tuning={tuner: grid, objective: val_accuracy, max_trials: 2}"]


def _tune_command(spec: Path, run_dir: Path, uri: str) -> list[str]:
    sets = [arg for s in SETS + [f"tracking={{uri: '{uri}', experiment: killed}}"] for arg in ("--set", s)]
    return [sys.executable, "-m", "kerasflow.cli", "tune", str(spec), "--run-dir", str(run_dir), "--quiet", *sets]


def _trial_runs(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("killed")
    if experiment is None:
        return []
    return [r for r in client.search_runs([experiment.experiment_id]) if "kerasflow.trial_id" in r.data.tags]


def _start_and_interrupt(tmp_path: Path, uri: str, sig: int) -> subprocess.Popen:
    """Start a search; once its first trial has trained an epoch, send `sig`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(_tune_command(DIGITS_MLP, tmp_path / "tune", uri), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not list((tmp_path / "tune" / "keras_tuner").glob("trial_*/history.csv")):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no trial trained an epoch within 300 s"
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("sig, left", [(signal.SIGINT, "KILLED"), (signal.SIGKILL, "RUNNING")])
def test_a_search_killed_mid_trial_resumes_without_running_or_duplicate_runs(tmp_path, sig, left):
    from kerasflow.tune import tune

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start_and_interrupt(tmp_path, uri, sig)
    assert proc.returncode != 0
    killed = _trial_runs(uri)
    assert [r.info.status for r in killed] == [left]  # SIGKILL leaves no chance to end it

    result = tune(load_spec(DIGITS_MLP, SETS + [f"tracking={{uri: '{uri}', experiment: killed}}"]), run_dir=tmp_path / "tune", quiet=True)

    runs = _trial_runs(uri)
    assert len(result.trials) == 2 and all(r["status"] == "COMPLETED" for r in result.trials)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]  # none RUNNING, none KILLED now
    assert max(Counter(r.data.tags["kerasflow.trial_id"] for r in runs).values()) == 1  # no duplicate
    assert killed[0].info.run_id in {r.info.run_id for r in runs}  # the killed trial's run was reused

