"""Real kerasflow exports beyond `serving_default`: TF Serving's Classify/Regress
signatures over tf.Examples, and images as encoded bytes (`serving_bytes`),
called through the official `tensorflow-serving-api` gRPC client and over REST
against the embedded server, compared with in-process Keras predictions."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests

from conftest import REPO
from kerasflow.serve import EmbeddedServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUIET = ["tracking.enabled=false"]
DIABETES = f"""
kerasflow: 1
name: diabetes-mlp
extends: [{REPO}/specs/data/diabetes.yaml, {REPO}/specs/training/adam.yaml]
model:
  sequential:
    - {{layer: dense, name: hidden, units: 16, activation: relu}}
    - {{layer: dense, name: output, units: 1}}
training:
  loss: mse
  metrics: [mae]
  stages: [{{name: main, epochs: 3, optimizer: {{type: adam, learning_rate: 0.01}}}}]
"""


class Exported:
    def __init__(self, tmp, spec, overrides, name):
        from kerasflow import api

        self.train = api.train(spec, overrides + QUIET, run_dir=tmp / "run", quiet=True)
        self.result = api.export(self.train.run_dir, base_path=tmp / "models", data=self.train.data)
        self.x, self.y = self.train.data.arrays("test")
        self.name = name

    def keras(self, features, target):
        pred = self.train.model.predict(features, verbose=0)
        return np.asarray(pred[target] if isinstance(pred, dict) else pred)


def _serve(exported):
    return EmbeddedServer(exported.result.path.parent, model_name=exported.name, rest_port=0, grpc_port=0,
                          poll_seconds=0.5)


def _stub(server):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _example(features: dict):
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for name, value in features.items():
        feature = example.features.feature[name]
        if isinstance(value, bytes):
            feature.bytes_list.value.append(value)
        else:
            feature.float_list.value.extend(np.asarray(value, dtype=float).ravel().tolist())
    return example


def _saved_model_cli(path) -> str:
    cli = shutil.which("saved_model_cli")
    cmd = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    proc = subprocess.run([*cmd, "show", "--dir", str(path), "--all"], check=False, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


# --- Classify / Regress on real kerasflow exports ------------------------------------------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    return Exported(tmp, REPO / "pipelines" / "quickstart.yaml", ["training.stages.0.epochs=1"], "digits")


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diabetes")
    (tmp / "diabetes.yaml").write_text(DIABETES)
    return Exported(tmp, tmp / "diabetes.yaml", [], "diabetes")


def test_saved_model_cli_shows_classify_and_regress_methods(digits, diabetes):
    assert digits.result.signatures == ("serving_default", "classify_label")
    assert diabetes.result.signatures == ("serving_default", "regress_progression")
    shown = _saved_model_cli(digits.result.path)
    classify = shown[shown.index("signature_def['classify_label']"):]
    assert "inputs['inputs'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in classify
    assert "outputs['classes']" in classify and "outputs['scores']" in classify
    assert "Method name is: tensorflow/serving/classify" in classify
    shown = _saved_model_cli(diabetes.result.path)
    regress = shown[shown.index("signature_def['regress_progression']"):]
    assert "outputs['outputs']" in regress and "Method name is: tensorflow/serving/regress" in regress
    default = shown[shown.index("signature_def['serving_default']"):]
    assert "Method name is: tensorflow/serving/predict" in default


def test_classify_and_regress_answer_like_keras_over_grpc_and_rest(digits, diabetes):
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    rows = 12
    pixels = digits.x["pixels"][:rows]
    want = digits.keras({"pixels": pixels}, "label")
    with _serve(digits) as server:
        channel, stub = _stub(server)
        with channel:
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = "digits", "classify_label"
            request.input.example_list.examples.extend(_example({"pixels": p}) for p in pixels)
            result = stub.Classify(request, timeout=60).result
        got = [[c.label for c in row.classes] for row in result.classifications]
        assert got == [[str(i) for i in range(10)]] * rows
        scores = np.array([[c.score for c in row.classes] for row in result.classifications])
        np.testing.assert_allclose(scores, want, atol=1e-5)
        body = {"signature_name": "classify_label", "examples": [{"pixels": p.tolist()} for p in pixels.astype(float)]}
        response = requests.post(f"{server.rest_url}/v1/models/digits:classify", json=body, timeout=60)
        assert response.status_code == 200, response.text
        rest = np.array([[score for _, score in row] for row in response.json()["result"]])
        np.testing.assert_allclose(rest, want, atol=1e-5)

    baseline = diabetes.x["baseline"][:rows]
    want = diabetes.keras({"baseline": baseline}, "progression")[:, 0]
    with _serve(diabetes) as server:
        channel, stub = _stub(server)
        with channel:
            request = regression_pb2.RegressionRequest()
            request.model_spec.name, request.model_spec.signature_name = "diabetes", "regress_progression"
            request.input.example_list.examples.extend(_example({"baseline": b}) for b in baseline)
            got = [r.value for r in stub.Regress(request, timeout=60).result.regressions]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
        body = {"signature_name": "regress_progression",
                "examples": [{"baseline": b.tolist()} for b in baseline.astype(float)]}
        response = requests.post(f"{server.rest_url}/v1/models/diabetes:regress", json=body, timeout=60)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["result"], want, rtol=1e-5, atol=1e-3)


# --- images as bytes -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits_cnn")
    return Exported(tmp, REPO / "pipelines" / "digits_cnn.yaml", ["training.stages.0.epochs=3"], "digits_cnn")


def _encoded(pixels: np.ndarray, fmt: str) -> list[bytes]:
    import tensorflow as tf

    # the digits' raw 0..16 values as 8-bit images (rescale is in the model); JPEG is lossy,
    # so the reference is Keras on the *decoded* image
    encode = tf.io.encode_png if fmt == "png" else (lambda x: tf.io.encode_jpeg(x, quality=95))
    return [encode(np.clip(np.rint(p), 0, 255).astype(np.uint8)).numpy() for p in pixels]


def _decoded(blobs: list[bytes]) -> np.ndarray:
    import tensorflow as tf

    return np.stack([tf.cast(tf.io.decode_image(b, channels=1), tf.float32).numpy() for b in blobs])


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_encoded_images_get_the_in_process_class_over_rest_and_grpc(images, fmt):
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2

    assert images.result.signatures == ("serving_default", "serving_bytes", "classify_label")
    rows = 16
    blobs = _encoded(images.x["image"][:rows], fmt)
    want = images.keras({"image": _decoded(blobs)}, "label")
    want_class = want.argmax(axis=1)
    with _serve(images) as server:
        body = {"signature_name": "serving_bytes",
                "instances": [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]}
        response = requests.post(f"{server.rest_url}/v1/models/digits_cnn:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [int(p["class_id"]) for p in predictions] == want_class.tolist()
        np.testing.assert_allclose([p["probabilities"] for p in predictions], want, atol=1e-5)

        channel, stub = _stub(server)
        with channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = "digits_cnn", "serving_bytes"
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(blobs, dtype=tf.string))
            outputs = stub.Predict(request, timeout=60).outputs
            assert tf.make_ndarray(outputs["class_id"]).tolist() == want_class.tolist()
            request = classification_pb2.ClassificationRequest()
            request.model_spec.name, request.model_spec.signature_name = "digits_cnn", "classify_label"
            request.input.example_list.examples.extend(_example({"image": b}) for b in blobs)
            result = stub.Classify(request, timeout=60).result
            scores = np.array([[c.score for c in row.classes] for row in result.classifications])
            assert scores.argmax(axis=1).tolist() == want_class.tolist()
    # the model is not a constant: the classes vary and mostly match the labels
    assert len(set(want_class.tolist())) > 3


def test_image_warmup_records_carry_real_encoded_images(images):
    import tensorflow as tf

    from kerasflow.export.warmup import WARMUP_FILE, read_warmup_requests

    logs = read_warmup_requests(images.result.path / "assets.extra" / WARMUP_FILE)
    by_signature = {}
    for log in logs:
        request = log.predict_log.request
        by_signature.setdefault(request.model_spec.signature_name, []).append(request)
    assert set(by_signature) == {"serving_default", "serving_bytes"}
    for request in by_signature["serving_bytes"]:
        blob = tf.make_ndarray(request.inputs["image_bytes"])[0]
        assert blob.startswith(b"\x89PNG") and tf.io.decode_png(blob).shape == (8, 8, 1)


def test_predict_reads_a_folder_and_a_csv_of_image_files(images, tmp_path):
    import pandas as pd

    blobs = _encoded(images.x["image"][:6], "png")
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    paths = [folder / ("nested" if i % 2 else "") / f"digit{i}.png" for i in range(len(blobs))]
    for path, blob in zip(paths, blobs):
        path.write_bytes(blob)
    want = [str(c) for c in images.keras({"image": _decoded(blobs)}, "label").argmax(axis=1)]
    by_file = dict(zip(map(str, paths), want))

    from click.testing import CliRunner

    from kerasflow.cli import cli

    out = tmp_path / "from_folder.csv"
    res = CliRunner().invoke(cli, ["predict", str(images.train.run_dir), "--input", str(folder), "--output", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert len(table) == 6 and {f: str(c) for f, c in zip(table["file"], table["label"])} == by_file

    listed = tmp_path / "listed.csv"
    pd.DataFrame({"id": range(6), "images": [str(p) for p in paths]}).to_csv(listed, index=False)
    out = tmp_path / "from_csv.csv"
    res = CliRunner().invoke(cli, ["predict", str(images.train.run_dir), "--input", str(listed), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert [str(c) for c in pd.read_csv(out)["label"]] == want

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["predict", str(images.train.run_dir), "--input", str(empty), "--output", str(out)])
    assert res.exit_code != 0 and "no image files" in res.output


def test_predict_refuses_a_folder_for_a_model_without_image_input(digits, tmp_path):
    from click.testing import CliRunner

    from kerasflow.cli import cli

    res = CliRunner().invoke(cli, ["predict", str(digits.train.run_dir), "--input", str(tmp_path),
                                   "--output", str(tmp_path / "o.csv")])
    assert res.exit_code != 0 and "folders of images work only for a model whose one input is an image" in res.output


def test_serve_takes_an_uploaded_image_file(images, digits):
    blobs = _encoded(images.x["image"][:3], "png")
    want = images.keras({"image": _decoded(blobs)}, "label").argmax(axis=1).tolist()
    with _serve(images) as server:
        url = f"{server.rest_url}/v1/models/digits_cnn:upload"
        raw = [requests.post(url, data=b, headers={"Content-Type": "image/png"}, timeout=60) for b in blobs]
        assert [r.status_code for r in raw] == [200] * 3, raw[0].text
        assert [r.json()["predictions"][0]["class_id"] for r in raw] == want
        form = requests.post(url, files={"file": ("digit.png", blobs[0], "image/png")}, timeout=60)
        assert form.status_code == 200, form.text
        assert form.json()["predictions"][0]["class_id"] == want[0]
        wrong = requests.post(url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=60)
        assert wrong.status_code == 400 and "unsupported Content-Type" in wrong.json()["error"]
    with _serve(digits) as server:  # no image features: no serving_bytes signature
        response = requests.post(f"{server.rest_url}/v1/models/digits:upload", data=blobs[0],
                                 headers={"Content-Type": "image/png"}, timeout=60)
        assert response.status_code == 400 and "serving_bytes" in response.json()["error"]
