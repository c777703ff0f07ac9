"""Tracking against a real `mlflow server` (sqlite backend, artifacts in tmp) on
127.0.0.1: a full training run, an outage mid-training, and `launch_ui`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from mlflow_server import free_port, group_members, migrated_store, mlflow_server

from kerasflow.track import RunTracker, TrackingWarning, default_tags
from kerasflow.track.transport import UNSENT_METRICS

pytestmark = pytest.mark.integration

SPEC = {
    "name": "digits-mlp",
    "data": {"source": {"type": "sklearn", "name": "digits"}, "batch_size": 64},
    "model": {"nodes": {"h1": {"layer": "dense", "units": {"tune": "int", "min": 16, "max": 64}}}},
    "training": {"stages": [{"name": "warmup", "epochs": 3}, {"name": "main", "epochs": 2}]},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return migrated_store(tmp_path_factory.mktemp("template") / "mlflow.db")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split((x / 16.0).astype("float32"), y.astype("int32"), test_size=0.2, random_state=0)


def _model():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _write_outputs(run_dir: Path, history: dict, metrics: dict) -> tuple[Path, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    history_csv, metrics_json = run_dir / "history.csv", run_dir / "metrics.json"
    with history_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *history])
        writer.writerows([i, *row] for i, row in enumerate(zip(*history.values())))
    metrics_json.write_text(json.dumps(metrics))
    return history_csv, metrics_json


def test_training_run_against_a_real_server_records_everything(tmp_path, digits, template):
    import mlflow
    from mlflow import MlflowClient

    x_train, x_test, y_train, y_test = digits
    run_dir = tmp_path / "run"
    with mlflow_server(tmp_path / "server", template) as server:
        cfg = {"uri": server.uri, "experiment": "digits", "tags": {"team": "vision"}}
        with RunTracker(cfg, spec_dict=SPEC, run_dir=run_dir) as tracker:
            tracker.set_tags(default_tags("spec-abc", "data-123"))
            model = _model()
            fit_args = dict(validation_split=0.2, batch_size=64, verbose=0)
            warmup = model.fit(x_train, y_train, epochs=3, callbacks=[tracker.keras_callback(0)], **fit_args)
            main = model.fit(x_train, y_train, epochs=2, callbacks=[tracker.keras_callback(3)], **fit_args)
            history = {k: warmup.history[k] + main.history[k] for k in warmup.history}
            test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
            tracker.log_metrics({"test_loss": test_loss, "test_accuracy": test_accuracy})
            for path in _write_outputs(run_dir, history, {"test_accuracy": test_accuracy}):
                tracker.log_artifact(path)
            model_uri = tracker.log_model(model, input_example=x_test[:5])
            decision = tracker.register(model_uri, "digits-mlp", objective="val_accuracy", mode="max",
                                        value=max(history["val_accuracy"]))

        client = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
        run = client.get_run(tracker.run_id)
        assert run.info.status == "FINISHED"
        assert tracker.url == f"{server.uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        assert client.get_experiment(run.info.experiment_id).name == "digits"
        # params: the flattened spec under dotted keys
        assert run.data.params["data.source.name"] == "digits"
        assert run.data.params["training.stages.1.epochs"] == "2"
        assert json.loads(run.data.params["model.nodes.h1.units"]) == {"tune": "int", "min": 16, "max": 64}
        # metrics: one value per epoch, steps global across both stages
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            points = sorted(client.get_metric_history(tracker.run_id, key), key=lambda m: m.step)
            assert [m.step for m in points] == [0, 1, 2, 3, 4]
            assert [m.value for m in points] == pytest.approx(history[key])
        assert run.data.metrics["test_accuracy"] == pytest.approx(test_accuracy)
        # tags
        tags = run.data.tags
        assert (tags["team"], tags["kerasflow.kind"]) == ("vision", "train")
        assert (tags["kerasflow.spec_hash"], tags["kerasflow.data_fingerprint"]) == ("spec-abc", "data-123")
        from importlib.metadata import version

        assert tags["kerasflow.version.tensorflow"] == version("tensorflow")
        assert tags["kerasflow.version.keras"] == version("keras")
        assert tags["kerasflow.version.python"] == ".".join(map(str, sys.version_info[:3]))
        assert tags["kerasflow.alias_decision"].startswith("moved @champion")
        # artifacts, downloaded back through the server
        assert {a.path for a in client.list_artifacts(tracker.run_id)} >= {"history.csv", "metrics.json"}
        downloaded = client.download_artifacts(tracker.run_id, "metrics.json", str(tmp_path / "dl"))
        assert json.loads(Path(downloaded).read_text()) == {"test_accuracy": test_accuracy}
        # registry: the alias points at this run's version, which reloads and predicts identically
        assert decision["moved"] and decision["reason"] == "no version held @champion"
        champion = client.get_model_version_by_alias("digits-mlp", "champion")
        assert (champion.version, champion.run_id) == (decision["version"], tracker.run_id)
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(server.uri)  # what a user does to load the champion
        try:
            loaded = mlflow.pyfunc.load_model("models:/digits-mlp@champion")
        finally:
            mlflow.set_tracking_uri(previous)  # it also sets the env var: keep later tests clean
        expected = model.predict(x_test, verbose=0)
        np.testing.assert_allclose(loaded.predict(x_test), expected, rtol=1e-5, atol=1e-6)
        assert (loaded.predict(x_test).argmax(axis=1) == y_test).mean() > 0.85
        pgid = server.pgid
        assert group_members(pgid)
    assert group_members(pgid) == []


def test_server_killed_mid_training_does_not_stop_training(tmp_path, digits, template):
    import keras
    from mlflow import MlflowClient

    x_train, _, y_train, _ = digits
    run_dir = tmp_path / "run"
    with mlflow_server(tmp_path / "server", template) as server:
        tracker = RunTracker({"uri": server.uri}, spec_dict=SPEC, run_dir=run_dir).start()
        outage = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch == 1 and server.kill())
        with pytest.warns(TrackingWarning) as caught:
            # Epoch metrics are delivered by the tracking worker while training goes on:
            # the kill lands at some point of their delivery.
            history = _model().fit(x_train, y_train, epochs=5, validation_split=0.2, verbose=0,
                                   callbacks=[tracker.keras_callback(), outage])
            _, metrics_json = _write_outputs(run_dir, history.history, {"val_accuracy": history.history["val_accuracy"][-1]})
            tracker.log_artifact(metrics_json)
            tracker.end()
        pgid = server.pgid
        assert group_members(pgid) == []
    assert len(history.history["loss"]) == 5
    assert json.loads(metrics_json.read_text())["val_accuracy"] > 0.5
    assert any("unreachable" in str(w.message) for w in caught)
    # Every epoch is either in the server's store (delivered before the outage) or kept on disk, once.
    stored = MlflowClient(tracking_uri=server.backend_uri)
    delivered = sorted(m.step for m in stored.get_metric_history(tracker.run_id, "loss"))
    assert stored.get_run(tracker.run_id).info.status == "RUNNING"  # could not be closed: resumable
    unsent = [json.loads(line) for line in (run_dir / UNSENT_METRICS).read_text().splitlines()]
    kept = sorted({step for key, _, _, step in unsent if key == "loss"})
    assert sorted(delivered + kept) == [0, 1, 2, 3, 4]
    assert kept and kept[-1] == 4  # everything after the outage waits on disk for the run's next end


def test_launch_ui_serves_the_default_store_and_stops_its_process_group(tmp_path, template):
    from mlflow import MlflowClient

    shutil.copyfile(template, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with RunTracker({"uri": store}, spec_dict=SPEC, run_dir=tmp_path / "run") as tracker:
        pass
    code = f"from kerasflow.track import launch_ui; raise SystemExit(launch_ui({store!r}, port={free_port()}))"
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                cwd=tmp_path, start_new_session=True)
    watchdog = threading.Timer(120, lambda: os.killpg(launcher.pid, signal.SIGKILL))
    watchdog.start()
    server_groups: list[int] = []
    try:
        url = next(m.group(0) for line in launcher.stdout if (m := re.search(r"http://127\.0\.0\.1:\d+", line)))
        run = MlflowClient(tracking_uri=url).get_run(tracker.run_id)
        assert run.data.params["data.source.name"] == "digits"
        server_groups = [pid for pid in _children(launcher.pid) if group_members(pid)]
        assert server_groups, "mlflow server should run in a process group of its own"
        launcher.send_signal(signal.SIGTERM)  # what a service manager sends; Ctrl-C takes the same path
        assert launcher.wait(timeout=60) == 0
        assert all(group_members(pgid) == [] for pgid in server_groups)
    finally:
        watchdog.cancel()
        for pgid in {*server_groups, *_children(launcher.pid), launcher.pid}:
            if group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
