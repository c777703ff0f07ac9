"""Runs survive `kill -9` and continue with `resume`; stages carry weights and
epoch numbers; frozen nodes stay frozen; MLflow records the run in the default
sqlite store; a diverging run fails with a spec error and a FAILED MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DIGITS_MLP
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

def _sets(*, stages: str, batch: int = 32, tracking: str = "{enabled: false}") -> list[str]:
    """--set overrides of the digits MLP spec (tests/specs/digits_mlp.yaml)."""
    return [f"training.stages={stages}", f"data.batch_size={batch}", f"tracking={tracking}"]


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes_the_run(tmp_path):
    from kerasflow.train.callbacks import read_history
    from kerasflow.train.stages import train

    # Batch size 8: ~180 steps per epoch, so the kill lands well inside the next epoch.
    sets = _sets(batch=8, stages="[{name: main, epochs: 4, optimizer: {type: adam, learning_rate: 0.0005}}]")
    run = tmp_path / "run"
    code = ("from kerasflow.spec.loader import load_spec; from kerasflow.train.stages import train; "
            f"train(load_spec({str(DIGITS_MLP)!r}, {sets!r}), run_dir={str(run)!r}, quiet=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    backup = run / "checkpoints" / "backup" / "main" / "latest.npz"
    deadline = time.monotonic() + 300
    try:
        while not backup.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished within 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = read_history(run / "history.csv")
    with np.load(backup) as saved:
        next_epoch = int(saved["epoch"])
    assert 1 <= next_epoch < 4 and len(before) >= next_epoch, (next_epoch, before)
    assert not (run / "metrics.json").exists()
    assert not json.loads((run / "state.json").read_text())["stages"]

    result = train(resume=run, quiet=True)

    assert result.model.history.epoch == list(range(next_epoch, 4))  # only the unfinished epochs ran again
    after = read_history(run / "history.csv")
    assert [r["epoch"] for r in after] == [0, 1, 2, 3]
    assert after[:next_epoch] == before[:next_epoch]
    assert result.history["epoch"] == [0, 1, 2, 3]
    state = json.loads((run / "state.json").read_text())
    params = 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10  # the digits MLP's weights and biases
    assert state["finished"] and state["stages"]["main"] == {"done": True, "first_epoch": 0, "end_epoch": 4,
                                                             "batch_size": 8, "steps_per_epoch": 180,
                                                             "trainable_params": params}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.93, metrics
    assert not (run / "checkpoints" / "backup").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_two_stages_freeze_carry_weights_and_log_to_the_default_mlflow_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from kerasflow.model.builder import build_model
    from kerasflow.train.stages import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = _sets(tracking="{experiment: digits-stages}", stages="""
    - {name: warmup, epochs: 2, optimizer: {type: adam, learning_rate: 0.002}}
    - name: top
      epochs: 2
      freeze: [hidden1]
      optimizer: {type: sgd, momentum: 0.9, nesterov: true, learning_rate: 0.01}
      callbacks: {model_checkpoint: {monitor: val_accuracy, mode: max}}
""")
    loaded = load_spec(DIGITS_MLP, sets + ["training.class_weight=balanced"])
    result = train(loaded, run_dir=tmp_path / "run", quiet=True)

    assert result.history["epoch"] == [0, 1, 2, 3]
    assert result.history["stage"] == ["warmup", "warmup", "top", "top"]
    assert result.metrics["test_accuracy"] >= 0.9
    assert (tmp_path / "run" / "checkpoints" / "top.best.keras").is_file()

    after_warmup = build_model(loaded, result.data.stats)
    with np.load(tmp_path / "run" / "checkpoints" / "warmup.end.npz") as saved:
        after_warmup.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])
    for layer, frozen in (("hidden1", True), ("hidden2", False), ("output", False)):
        same = all(np.array_equal(a, b) for a, b in zip(after_warmup.get_layer(layer).get_weights(),
                                                         result.model.get_layer(layer).get_weights()))
        assert same == frozen, layer

    assert (tmp_path / "mlflow.db").is_file()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "digits-stages"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2, 3]
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert run.data.params["training.stages.1.freeze"] == '["hidden1"]'
    assert run.data.tags["kerasflow.spec_hash"] == loaded.hash
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["mlflow_run_id"] == run.info.run_id and state["mlflow_model_uri"].startswith("models:/")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.resolved.yaml", "history.csv", "metrics.json", "model_summary.txt", "plots"} <= artifacts


@pytest.mark.slow
def test_diverging_training_is_a_spec_error_and_a_failed_mlflow_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from kerasflow.train.stages import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = _sets(tracking="{log_model: false}",
                 stages="[{name: main, epochs: 2, optimizer: {type: sgd, learning_rate: 10.0}}]")
    run_dir = tmp_path / "run"
    with pytest.raises(SpecError, match="training diverged: the loss became NaN/Inf in epoch 1") as err:
        train(load_spec(DIGITS_MLP, sets), run_dir=run_dir, quiet=True)
    assert err.value.problems[0].path == "training.stages[0].optimizer.learning_rate"
    state = json.loads((run_dir / "state.json").read_text())
    assert not state["stages"] and not (run_dir / "checkpoints" / "backup" / "main" / "latest.npz").exists()
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(state["mlflow_run_id"])
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["kerasflow.error"]


@pytest.mark.slow
def test_distribution_precision_and_callback_switches_run_together(tmp_path):
    import keras

    from kerasflow.train.evaluate import evaluate_run
    from kerasflow.train.stages import train

    sets = _sets(batch=32, stages="""
    - name: main
      epochs: 2
      batch_size: 64
      steps_per_epoch: 10
      optimizer: {type: rmsprop, momentum: 0.5, clipvalue: 1.0, learning_rate: 0.001}
      callbacks:
        tensorboard: {}
        csv_logger: {}
        reduce_lr_on_plateau: {patience: 1}
        early_stopping: {monitor: val_accuracy, patience: 5}
""")
    overrides = ["training.distribution=mirrored", "training.mixed_precision=mixed_float16",
                 "training.steps_per_execution=5", "training.jit_compile=false"]
    result = train(load_spec(DIGITS_MLP, sets + overrides), run_dir=tmp_path / "run", quiet=True)
    assert result.model.dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert result.history["epoch"] == [0, 1] and result.metrics["test_accuracy"] > 0.5
    assert (tmp_path / "run" / "logs" / "main.csv").is_file()
    assert any((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    again = evaluate_run(tmp_path / "run")  # rebuilt under the run's policy from its directory
    assert again["metrics"]["accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_train_registers_the_model_as_tracking_register_as(tmp_path, monkeypatch):
    import mlflow

    from kerasflow import api

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = api.train(DIGITS_MLP, ["training.stages.0.epochs=2", "tracking={experiment: reg, register_as: digits}"],
                       run_dir=tmp_path / "run", quiet=True)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    holder = client.get_model_version_by_alias("digits", "champion")
    assert holder.run_id == result.mlflow_run_id
    assert holder.tags["kerasflow.objective"] == "test_accuracy" and holder.tags["kerasflow.objective_mode"] == "max"
    assert float(holder.tags["kerasflow.objective_value"]) == pytest.approx(result.metrics["test_accuracy"])
    assert client.get_run(result.mlflow_run_id).info.status == "FINISHED"


def test_watching_a_validation_metric_without_a_validation_split_fails_before_training(tmp_path):
    """Keras would only warn ("conditioned on metric `val_loss` which is not available")
    and train on without ever stopping early: kerasflow stops before the first epoch."""
    from kerasflow.train.stages import train
    from kerasflow.tune import tune

    sets = ["data.split={validation: 0.0, test: 0.1}", "training.stages.0.callbacks={early_stopping: {patience: 1}}"]
    with pytest.raises(SpecError) as err:
        train(load_spec(DIGITS_MLP, sets), run_dir=tmp_path / "run", quiet=True)
    (problem,) = err.value.problems
    assert problem.path == "training.stages[0].callbacks.early_stopping.monitor"
    assert "`val_loss` needs a validation split" in problem.message and "`loss`" in problem.hint
    assert not (tmp_path / "run").exists()  # nothing was written

    searched = sets + ["training.stages.0.optimizer.learning_rate={tune: choice, values: [0.01, 0.001]}",
                       "tuning={tuner: random, objective: val_accuracy, max_trials: 1}"]
    with pytest.raises(SpecError) as err:
        tune(load_spec(DIGITS_MLP, searched), run_dir=tmp_path / "tune", quiet=True)
    assert sorted(p.path for p in err.value.problems) == ["training.stages[0].callbacks.early_stopping.monitor",
                                                         "tuning.objective"]
