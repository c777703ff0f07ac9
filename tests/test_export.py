"""SavedModel export in TF Serving's layout: signature, warmup, metadata,
versions, parity, and atomicity under SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from kerasflow.export import export_version, list_versions, write_tfserving_config
from kerasflow.spec.errors import SpecError
from serving_models import DIGIT_NAMES, DIGITS_TARGETS, SHOP_TARGETS, train_digits, train_shop

pytestmark = pytest.mark.slow

_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def digits():
    return train_digits()


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory):
    base = tmp_path_factory.mktemp("digits")
    result = export_version(
        digits.model, base, sample_inputs=digits.x_test, target_info=DIGITS_TARGETS,
        metadata={"mlflow_run_id": "run-123", "metrics": {"accuracy": np.float32(0.97)}},
        warmup_requests=8, model_name="digits")
    return base, result


def _hidden_entries(base: Path) -> list[str]:
    return [p.name for p in base.iterdir() if not p.name.isdigit()]


def test_export_writes_one_complete_version_with_metadata(exported):
    base, result = exported
    assert result.version == 1 and result.path == base / "1"
    assert list_versions(base) == [1] and _hidden_entries(base) == []
    assert (result.path / "saved_model.pb").is_file()
    assert (result.path / "variables" / "variables.index").is_file()
    assert result.inputs == {"pixels": {"dtype": "float32", "shape": [-1, 64]}}
    assert result.outputs == {
        "class_id": {"dtype": "int64", "shape": [-1]},
        "class_name": {"dtype": "string", "shape": [-1]},
        "probabilities": {"dtype": "float32", "shape": [-1, 10]},
    }
    assert result.parity_max_abs_diff is not None and result.parity_max_abs_diff <= 1e-5
    meta = yaml.safe_load((result.path / "assets.extra" / "kerasflow.yaml").read_text())
    assert meta["mlflow_run_id"] == "run-123"
    assert meta["metrics"]["accuracy"] == pytest.approx(0.97)
    assert meta["kerasflow_export"]["targets"]["label"]["class_names"] == DIGIT_NAMES
    assert meta["kerasflow_export"]["parity"]["checked"] is True


@pytest.fixture(scope="module")
def fresh_processes(exported, digits, tmp_path_factory):
    """`saved_model_cli show --all` and a fresh-interpreter `tf.saved_model.load`,
    run concurrently (each pays a TensorFlow import); returns their stdout."""
    base, _ = exported
    work = tmp_path_factory.mktemp("fresh")
    np.save(work / "x.npy", digits.x_test["pixels"])
    script = textwrap.dedent(f"""
        import json, numpy as np, tensorflow as tf
        fn = tf.saved_model.load({str(base / '1')!r}).signatures["serving_default"]
        out = fn(pixels=tf.constant(np.load({str(work / 'x.npy')!r})))
        print(json.dumps({{"p": out["probabilities"].numpy().tolist(),
                           "name": [s.decode() for s in out["class_name"].numpy()]}}))
    """)
    commands = {"cli": ["saved_model_cli", "show", "--all", "--dir", str(base / "1")],
                "load": [sys.executable, "-c", script]}
    procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV)
             for k, c in commands.items()}
    outputs = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{commands[key][0]} failed:\n{err[-2000:]}"
        outputs[key] = out
    return outputs


@pytest.mark.integration
def test_saved_model_cli_lists_named_signature(fresh_processes):
    out = fresh_processes["cli"]
    block = out.split("signature_def['serving_default']:", 1)[1].split("signature_def[", 1)[0]
    assert "inputs['pixels'] tensor_info:" in block
    assert "dtype: DT_FLOAT" in block and "shape: (-1, 64)" in block
    for name, dtype in [("probabilities", "DT_FLOAT"), ("class_id", "DT_INT64"), ("class_name", "DT_STRING")]:
        assert f"outputs['{name}'] tensor_info:" in block
        assert dtype in block.split(f"outputs['{name}']", 1)[1].split("name:", 1)[0]
    assert "Method name is: tensorflow/serving/predict" in block


@pytest.mark.integration
def test_fresh_process_load_predicts_like_keras(fresh_processes, digits):
    fresh = json.loads(fresh_processes["load"].strip().splitlines()[-1])
    keras_probs = digits.model.predict(digits.x_test, verbose=0)["label"]
    np.testing.assert_allclose(np.array(fresh["p"]), keras_probs, atol=1e-5)
    accuracy = np.mean(np.array(fresh["name"]) == digits.y_test.astype(str))
    assert accuracy > 0.9


def test_warmup_file_holds_prediction_logs_from_real_rows(exported, digits):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    base, _ = exported
    path = base / "1" / "assets.extra" / "tf_serving_warmup_requests"
    records = [prediction_log_pb2.PredictionLog.FromString(r)
               for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    assert len(records) == 8
    for i, record in enumerate(records):
        request = record.predict_log.request
        assert request.model_spec.name == "digits"
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == ["pixels"]
        np.testing.assert_array_equal(tf.make_ndarray(request.inputs["pixels"]), digits.x_test["pixels"][i:i + 1])


def test_versions_increment_never_overwrite_and_keep_newest(digits, tmp_path):
    def export(**kw):
        return export_version(digits.model, tmp_path, sample_inputs=digits.x_test, target_info=DIGITS_TARGETS,
                              warmup_requests=2, check_parity=False, **kw)

    assert [export().version, export().version, export(version=5).version] == [1, 2, 5]
    before = (tmp_path / "5" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(SpecError, match=r"export\.version: version 5 already exists"):
        export(version=5)
    assert (tmp_path / "5" / "saved_model.pb").stat().st_mtime_ns == before
    result = export(keep=2)
    assert result.version == 6 and result.removed_versions == (1, 2)
    assert list_versions(tmp_path) == [5, 6] and _hidden_entries(tmp_path) == []


def test_bad_arguments_are_reported_together(digits, tmp_path):
    with pytest.raises(SpecError) as info:
        export_version(digits.model, tmp_path, sample_inputs={"pixel": digits.x_test["pixels"]},
                       warmup_requests=5000, keep=0, version=0)
    text = str(info.value)
    for path in ("export.version", "export.warmup_requests", "export.keep"):
        assert path in text
    assert list_versions(tmp_path) == []


def test_string_inputs_and_several_targets(tmp_path):
    shop = train_shop()
    result = export_version(shop.model, tmp_path, sample_inputs=shop.x_test, target_info=SHOP_TARGETS,
                            model_name="shop")
    assert result.inputs == {"color": {"dtype": "string", "shape": [-1, 1]},
                             "size": {"dtype": "float32", "shape": [-1, 1]}}
    assert set(result.outputs) == {"good/probabilities", "good/class_id", "good/class_name", "price"}
    assert result.outputs["good/probabilities"]["shape"] == [-1, 2]
    assert result.parity_max_abs_diff <= 1e-5


def _noisy_model():
    """A layer that is random even at inference: the SavedModel cannot agree with Keras."""
    import keras
    import tensorflow as tf

    class AlwaysNoisy(keras.layers.Layer):
        def call(self, x):
            return x + tf.random.normal(tf.shape(x))

    x = keras.Input(shape=(4,), name="x")
    y = keras.layers.Dense(1, name="y")(AlwaysNoisy()(x))
    return keras.Model({"x": x}, {"y": y})


def test_parity_failure_aborts_and_leaves_no_version(tmp_path):
    model = _noisy_model()
    rows = {"x": np.ones((16, 4), "float32")}
    with pytest.raises(SpecError, match=r"export\.atol\[y\]: the SavedModel \(fresh process\) disagrees"):
        export_version(model, tmp_path, sample_inputs=rows, target_info={"y": {"type": "numeric"}})
    assert list(tmp_path.iterdir()) == []


def test_tfserving_config_text_proto(tmp_path):
    out = tmp_path / "models.config"
    write_tfserving_config(tmp_path / "base", "digits", out)
    assert out.read_text() == (
        "model_config_list {\n  config {\n    name: \"digits\"\n"
        f"    base_path: \"{(tmp_path / 'base').resolve()}\"\n"
        "    model_platform: \"tensorflow\"\n  }\n}\n")
    write_tfserving_config(tmp_path / "base", "digits", out, server_base_path="/models/digits")
    assert 'base_path: "/models/digits"' in out.read_text()


_KILL_SCRIPT = """
import sys, numpy as np, keras
from kerasflow.export import export_version
keras.utils.set_random_seed(0)
x = keras.Input(shape=(8,), name="x")
model = keras.Model({"x": x}, {"y": keras.layers.Dense(3, activation="softmax", name="y")(x)})
rows = {"x": np.random.default_rng(0).normal(size=(32, 8)).astype("float32")}
print("ready", flush=True)
while True:
    export_version(model, sys.argv[1], sample_inputs=rows, target_info={"y": {"type": "category"}},
                   warmup_requests=4, keep=3, check_parity=False)
"""


def _incomplete_versions(base: Path) -> list[str]:
    bad = []
    for entry in list(base.iterdir()) if base.exists() else []:
        if not entry.name.isdigit():
            continue
        needed = ["saved_model.pb", "variables/variables.index", "assets.extra/kerasflow.yaml",
                  "assets.extra/tf_serving_warmup_requests"]
        if not entry.exists():
            continue  # pruned between listing and checking
        missing = [n for n in needed if not (entry / n).exists()]
        if missing and entry.exists():
            bad.append(f"{entry.name} lacks {missing}")
    return bad


@pytest.mark.integration
def test_sigkill_never_leaves_an_incomplete_version(digits, tmp_path):
    """Three exporters loop on their own base paths; each is SIGKILLed a different
    (seeded random) time after one of its exports starts writing, while a watcher
    checks every numeric version directory."""
    script = tmp_path / "export_forever.py"
    script.write_text(_KILL_SCRIPT)
    rng = random.Random(8)
    delays = [rng.uniform(0.0, 0.02), rng.uniform(0.05, 0.3), rng.uniform(0.3, 1.5)]
    bases = [tmp_path / f"base{i}" for i in range(len(delays))]
    # started together: the TensorFlow imports overlap instead of adding up
    procs = [subprocess.Popen([sys.executable, str(script), str(b)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=_ENV, start_new_session=True)
             for b in bases]
    problems: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            for b in bases:
                problems.extend(_incomplete_versions(b))
            time.sleep(0.002)

    def kill(proc, base, delay):
        deadline = time.monotonic() + 240
        # skip the first export (it traces the model), then strike while the next one writes
        while len(list_versions(base)) < 1 or not any(n.startswith(".kerasflow-tmp-") for n in _hidden_entries(base)):
            assert time.monotonic() < deadline and proc.poll() is None, "exporter never started writing"
            time.sleep(0.001)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
        proc.wait()

    watcher = threading.Thread(target=watch)
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * len(procs)
        watcher.start()
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(kill, procs, bases, delays))
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for b in bases:
        problems.extend(_incomplete_versions(b))
    assert problems == []
    interrupted = [b.name for b in bases if any(n.startswith(".kerasflow-tmp-") for n in _hidden_entries(b))]
    assert interrupted, "no kill landed mid-export: the test did not exercise what it claims"
    # the next export removes what the killed exporters left behind
    for b in bases:
        export_version(digits.model, b, sample_inputs=digits.x_test, warmup_requests=1, check_parity=False)
        assert _hidden_entries(b) == []
