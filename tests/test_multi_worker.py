"""`training.distribution: multi_worker`: the cluster from flags or TF_CONFIG
(fast, no TensorFlow) and two `kerasflow train` workers on 127.0.0.1 that end
with identical weights and single-process quality, and the same as a
`kerasflow run` pipeline."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import QUICKSTART, REPO
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec
from kerasflow.train.cluster import resolve_cluster

# The spec's own (30): 10 epochs leave both runs short of its quality. Kept as the
# spec has it, so the single-process baseline is the README's quickstart run.
EPOCHS = load_spec(QUICKSTART).spec.training.stages[0].epochs


def tf_config(cluster: dict, task_type: str = "worker", index: int = 0) -> dict:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})}


# ------------------------------------------------------------- the cluster


def test_flags_make_worker_zero_the_chief_and_become_tf_config():
    first = resolve_cluster("10.0.0.1:2222, 10.0.0.2:2222", 0, environ={})
    second = resolve_cluster(["10.0.0.1:2222", "10.0.0.2:2222"], 1, environ={})
    assert (first.is_chief, second.is_chief, first.size) == (True, False, 2)
    assert second.task == "worker 1 of 2"
    assert json.loads(second.tf_config()) == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                                              "task": {"type": "worker", "index": 1}}


def test_flags_win_over_tf_config_and_tf_config_is_read_without_flags():
    env = tf_config({"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "worker", 0)
    assert resolve_cluster("x:1,y:2", 1, environ=env).jobs == {"worker": ("x:1", "y:2")}
    cluster = resolve_cluster(environ=env)
    # With a chief job, worker 0 is an ordinary worker.
    assert (cluster.task_type, cluster.task_index, cluster.is_chief, cluster.size) == ("worker", 0, False, 3)
    assert resolve_cluster(environ=tf_config({"chief": ["a:1"], "worker": ["b:2"]}, "chief")).is_chief


@pytest.mark.parametrize("workers, index, message", [
    (None, None, "multi_worker needs a cluster: no --workers given and TF_CONFIG is not set"),
    ("a:1,b:2", None, "--workers needs --worker-index"),
    (None, 0, "--worker-index needs --workers"),
    ("a:1,b:2", 2, "--worker-index 2 is not in the list of 2 workers"),
    ("a:1,b", 0, "`b` is not an address"),
    ("a:1,b:99999", 0, "`b:99999` is not an address"),
    ("a:1,,b:2", 0, "`` is not an address"),
    ("a:1,a:1", 1, "a:1 appears more than once"),
])
def test_bad_flags_are_spec_errors_at_training_distribution(workers, index, message):
    with pytest.raises(SpecError) as err:
        resolve_cluster(workers, index, environ={})
    assert message in str(err.value)
    assert {p.path for p in err.value.problems} == {"training.distribution"}


@pytest.mark.parametrize("raw, message", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG has no `cluster`"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}',
     "task types multi_worker cannot train with: ps"),
    ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "cluster.worker is not a list of addresses"),
    ('{"cluster": {"worker": ["a:1", "nohost"]}, "task": {"type": "worker"}}', "`nohost` is not an address"),
    ('{"cluster": {"chief": ["a:1", "b:2"], "worker": ["c:3"]}, "task": {"type": "chief"}}',
     "cluster.chief has more than one address"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG has no `task`"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "TF_CONFIG has no `task`"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task.index is not in cluster.worker"),
])
def test_bad_tf_config_is_a_spec_error_naming_what_is_wrong(raw, message):
    with pytest.raises(SpecError) as err:
        resolve_cluster(environ={"TF_CONFIG": raw})
    assert message in str(err.value)
    assert err.value.problems[0].path == "training.distribution"


def test_cli_reports_a_bad_cluster_without_a_traceback_and_before_training(tmp_path):
    from kerasflow.cli import cli

    args = ["train", str(QUICKSTART), "--set", "training.distribution=multi_worker", "--set", "tracking.enabled=false",
            "--run-dir", str(tmp_path / "run"), "--workers", "127.0.0.1:1,127.0.0.1:1", "--worker-index", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "training.distribution: --workers: 127.0.0.1:1 appears more than once" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_workers_flag_without_multi_worker_distribution_is_refused(tmp_path):
    from kerasflow import api

    with pytest.raises(SpecError, match="--workers/--worker-index need distribution multi_worker") as err:
        api.train(QUICKSTART, ["tracking.enabled=false"], run_dir=tmp_path / "run", workers="127.0.0.1:1",
                  worker_index=0)
    assert err.value.problems[0].hint == "--set training.distribution=multi_worker"


@pytest.mark.parametrize("run_dir", ["given", "default"])
def test_batch_frequency_tensorboard_is_refused_before_the_cluster_starts(run_dir, tmp_path, monkeypatch):
    from kerasflow.spec.loader import load_spec
    from kerasflow.train.multi_worker_stages import train_multi_worker

    monkeypatch.chdir(tmp_path)
    loaded = load_spec(QUICKSTART, ["training.distribution=multi_worker", "tracking.enabled=false",
                                    "training.stages.0.callbacks.tensorboard={update_freq: batch}"])
    with pytest.raises(SpecError, match="multi_worker logs once per epoch") as err:
        train_multi_worker(loaded, run_dir=tmp_path / "run" if run_dir == "given" else None,
                           workers="127.0.0.1:1", worker_index=0)
    assert err.value.problems[0].path == "training.stages[0].callbacks.tensorboard.update_freq"
    assert list(tmp_path.iterdir()) == []  # the chief wrote nothing: no empty run directory is left behind


def test_tuning_refuses_multi_worker(tmp_path):
    from kerasflow.cli import cli

    args = ["tune", str(REPO / "tests" / "specs" / "valid_mlp.yaml"), "--run-dir", str(tmp_path / "tune"), "--quiet",
            "--set", "model.nodes.h2.units={tune: choice, values: [16, 32]}", "--set", "tracking.enabled=false",
            "--set", "tuning={tuner: random, objective: val_accuracy, max_trials: 1}",
            "--set", "training.distribution=multi_worker"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "training.distribution: multi_worker trains through `kerasflow train` only" in result.output
    assert "then train the best spec with multi_worker" in result.output
    assert not list((tmp_path / "tune").rglob("trial.json"))


# ------------------------------------------------------- two real workers


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kerasflow.cli", "train", str(QUICKSTART), "--set", "tracking.enabled=false", *args]


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every worker; on a failure or the deadline, kill each worker's process group."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                time.sleep(5)  # let the survivors report the failure themselves
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_two_workers_train_identical_weights_at_single_process_quality(tmp_path, quickstart_run):
    import keras

    from kerasflow.train.multi_worker import weights_fingerprint

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    # The single-process baseline: the same spec, seed and epochs trained by `kerasflow run` (session fixture).
    assert quickstart_run.result.returncode == 0, quickstart_run.result.stderr[-3000:]

    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        with log.open("w") as out:
            procs.append(subprocess.Popen(
                _train_command("--set", "training.distribution=multi_worker", "--run-dir", "multi",
                               "--workers", workers, "--worker-index", str(i)),
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    _wait_all(procs, timeout=300)
    outputs = [log.read_text() for log in logs]
    for i, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {i} exited {proc.returncode}:\n{output[-3000:]}"

    fingerprints = [re.search(r"weights fingerprint ([0-9a-f]{16})", out).group(1) for out in outputs]
    assert fingerprints[0] == fingerprints[1]
    # Only the chief wrote a run directory, and its model holds the weights both workers ended with.
    multi = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    base = quickstart_run.metrics
    assert abs(multi["test_accuracy"] - base["test_accuracy"]) <= 0.01, (multi, base)
    assert multi["test_accuracy"] > 0.9
    history = (tmp_path / "multi" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + EPOCHS
    assert weights_fingerprint(keras.saving.load_model(tmp_path / "multi" / "model.keras")) == fingerprints[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["multi"]


@pytest.mark.integration
@pytest.mark.slow
def test_kerasflow_run_trains_a_multi_worker_pipeline_with_two_workers(tmp_path):
    """Both workers run `kerasflow run`: worker 1 joins the chief's `train` stage, the
    chief alone evaluates and exports, and the exported model has the chief's weights."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    sets = ["training.distribution=multi_worker", "tracking.enabled=false", "training.stages.0.epochs=8",
            "stages=[validate, train, evaluate, export]"]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        with log.open("w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "kerasflow.cli", "run", str(QUICKSTART), "--run-dir", "pipe",
                 "--workers", workers, "--worker-index", str(i), *[a for s in sets for a in ("--set", s)]],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    _wait_all(procs, timeout=600)
    outputs = [log.read_text() for log in logs]
    for i, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {i} exited {proc.returncode}:\n{output[-3000:]}"

    assert "[train] running (joining the chief)" in outputs[1]
    assert "[export]" not in outputs[1] and "[export] running" in outputs[0]
    state = json.loads((tmp_path / "pipe" / "pipeline.json").read_text())
    assert [state["stages"][s]["status"] for s in ("validate", "train", "evaluate", "export")] == ["done"] * 4
    history = (tmp_path / "pipe" / "train" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 8
    assert state["stages"]["train"]["outputs"]["metrics"]["test_accuracy"] > 0.9
    assert (tmp_path / "models" / "quickstart" / "1" / "saved_model.pb").is_file()
