"""MLflow tracking against a local sqlite store (no server): params, metrics,
status, resume, registry aliases, failure modes."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys

import pytest
from mlflow_server import free_port, migrated_store

from kerasflow.spec.errors import SpecError
from kerasflow.track import RunTracker, TrackingWarning, default_tags, flatten_params, launch_ui, resolve_uri
from kerasflow.track import recorder as tracker_module
from kerasflow.track import transport
from kerasflow.track.params import MAX_KEY_LENGTH, MAX_PARAMS_PER_BATCH, MAX_VALUE_LENGTH, batches

SPEC = {
    "kerasflow": 1,
    "name": "digits-mlp",
    "seed": 42,
    "data": {"source": {"type": "sklearn", "name": "digits"}, "split": {"validation": 0.2}, "batch_size": 64},
    "model": {
        "inputs": ["pixels"],
        "nodes": {
            "h1": {"layer": "dense", "input": "pixels", "units": {"tune": "int", "min": 32, "max": 256, "step": 32}},
            "out": {"layer": "dense", "input": "h1", "units": 10, "activation": "softmax"},
        },
    },
    "training": {"metrics": ["accuracy"], "stages": [{"name": "warmup", "epochs": 2}, {"name": "main", "epochs": 1}]},
    "tracking": {"experiment": "digits"},
}


# -- flattening ---------------------------------------------------------------


def test_flatten_params_dotted_keys_lists_none_and_tune_markers():
    flat = flatten_params(SPEC)
    assert flat["data.source.name"] == "digits"
    assert flat["data.split.validation"] == "0.2"
    assert flat["training.metrics"] == '["accuracy"]'  # list of scalars: one JSON param
    assert flat["training.stages.0.name"] == "warmup"  # list of mappings: indexed keys
    assert flat["training.stages.1.epochs"] == "1"
    assert json.loads(flat["model.nodes.h1.units"]) == {"tune": "int", "min": 32, "max": 256, "step": 32}
    assert flat["model.nodes.h1.units"] == '{"tune":"int","min":32,"max":256,"step":32}'  # compact
    assert flatten_params({"a": None, "b": True, "c": {}, "d": []}) == {"a": "null", "b": "true", "c": "{}", "d": "[]"}
    assert flatten_params({"a": {"b": 1}}, prefix="hp") == {"hp.a.b": "1"}


def test_flatten_params_respects_mlflow_limits():
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    flat = flatten_params({long_a: 1, long_b: 2, "v": "x" * 10_000, "odd key/+é": 3})
    keys = [k for k in flat if k.startswith("kkk")]
    assert len(keys) == 2 and all(len(k) <= MAX_KEY_LENGTH for k in keys)  # still distinct
    assert len(flat["v"]) == MAX_VALUE_LENGTH and flat["v"].endswith("...[truncated, 10000 chars in full]")
    assert flat["odd key__é"] == "3"  # characters MLflow rejects are replaced
    assert [len(b) for b in batches({str(i): "v" for i in range(250)})] == [100, 100, 50]


def test_limits_match_installed_mlflow():
    from mlflow.utils import validation

    assert MAX_KEY_LENGTH == validation.MAX_ENTITY_KEY_LENGTH
    assert MAX_VALUE_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert MAX_PARAMS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert transport.MAX_METRICS_PER_BATCH == validation.MAX_METRICS_PER_BATCH
    assert tracker_module._MAX_TAG_VALUE == validation.MAX_TAG_VAL_LENGTH


def test_importing_track_does_not_import_mlflow_or_keras():
    code = "import sys, kerasflow.track; print(sorted(m for m in ('mlflow', 'keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_http_policy_fills_only_unset_mlflow_variables(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with transport.http_policy(transport.QUICK):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"  # the user's setting wins
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(transport.QUICK[2])
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_launch_ui_refuses_a_missing_sqlite_store(tmp_path):
    with pytest.raises(SpecError, match="no MLflow store at"):
        launch_ui(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_default_tags_record_git_commit_dirtiness_and_versions(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                              cwd=tmp_path / "repo", capture_output=True, text=True, check=True).stdout.strip()

    (tmp_path / "repo").mkdir()
    git("init", "-q")
    (tmp_path / "repo" / "spec.yaml").write_text("name: x\n")
    git("add", "spec.yaml")
    git("commit", "-q", "-m", "spec")
    tags = default_tags("h", "f", repo_dir=tmp_path / "repo")
    assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD")
    assert tags["kerasflow.git_dirty"] == "false"
    (tmp_path / "repo" / "spec.yaml").write_text("name: y\n")
    assert default_tags("h", "f", repo_dir=tmp_path / "repo")["kerasflow.git_dirty"] == "true"
    outside = default_tags("h", "f", repo_dir=tmp_path)
    assert "mlflow.source.git.commit" not in outside
    assert outside["kerasflow.version.keras_tuner"] == importlib.metadata.version("keras-tuner")
    assert (outside["kerasflow.spec_hash"], outside["kerasflow.data_fingerprint"]) == ("h", "f")


def test_resolve_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri({}) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert resolve_uri({}) == "http://127.0.0.1:1"
    assert resolve_uri({"uri": "sqlite:///x.db"}) == "sqlite:///x.db"


# -- runs in the default sqlite store ----------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory, so the default store is tmp_path/mlflow.db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return migrated_store(tmp_path_factory.mktemp("template") / "mlflow.db")


@pytest.fixture
def store(workdir, template):
    """`workdir` already holding a migrated default store (MLflow's migrations take seconds)."""
    shutil.copyfile(template, workdir / "mlflow.db")
    return workdir


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def _model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_default_sqlite_store_records_params_and_global_epoch_steps(workdir, digits):
    x, y = digits
    tracker = RunTracker({}, spec_dict=SPEC, run_dir=workdir / "run")
    with tracker:
        model = _model()
        first = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0, callbacks=[tracker.keras_callback()])
        second = model.fit(x, y, epochs=1, validation_split=0.2, verbose=0, callbacks=[tracker.keras_callback(2)])
        tracker.log_metrics({"test_accuracy": 0.9, "not_a_scalar": [1, 2]})
    assert (workdir / "mlflow.db").exists()
    assert tracker.url is None  # no UI URL for a local store
    run = _client(f"sqlite:///{workdir / 'mlflow.db'}").get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "digits-mlp-train"
    assert run.data.params["data.source.name"] == "digits"
    assert run.data.params["training.stages.1.name"] == "main"
    history = _client(tracker.uri).get_metric_history(tracker.run_id, "val_accuracy")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2]
    expected = first.history["val_accuracy"] + second.history["val_accuracy"]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected)
    assert run.data.metrics["test_accuracy"] == pytest.approx(0.9)
    assert "not_a_scalar" not in run.data.metrics
    assert run.data.tags["kerasflow.kind"] == "train"


def test_params_beyond_one_batch_and_limits_are_all_logged(store):
    spec = {"name": "wide", "grid": {f"p{i}": i for i in range(250)}, "long": "x" * 7000, "k" * 300: 1}
    with RunTracker({}, spec_dict=spec, run_dir=store / "run") as tracker:
        pass
    params = _client(tracker.uri).get_run(tracker.run_id).data.params
    assert len(params) == 253
    assert params["grid.p249"] == "249"
    assert len(params["long"]) == MAX_VALUE_LENGTH


def test_artifacts_of_a_sqlite_store_live_next_to_its_file(workdir, template):
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    shutil.copyfile(template, elsewhere / "mlflow.db")
    (workdir / "notes.txt").write_text("hello")
    with RunTracker({"uri": f"sqlite:///{elsewhere / 'mlflow.db'}"}, spec_dict=SPEC, run_dir=workdir) as tracker:
        tracker.log_artifact(workdir / "notes.txt")
    logged = elsewhere / "mlruns" / "digits-mlp" / tracker.run_id / "artifacts" / "notes.txt"
    assert logged.read_text() == "hello"
    assert not (workdir / "mlruns").exists()  # not in the working directory (e.g. a repository)


def test_callback_survives_deepcopy_like_kerastuner(store, digits):
    x, y = digits
    with RunTracker({}, spec_dict=SPEC, run_dir=store / "run") as tracker:
        callback = copy.deepcopy(copy.deepcopy(tracker.keras_callback()))
        _model().fit(x[:256], y[:256], epochs=2, verbose=0, callbacks=[callback])
    steps = [m.step for m in _client(tracker.uri).get_metric_history(tracker.run_id, "loss")]
    assert sorted(steps) == [0, 1]


def test_exception_ends_failed_and_ctrl_c_ends_killed(store):
    with pytest.raises(ValueError, match="diverged"):
        with RunTracker({}, spec_dict=SPEC, run_dir=store / "a") as failed:
            raise ValueError("loss diverged")
    with pytest.raises(KeyboardInterrupt):
        with RunTracker({}, spec_dict=SPEC, run_dir=store / "b") as killed:
            raise KeyboardInterrupt
    client = _client(failed.uri)
    run = client.get_run(failed.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["kerasflow.error"] == "ValueError: loss diverged"
    assert client.get_run(killed.run_id).info.status == "KILLED"


def test_resume_continues_the_same_run(store):
    first = RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start()
    first.log_metrics({"loss": 1.0}, step=0)
    first.end("KILLED")
    with RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start(resume_run_id=first.run_id) as again:
        again.log_metrics({"loss": 0.5}, step=1)
    client = _client(first.uri)
    assert again.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert sorted((m.step, m.value) for m in client.get_metric_history(first.run_id, "loss")) == [(0, 1.0), (1, 0.5)]
    assert len(client.search_runs([client.get_experiment_by_name("digits-mlp").experiment_id])) == 1
    with pytest.raises(SpecError, match="cannot resume MLflow run 0123"):
        RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start(resume_run_id="0123")


def test_a_rejected_param_warns_and_the_rest_of_its_batch_is_logged(store):
    tracker = RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start()
    with pytest.warns(TrackingWarning, match=r"MLflow rejected 1 params: seed"):
        # MLflow refuses to change a logged param (here on a reused run).
        tracker.log_params({"seed": 7, "extra": {"a": 1, "b": 2}})
    tracker.end()
    params = _client(tracker.uri).get_run(tracker.run_id).data.params
    assert (params["seed"], params["extra.a"], params["extra.b"]) == ("42", "1", "2")


def test_child_runs_are_nested_under_the_parent(store):
    with RunTracker({"experiment": "search"}, spec_dict=SPEC, run_dir=store / "run", kind="tune") as parent:
        with parent.child("trial-00") as trial:
            trial.log_params({"units": 64}, prefix="hp")
    run = _client(parent.uri).get_run(trial.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert run.data.params == {"hp.units": "64"}  # a trial logs its hyperparameters, not the spec again
    assert run.info.experiment_id == parent.experiment_id


def test_disabled_tracking_is_a_no_op(workdir, digits):
    x, y = digits
    with RunTracker({"enabled": False}, spec_dict=SPEC, run_dir=workdir / "run") as tracker:
        _model().fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[tracker.keras_callback()])
        tracker.log_metrics({"a": 1.0})
        assert tracker.log_model(None) is None
    assert tracker.run_id is None
    assert not (workdir / "mlflow.db").exists()


# -- failure at start ---------------------------------------------------------------


def test_unreachable_server_at_start_is_a_spec_error_naming_the_uri(workdir):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SpecError) as info:
        RunTracker({"uri": uri}, spec_dict=SPEC, run_dir=workdir / "run").start()
    problem = info.value.problems[0]
    assert problem.path == "tracking.uri"
    assert f"cannot reach the MLflow tracking server at {uri}" in problem.message
    assert "tracking.required: false" in problem.hint
    assert not (workdir / "mlflow.db").exists()


def test_unreachable_server_with_required_false_warns_and_records_locally(store):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.warns(TrackingWarning, match="tracking.required is false"):
        tracker = RunTracker({"uri": uri, "required": False}, spec_dict=SPEC, run_dir=store / "run").start()
    tracker.end()
    assert tracker.uri == f"sqlite:///{store / 'mlflow.db'}"
    run = _client(tracker.uri).get_run(tracker.run_id)
    assert run.data.tags["kerasflow.offline_from"] == uri
    assert run.info.status == "FINISHED"


# -- registry -----------------------------------------------------------------------


def _register(store, digits, value, *, mode="max", fail=False):
    x, _ = digits
    tracker = RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start()
    uri = tracker.log_model(_model(), input_example=x[:4])
    if fail:
        tracker.end("FAILED")
    decision = tracker.register(uri, "digits", objective="val_accuracy", mode=mode, value=value)
    tracker.end()
    assert "MLFLOW_TRACKING_URI" not in os.environ  # logging a model must not leak the store into the env
    return decision


def test_alias_moves_only_when_the_objective_is_at_least_as_good(store, digits):
    first = _register(store, digits, 0.80)
    worse = _register(store, digits, 0.70)
    better = _register(store, digits, 0.90)
    failed = _register(store, digits, 0.99, fail=True)
    assert (first["moved"], worse["moved"], better["moved"], failed["moved"]) == (True, False, True, False)
    assert worse["reason"] == "val_accuracy 0.7 < 0.8 of v1 (mode max)"
    assert better["previous_version"] == "1" and better["previous_value"] == pytest.approx(0.8)
    assert "ended FAILED" in failed["reason"]
    client = _client(f"sqlite:///{store / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("digits", "champion").version) == better["version"] == "3"
    kept = client.get_model_version("digits", worse["version"])
    assert kept.tags["kerasflow.alias_decision"] == "kept"
    assert kept.tags["kerasflow.alias_reason"] == worse["reason"]
    with pytest.raises(ValueError, match="expected 'max' or 'min'"):
        RunTracker({}, spec_dict=SPEC, run_dir=store).register("models:/m", "digits", objective="loss", mode="best", value=1)


# -- models with string inputs and several heads --------------------------------------


def _two_headed_model():
    import keras

    keras.utils.set_random_seed(0)
    city = keras.Input((1,), dtype="string", name="city")
    size = keras.Input((2,), name="size")
    index = keras.layers.StringLookup(vocabulary=["paris", "rome"], name="city_lookup")(city)
    embedded = keras.layers.Flatten()(keras.layers.Embedding(3, 4)(index))
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([embedded, size]))
    outputs = {"kind": keras.layers.Dense(3, activation="softmax", name="kind")(hidden),
               "price": keras.layers.Dense(1, name="price")(hidden)}
    return keras.Model({"city": city, "size": size}, outputs)


def test_string_inputs_and_two_heads_are_logged_loaded_and_registered(store):
    import mlflow
    import numpy as np
    import tensorflow as tf

    model = _two_headed_model()
    x = {"city": np.array([["paris"], ["rome"], ["oslo"]], dtype=object),
         "size": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)}
    model.save(store / "model.keras")
    with RunTracker({}, spec_dict=SPEC, run_dir=store / "run") as tracker:
        uri = tracker.log_model(model, input_example=x, model_file=store / "model.keras")
        decision = tracker.register(uri, "houses", objective="val_loss", mode="min", value=0.5)
    assert uri and decision["moved"] and decision["version"] == "1"
    mlflow.set_tracking_uri(tracker.uri)
    try:
        loaded = mlflow.pyfunc.load_model("models:/houses@champion")
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    assert loaded.metadata.get_input_schema().input_names() == ["city", "size"]
    assert loaded.metadata.get_output_schema().input_names() == ["kind", "price"]
    served = loaded.predict(x)  # named outputs: a dict of arrays
    expected = model({"city": tf.constant(x["city"].astype(str)), "size": tf.constant(x["size"])})  # not numpy strings
    for head in ("kind", "price"):
        np.testing.assert_allclose(served[head], expected[head], rtol=1e-5, atol=1e-6)


def test_registering_a_run_without_a_model_fails_clearly_and_leaves_no_empty_model(store):
    with RunTracker({}, spec_dict=SPEC, run_dir=store / "run") as tracker:
        with pytest.raises(SpecError, match="no model to register as 'ghost'"):
            tracker.register(f"runs:/{tracker.run_id}/model", "ghost", objective="loss", mode="min", value=1.0)
    assert _client(tracker.uri).search_registered_models(filter_string="name = 'ghost'") == []


def test_a_dead_tracking_worker_warns_and_training_goes_on(store, digits):
    from kerasflow.track.worker import worker

    x, y = digits
    tracker = RunTracker({}, spec_dict=SPEC, run_dir=store / "run").start()
    callback = tracker.keras_callback()
    process = worker().proc
    process.kill()
    process.wait()
    with pytest.warns(TrackingWarning):
        history = _model().fit(x[:256], y[:256], epochs=2, verbose=0, callbacks=[callback])
        tracker.set_tags({"a": "b"})
        tracker.end()
    assert len(history.history["loss"]) == 2
