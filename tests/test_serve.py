"""The embedded server against TF Serving's documented REST API (api_rest.md)
and the official `tensorflow-serving-api` gRPC stubs."""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from conftest import REPO
from kerasflow.export import export_version
from kerasflow.serve import EmbeddedServer
from kerasflow.serve.tfserving import model_server_command
from serving_models import DIGIT_NAMES, DIGITS_TARGETS, SHOP_TARGETS, train_digits, train_shop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORD_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
BODY_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def digits():
    return train_digits(epochs=8)


@pytest.fixture(scope="module")
def digits_base(digits, tmp_path_factory):
    """Version 1 of `digits`; the export tests cover parity, so it is skipped here."""
    base = tmp_path_factory.mktemp("digits")
    export_version(digits.model, base, sample_inputs=digits.x_test, target_info=DIGITS_TARGETS,
                   model_name="digits", check_parity=False)
    return base


@pytest.fixture(scope="module")
def server(digits_base):
    with EmbeddedServer(digits_base, model_name="digits", rest_port=0, grpc_port=0,
                        poll_seconds=0.2, max_body_bytes=BODY_LIMIT) as srv:
        yield srv


@pytest.fixture(scope="module")
def shop_server(tmp_path_factory):
    shop = train_shop()
    base = tmp_path_factory.mktemp("shop")
    export_version(shop.model, base, sample_inputs=shop.x_test, target_info=SHOP_TARGETS,
                   model_name="shop", check_parity=False)
    with EmbeddedServer(base, model_name="shop", rest_port=0, grpc_port=0, poll_seconds=0.2) as srv:
        yield srv


def _url(srv, suffix=""):
    return f"{srv.rest_url}/v1/models/{srv.model_name}{suffix}"


def _rows(digits, n):
    return digits.x_test["pixels"][:n]


def _keras_probs(digits, n):
    return digits.model.predict({"pixels": _rows(digits, n)}, verbose=0)["label"]


# --- REST: status and metadata -------------------------------------------------------------

def test_status_lists_the_available_version(server):
    response = requests.get(_url(server))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(_url(server, "/versions/1")).json() == response.json()


def test_metadata_describes_the_serving_signature(server):
    body = requests.get(_url(server, "/metadata")).json()
    assert body["model_spec"] == {"name": "digits", "version": "1", "signature_name": ""}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    pixels = signature["inputs"]["pixels"]
    assert pixels["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in pixels["tensor_shape"]["dim"]] == ["-1", "64"]
    outputs = signature["outputs"]
    assert {k: v["dtype"] for k, v in outputs.items()} == {
        "probabilities": "DT_FLOAT", "class_id": "DT_INT64", "class_name": "DT_STRING"}


# --- REST: predict -------------------------------------------------------------------------

def test_row_format_predicts_like_keras_and_accurately(server, digits):
    n = 120
    response = requests.post(_url(server, ":predict"), json={"instances": _rows(digits, n).tolist()})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == n and set(predictions[0]) == {"probabilities", "class_id", "class_name"}
    probs = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(probs, _keras_probs(digits, n), atol=1e-5)
    assert all(p["class_name"] == DIGIT_NAMES[p["class_id"]] for p in predictions)
    accuracy = np.mean([p["class_id"] for p in predictions] == digits.y_test[:n])
    assert accuracy > 0.9


def test_large_requests_are_answered_too(server, digits):
    """Bodies over 64 KiB are converted off the event loop; same answers."""
    rows = digits.x_test["pixels"]
    body = f'{{"instances": {rows.tolist()}}}'.encode()
    assert 64 << 10 < len(body) < BODY_LIMIT
    response = requests.post(_url(server, ":predict"), data=body)
    assert response.status_code == 200
    probs = np.array([p["probabilities"] for p in response.json()["predictions"]])
    np.testing.assert_allclose(probs, digits.model.predict({"pixels": rows}, verbose=0)["label"], atol=1e-5)


def test_row_format_list_of_objects_and_signature_name(server, digits):
    rows = _rows(digits, 3).tolist()
    plain = requests.post(_url(server, ":predict"), json={"instances": rows}).json()
    named = requests.post(_url(server, ":predict"), json={
        "signature_name": "serving_default", "instances": [{"pixels": r} for r in rows]}).json()
    assert named == plain


def test_columnar_format_returns_outputs_object(server, digits):
    rows = _rows(digits, 4)
    body = requests.post(_url(server, ":predict"), json={"inputs": {"pixels": rows.tolist()}}).json()
    assert set(body) == {"outputs"}
    outputs = body["outputs"]
    assert set(outputs) == {"probabilities", "class_id", "class_name"}
    np.testing.assert_allclose(outputs["probabilities"], _keras_probs(digits, 4), atol=1e-5)
    assert outputs["class_name"] == [DIGIT_NAMES[i] for i in outputs["class_id"]]
    # a single named input may be given without its name
    assert requests.post(_url(server, ":predict"), json={"inputs": rows.tolist()}).json() == body


@pytest.mark.parametrize("method, suffix, body, status, needle", [
    ("post", ":predict", b'{"instances": [[1, 2,', 400, "JSON Parse error"),
    ("post", ":predict", {"instances": [{"pixel": [0] * 64}]}, 400, "does not have named input: pixel"),
    ("post", ":predict", {"inputs": {"pixel": [[0] * 64]}}, 400, "Missing named input: pixels"),
    ("post", ":predict", {"instances": [[0] * 64], "inputs": [[0] * 64]}, 400, "only one of"),
    ("post", ":predict", {"instances": [["a"] * 64]}, 400, "is not of expected type: float32"),
    ("post", ":predict", {"instances": [[0] * 63]}, 400, "expects shape [-1,64]"),
    ("post", ":predict", {"signature_name": "nope", "instances": [[0] * 64]}, 400, '"nope" not found'),
    ("post", ":predict", {"rows": []}, 400, "Missing 'inputs' or 'instances' key"),
    ("post", "/versions/9:predict", {"instances": [[0] * 64]}, 404,
     "Servable not found for request: Specific(digits, 9)"),
    ("get", "/versions/9", None, 404, "Could not find version 9 of model digits"),
    ("get", "/labels/stable", None, 400, "Unrecognized servable version label: stable"),
])
def test_errors_follow_tf_serving(server, method, suffix, body, status, needle):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = getattr(requests, method)(_url(server, suffix), **kwargs)
    assert response.status_code == status
    assert list(response.json()) == ["error"] and needle in response.json()["error"]


def test_unknown_model_is_404(server):
    for response in (requests.post(f"{server.rest_url}/v1/models/cats:predict", json={"instances": [[0] * 64]}),
                     requests.get(f"{server.rest_url}/v1/models/cats"),
                     requests.get(f"{server.rest_url}/v1/models/cats/metadata")):
        assert response.status_code == 404 and "error" in response.json()


def test_oversized_body_is_413_and_the_server_keeps_serving(server, digits):
    payload = {"instances": np.zeros((BODY_LIMIT // 100, 64)).tolist()}  # ~2x the limit as JSON
    response = requests.post(_url(server, ":predict"), json=payload)
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]
    ok = requests.post(_url(server, ":predict"), json={"instances": _rows(digits, 1).tolist()})
    assert ok.status_code == 200


def test_chunked_and_expect_100_bodies_respect_the_limit(server, digits):
    row = f'{{"instances": {_rows(digits, 1).tolist()}}}'.encode()
    chunked = requests.post(_url(server, ":predict"), data=iter([row]))  # a generator: chunked
    assert chunked.status_code == 200
    padding = [b" " * 65536] * (BODY_LIMIT // 65536 + 1)
    too_big = requests.post(_url(server, ":predict"), data=iter(padding + [row]))
    assert too_big.status_code == 413 and "exceeds the limit" in too_big.json()["error"]
    # `Expect: 100-continue` with a body over the limit: refused before the upload
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(f"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {BODY_LIMIT + 1}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_concurrent_clients_get_their_own_answers(server, digits):
    rows = _rows(digits, 32)
    expected = np.argmax(_keras_probs(digits, 32), axis=1)

    def ask(i):
        with requests.Session() as session:
            return [session.post(_url(server, ":predict"), json={"instances": [rows[i].tolist()]})
                    .json()["predictions"][0]["class_id"] for _ in range(5)]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(32)))
    assert answers == [[int(e)] * 5 for e in expected]


def test_string_and_b64_inputs(shop_server):
    red = base64.b64encode(b"red").decode()
    rows = [{"color": ["red"], "size": [0.5]}, {"color": [{"b64": red}], "size": [0.5]},
            {"color": ["blue"], "size": [0.2]}]
    response = requests.post(_url(shop_server, ":predict"), json={"instances": rows})
    assert response.status_code == 200
    first, second, third = response.json()["predictions"]
    assert first == second  # b64 and plain text are the same bytes
    assert first["good/class_name"] == "yes" and third["good/class_name"] == "no"
    assert first["price"][0] == pytest.approx(1.5, abs=0.3)
    bad = requests.post(_url(shop_server, ":predict"),
                        json={"instances": [{"color": [{"b64": "%%%"}], "size": [0.5]}]})
    assert bad.status_code == 400 and "base64" in bad.json()["error"]


# --- versions ------------------------------------------------------------------------------

def _export_words(digits, base, **kw):
    """Same weights, different class names: tells versions apart in responses."""
    targets = {"label": {"type": "category", "class_names": WORD_NAMES}}
    return export_version(digits.model, base, sample_inputs=digits.x_test, target_info=targets,
                          model_name="digits", check_parity=False, **kw)


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _states_at(url: str, model: str) -> dict:
    body = requests.get(f"{url}/v1/models/{model}").json()
    return {s["version"]: s["state"] for s in body.get("model_version_status", [])}


def _states(srv) -> dict:
    return _states_at(srv.rest_url, srv.model_name)


def test_new_version_is_picked_up_while_serving(digits, digits_base, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kerasflow.serve")
    base = tmp_path / "digits"
    shutil.copytree(digits_base / "1", base / "1")
    with EmbeddedServer(base, model_name="digits", rest_port=0, grpc_port=None, poll_seconds=0.2) as srv:
        row = {"instances": _rows(digits, 1).tolist()}
        assert requests.post(_url(srv, ":predict"), json=row).json()["predictions"][0]["class_name"] in DIGIT_NAMES
        _export_words(digits, base)
        _wait_for(lambda: _states(srv).get("2") == "AVAILABLE")
        assert requests.post(_url(srv, ":predict"), json=row).json()["predictions"][0]["class_name"] in WORD_NAMES
        # TF Serving's default policy serves the latest version only: version 1 ends
        assert _states(srv) == {"2": "AVAILABLE", "1": "END"}
        assert requests.post(_url(srv, "/versions/1:predict"), json=row).status_code == 404
    logged = [r.getMessage() for r in caplog.records if r.name == "kerasflow.serve"]
    for line in ("loading digits version 1", "digits version 1 is AVAILABLE", "loading digits version 2",
                 "digits version 2 is AVAILABLE", "unloaded digits version 1"):
        assert any(m.startswith(line) for m in logged), (line, logged)


def test_version_pinning_and_labels(digits, digits_base, tmp_path):
    base = tmp_path / "digits"
    shutil.copytree(digits_base / "1", base / "1")
    _export_words(digits, base)
    with EmbeddedServer(base, model_name="digits", rest_port=0, grpc_port=None, num_versions=None,
                        version_labels={"stable": 1, "canary": 2}) as srv:
        row = {"instances": _rows(digits, 1).tolist()}

        def name(suffix):
            response = requests.post(_url(srv, suffix + ":predict"), json=row)
            assert response.status_code == 200, response.text
            return response.json()["predictions"][0]["class_name"]

        assert name("") in WORD_NAMES  # latest
        assert name("/versions/1") in DIGIT_NAMES and name("/versions/2") in WORD_NAMES
        assert name("/labels/stable") in DIGIT_NAMES and name("/labels/canary") in WORD_NAMES
        assert requests.get(_url(srv, "/labels/stable/metadata")).json()["model_spec"]["version"] == "1"


# --- gRPC with the official stubs ----------------------------------------------------------

@pytest.fixture(scope="module")
def stubs(server):
    import grpc
    from tensorflow_serving.apis import (
        model_service_pb2_grpc,
        prediction_service_pb2_grpc,
    )

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def test_grpc_predict(stubs, digits):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.signature_name = "serving_default"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(_rows(digits, 5)))
    response = stubs[0].Predict(request, timeout=30)
    assert response.model_spec.version.value == 1
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), _keras_probs(digits, 5), atol=1e-5)
    names = [s.decode() for s in tf.make_ndarray(response.outputs["class_name"])]
    assert names == [DIGIT_NAMES[i] for i in tf.make_ndarray(response.outputs["class_id"])]


def test_grpc_errors_carry_status_codes(stubs, digits):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cats"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(_rows(digits, 1)))
    with pytest.raises(grpc.RpcError) as info:
        stubs[0].Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "digits"
    request.inputs["pixel"].CopyFrom(request.inputs.pop("pixels"))
    with pytest.raises(grpc.RpcError) as info:
        stubs[0].Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input tensor alias not found in signature: pixel" in info.value.details()


def test_grpc_metadata_and_status(stubs):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "digits"
    response = stubs[0].GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert list(serving.inputs) == ["pixels"] and set(serving.outputs) == {"probabilities", "class_id", "class_name"}
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "digits"
    status = stubs[1].GetModelStatus(status_request, timeout=30)
    [version] = status.model_version_status
    assert version.version == 1 and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert version.status.error_code == 0


def test_the_served_name_falls_back_past_unreadable_metadata_to_the_directory_name(tmp_path):
    from kerasflow.export.names import exported_name

    base = tmp_path / "bar"
    for version, text in (("2", "kerasflow_export: {model_name: foo}\n"), ("10", "kerasflow_export: [1]\n"),
                          ("11", "{unclosed")):
        (base / version / "assets.extra").mkdir(parents=True)
        (base / version / "assets.extra" / "kerasflow.yaml").write_text(text)
    assert exported_name(base) == "foo"  # 11 and 10 record no name; 2 does (numeric order, not text order)
    assert exported_name(tmp_path / "nothing-yet") == "nothing-yet"


def _assert_grpc_status(address: str, name: str) -> None:
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    assert [v.state for v in status.model_version_status] == [get_model_status_pb2.ModelVersionStatus.AVAILABLE]


def test_grpc_string_inputs(shop_server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "shop"
    request.inputs["color"].CopyFrom(tf.make_tensor_proto([[b"red"], [b"green"]]))
    request.inputs["size"].CopyFrom(tf.make_tensor_proto([[0.5], [0.5]], dtype=tf.float32))
    request.output_filter.append("good/class_name")
    with grpc.insecure_channel(f"127.0.0.1:{shop_server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert list(response.outputs) == ["good/class_name"]
    assert list(tf.make_ndarray(response.outputs["good/class_name"])) == [b"yes", b"no"]


def test_tensorflow_model_server_gets_the_batching_flags(tmp_path, monkeypatch):
    """With the binary on PATH, `serve` launches it with TF Serving's own batching flags and the file as is."""
    from kerasflow.serve import serve

    bin_dir, argv_file = tmp_path / "bin", tmp_path / "argv.txt"
    bin_dir.mkdir()
    fake = bin_dir / "tensorflow_model_server"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 32 }\n")
    assert serve(tmp_path, model_name="m", host="0.0.0.0", enable_batching=True,
                 batching_parameters_file=params) == 3
    argv = argv_file.read_text().split()
    assert "--enable_batching=true" in argv and f"--batching_parameters_file={params.resolve()}" in argv


def test_tensorflow_model_server_command_line(tmp_path):
    cmd = model_server_command(tmp_path, "digits", rest_port=8601, grpc_port=8600, poll_seconds=0.5)
    assert cmd == ["tensorflow_model_server", "--port=8600", "--rest_api_port=8601", "--model_name=digits",
                   f"--model_base_path={tmp_path.resolve()}", "--file_system_poll_wait_seconds=1"]


@pytest.mark.parametrize("how", ["api", "cli with batching", "cli, name from the export"])
def test_serve_blocks_until_sigterm(digits_base, digits, tmp_path, how):
    """`serve()` as `kerasflow serve` runs it: embedded server (no TF Serving binary here),
    ports picked by the OS and printed, clean exit on SIGTERM; the CLI with TF Serving's batching flags;
    the CLI without --model-name serves the name the export recorded, not the directory's."""
    name = "digits"
    if how == "cli, name from the export":
        name, base = "foo", tmp_path / "models" / "bar"
        export_version(digits.model, base, sample_inputs=digits.x_test, target_info=DIGITS_TARGETS,
                       model_name=name, check_parity=False)
        command = [sys.executable, "-m", "kerasflow.cli", "serve", str(base), "--rest-port", "0",
                   "--grpc-port", "0", "--no-tfserving"]
    elif how == "api":
        script = ("import sys; from kerasflow.serve import serve; sys.exit(serve(sys.argv[1], model_name='digits', "
                  "rest_port=0, grpc_port=0, use_tfserving=False))")
        command = [sys.executable, "-c", script, str(digits_base)]
    else:
        params = tmp_path / "batching.txt"
        params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000 }\n")
        command = [sys.executable, "-m", "kerasflow.cli", "serve", str(digits_base), "--model-name", "digits",
                   "--rest-port", "0", "--grpc-port", "0", "--no-tfserving", "--enable-batching",
                   "--batching-parameters-file", str(params)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # keeps the pipe drained
    reader.start()
    try:
        def address():
            found = [m.group(1) for m in map(re.compile(r"REST (http://127\.0\.0\.1:\d+)").search, lines) if m]
            return found[0] if found else None

        _wait_for(lambda: address() is not None or proc.poll() is not None, timeout=120)
        url = address()
        assert url, "serve() never printed its REST address:\n" + "".join(lines[-20:])
        _wait_for(lambda: _states_at(url, name).get("1") == "AVAILABLE", timeout=120)
        response = requests.post(f"{url}/v1/models/{name}:predict", json={"instances": _rows(digits, 1).tolist()})
        assert response.json()["predictions"][0]["class_name"] in DIGIT_NAMES
        if name != "digits":
            assert requests.get(f"{url}/v1/models/bar").status_code == 404
            metadata = requests.get(f"{url}/v1/models/{name}/metadata").json()
            assert metadata["model_spec"]["name"] == name
            _assert_grpc_status(re.search(r"gRPC (\S+)", "".join(lines)).group(1), name)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
