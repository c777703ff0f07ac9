"""The embedded server under concurrency: request batching (TF Serving's parameters),
a full batching queue, Classify/Regress through the official client, and clients
that are slow, vanish mid-request or sit idle."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from kerasflow.export import export_version
from kerasflow.serve import EmbeddedServer
from kerasflow.serve.batching import BatchingParameters, merge_inputs
from kerasflow.serve.tfserving import batching_flags
from kerasflow.spec.errors import SpecError
from serving_models import DIGITS_TARGETS, export_shop_with_example_signatures, train_digits, train_shop


PARAMS_FILE = """
# TF Serving's own format (tensorflow_model_server --batching_parameters_file)
max_batch_size { value: 16 }
batch_timeout_micros { value: 20000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 4
allowed_batch_sizes: 16
pad_variable_length_inputs: false
"""


# --- parameters file and batch assembly (no TensorFlow) ---------------------------------------

def test_parameters_file_in_tf_serving_text_format(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text(PARAMS_FILE)
    params = BatchingParameters.from_file(path)
    assert (params.max_batch_size, params.batch_timeout_micros, params.max_enqueued_batches,
            params.num_batch_threads, params.allowed_batch_sizes) == (16, 20000, 100, 1, [4, 16])
    assert batching_flags(True, path) == ["--enable_batching=true", f"--batching_parameters_file={path.resolve()}"]
    assert batching_flags(False, path) == []
    defaults = BatchingParameters.from_text("")  # TF Serving's defaults for unset fields
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)


@pytest.mark.parametrize("text, needle", [
    ("max_batch_size: 16", "not a text-format tensorflow.serving.BatchingParameters"),
    ("max_batch_sise { value: 16 }", "max_batch_sise"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2", "increasing"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "final entry must equal max_batch_size"),
    ("num_batch_threads { value: 0 }", "num_batch_threads"),
])
def test_bad_parameters_are_reported(text, needle):
    with pytest.raises(SpecError) as info:
        BatchingParameters.from_text(text, where="batching.txt")
    assert needle in str(info.value)


def test_batches_are_padded_like_tf_serving():
    params = BatchingParameters(max_batch_size=8, allowed_batch_sizes=[4, 8], pad_variable_length_inputs=True)
    merged = merge_inputs([{"ids": np.array([[1, 2, 3]])}, {"ids": np.array([[4], [5]])}], params)
    # variable lengths padded with each tensor's own first element; the batch padded to 4 with a copy
    # of the last request's first row (BatchingSession::MergeInputTensors)
    np.testing.assert_array_equal(merged["ids"], [[1, 2, 3], [4, 4, 4], [5, 4, 4], [4, 4, 4]])
    with pytest.raises(Exception, match="padding is turned off"):
        merge_inputs([{"ids": np.array([[1, 2]])}, {"ids": np.array([[4]])}], BatchingParameters())


# --- the fast conversions keep TF Serving's answers ---------------------------------------------

def test_predict_json_is_the_same_on_the_fast_path_and_keeps_nan():
    import json

    from kerasflow.serve.rest_json import parse_body, response_body

    outputs = {"probabilities": np.array([[0.2, 0.7, 0.1]], dtype=np.float32),
               "class_id": np.array([1]), "class_name": np.array([b"one"], dtype=object)}
    body = response_body(outputs, row_format=True)
    # float32 in its shortest form (0.2, not 0.20000000298023224), strings decoded, one object per row
    assert json.loads(body) == {"predictions": [{"class_id": 1, "class_name": "one", "probabilities": [0.2, 0.7, 0.1]}]}
    assert b"0.2000" not in body
    assert json.loads(response_body(outputs, row_format=False))["outputs"]["class_name"] == ["one"]
    # non-finite floats are written as TF Serving writes them (the stdlib's NaN token), never as null
    nan = response_body({"p": np.array([[np.nan, 0.5]], dtype=np.float32)}, row_format=True)
    assert nan == b'{"predictions": [[NaN, 0.5]]}'
    # requests: NaN tokens still parse (the stdlib takes over), and broken JSON gets the stdlib's message
    assert np.isnan(parse_body(b'{"instances": [[NaN, 1.5]]}')["instances"][0][0])
    with pytest.raises(Exception, match="JSON Parse error: Expecting value at offset: 15"):
        parse_body(b'{"instances": [')


def test_tensor_protos_convert_like_tensorflow():
    import tensorflow as tf

    from kerasflow.serve.tensors import fill_proto, to_array

    cases = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([[1, 2]], dtype=np.int64),
             np.array([True, False]), np.array([b"red", "gr\u00fcn".encode()], dtype=object),
             np.float32(2.5).reshape(()), np.zeros((0, 3), dtype=np.float32)]
    for array in cases:
        # what the official client sends (tf.make_tensor_proto) reads back exactly
        got = to_array(tf.make_tensor_proto(array))
        assert got.shape == array.shape and got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)
        # what the server sends reads back exactly with tf.make_ndarray
        proto = tf.make_tensor_proto(np.zeros(1)).__class__()
        fill_proto(proto, array)
        np.testing.assert_array_equal(tf.make_ndarray(proto), array)
        assert tf.make_ndarray(proto).shape == array.shape
    # typed value fields and a single broadcast value (other clients send these) go TF's way
    typed = tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32)
    typed.ClearField("tensor_content")
    typed.float_val.extend([1.0, 2.0])
    np.testing.assert_array_equal(to_array(typed), [1.0, 2.0])
    np.testing.assert_array_equal(to_array(tf.make_tensor_proto(7.0, shape=[2, 2])), np.full((2, 2), 7.0))


# --- servers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return train_digits(epochs=8)


@pytest.fixture(scope="module")
def digits_base(digits, tmp_path_factory):
    base = tmp_path_factory.mktemp("digits")
    export_version(digits.model, base, sample_inputs=digits.x_test, target_info=DIGITS_TARGETS,
                   model_name="digits", check_parity=False)
    return base


def _predict_url(srv):
    return f"{srv.rest_url}/v1/models/{srv.model_name}:predict"


def _grpc_predict(srv, rows, timeout=30):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = srv.model_name
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(rows))
    with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return tf.make_ndarray(response.outputs["probabilities"])


@pytest.mark.integration
@pytest.mark.slow
def test_batching_gives_every_client_its_own_rows(digits, digits_base):
    params = BatchingParameters.from_text(PARAMS_FILE)
    rows = digits.x_test["pixels"][:96]
    expected = digits.model.predict({"pixels": rows}, verbose=0)["label"]
    order = np.random.default_rng(0).permutation(len(rows))  # clients ask for rows in shuffled order

    with EmbeddedServer(digits_base, model_name="digits", rest_port=0, grpc_port=0, batching=params) as srv:
        def ask(i):
            row = int(order[i])
            if i % 3 == 2:  # REST and gRPC requests share the batches
                return row, _grpc_predict(srv, rows[row:row + 1])[0]
            with requests.post(_predict_url(srv), json={"instances": [rows[row].tolist()]}) as response:
                assert response.status_code == 200, response.text
                return row, np.array(response.json()["predictions"][0]["probabilities"])

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(ask, range(len(rows))))
        stats = srv.batch_scheduler.stats
    for row, probabilities in answers:
        np.testing.assert_allclose(probabilities, expected[row], atol=1e-5)
    assert stats["tasks"] >= len(rows)
    assert stats["batches"] < stats["tasks"]  # requests really were merged


@pytest.mark.integration
@pytest.mark.slow
def test_full_batching_queue_answers_503_and_unavailable(digits, digits_base):
    import grpc

    # one open batch held for 2 s; a request that doesn't fit needs a second batch: queue full
    params = BatchingParameters(max_batch_size=64, batch_timeout_micros=2_000_000, max_enqueued_batches=1,
                                num_batch_threads=1)
    rows = digits.x_test["pixels"]
    with EmbeddedServer(digits_base, model_name="digits", rest_port=0, grpc_port=0, batching=params) as srv:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(requests.post, _predict_url(srv), json={"instances": rows[:1].tolist()})
            time.sleep(0.5)
            full = requests.post(_predict_url(srv), json={"instances": rows[:64].tolist()}, timeout=10)
            assert full.status_code == 503
            assert "queue to which this task was submitted is full" in full.json()["error"]
            with pytest.raises(grpc.RpcError) as info:
                _grpc_predict(srv, rows[:64], timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert waiting.result(timeout=30).status_code == 200  # the queued request is still answered
        too_big = requests.post(_predict_url(srv), json={"instances": rows[:65].tolist()})
        assert too_big.status_code == 400 and "larger than maximum input batch size 64" in too_big.json()["error"]


# --- Classify / Regress -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("shop")
    export_shop_with_example_signatures(train_shop(), base)
    return base


# gRPC runs on a different server with batching (grpc.aio) than without (thread pool): both answer
@pytest.fixture(scope="module", params=[False, True], ids=["unbatched", "batched"])
def shop_server(shop_base, request):
    batching = BatchingParameters.from_text(PARAMS_FILE) if request.param else None
    with EmbeddedServer(shop_base, model_name="shop", rest_port=0, grpc_port=0, batching=batching) as srv:
        yield srv


def _examples(*rows):
    from tensorflow.core.example import example_pb2

    out = []
    for color, size in rows:
        example = example_pb2.Example()
        example.features.feature["color"].bytes_list.value.append(color.encode())
        example.features.feature["size"].float_list.value.append(size)
        out.append(example)
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_classify_and_regress_with_the_official_client(shop_server):
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc, regression_pb2

    with grpc.insecure_channel(f"127.0.0.1:{shop_server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "shop"
        request.model_spec.signature_name = "classify_good"
        request.input.example_list.examples.extend(_examples(("red", 0.5), ("blue", 0.5)))
        result = stub.Classify(request, timeout=30).result
        red, blue = ({c.label: c.score for c in row.classes} for row in result.classifications)
        assert red["yes"] > 0.5 > blue["yes"] and red["yes"] + red["no"] == pytest.approx(1.0)

        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "shop"
        request.model_spec.signature_name = "regress_price"
        context = request.input.example_list_with_context
        context.context.CopyFrom(_examples(("green", 0.0))[0])  # color from the context
        for example in _examples(("green", 0.2), ("green", 0.8)):
            del example.features.feature["color"]
            context.examples.append(example)
        response = stub.Regress(request, timeout=30)
        prices = [r.value for r in response.result.regressions]
        assert prices == pytest.approx([0.6, 2.4], abs=0.3)
        assert response.model_spec.version.value == 1

        request.model_spec.signature_name = "serving_default"  # a predict signature
        with pytest.raises(grpc.RpcError) as info:
            stub.Regress(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tensorflow/serving/regress" in info.value.details()


@pytest.mark.integration
@pytest.mark.slow
def test_classify_and_regress_over_rest(shop_server):
    url = f"{shop_server.rest_url}/v1/models/shop"
    body = {"signature_name": "classify_good", "examples": [{"color": "red", "size": 0.5},
                                                            {"color": {"b64": "Ymx1ZQ=="}, "size": 0.5}]}
    response = requests.post(f"{url}:classify", json=body)
    assert response.status_code == 200, response.text
    red, blue = (dict(pair for pair in row) for row in response.json()["result"])
    assert red["yes"] > 0.5 > blue["yes"]
    body = {"signature_name": "regress_price", "context": {"color": "green"},
            "examples": [{"size": 0.2}, {"size": 0.8}]}
    response = requests.post(f"{url}:regress", json=body)
    assert response.json()["result"] == pytest.approx([0.6, 2.4], abs=0.3)
    wrong = requests.post(f"{url}:classify", json={"examples": [{"size": 0.2}]})
    assert wrong.status_code == 400 and "tensorflow/serving/classify" in wrong.json()["error"]


# --- slow, broken and idle clients ------------------------------------------------------------

def _connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.rest_port), timeout=10)


def _post_head(length: int) -> bytes:
    return (f"POST /v1/models/digits:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


@pytest.mark.integration
@pytest.mark.slow
def test_slow_broken_and_idle_clients_do_not_block_others(digits, digits_base):
    row = {"instances": digits.x_test["pixels"][:1].tolist()}
    with EmbeddedServer(digits_base, model_name="digits", rest_port=0, grpc_port=None,
                        request_timeout=3.0, idle_timeout=2.0) as srv:
        threads_before = threading.active_count()
        # a client trickling its body one byte at a time, another its headers
        slow_client, slow_headers = _connect(srv), _connect(srv)
        slow_client.sendall(_post_head(1000))
        slow_headers.sendall(b"GET /v1/models/digits HTTP/1.1\r\n")
        stop = threading.Event()

        def trickle():
            while not stop.wait(0.2):
                for sock, data in ((slow_client, b" "), (slow_headers, b"X-Slow: 1\r\n")):
                    try:
                        sock.sendall(data)
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        # a client that vanishes mid-body, and 100 idle keep-alive connections
        broken = _connect(srv)
        broken.sendall(_post_head(500) + b'{"instances": [[1, 2')
        broken.close()
        idle = [_connect(srv) for _ in range(100)]
        with requests.Session() as session:
            for _ in range(20):
                response = session.post(_predict_url(srv), json=row, timeout=10)
                assert response.status_code == 200
        with ThreadPoolExecutor(8) as pool:  # and fresh connections, concurrently
            codes = list(pool.map(lambda _: requests.post(_predict_url(srv), json=row, timeout=10).status_code,
                                  range(40)))
        assert codes == [200] * 40
        # connections don't cost threads: 102 open sockets, no thread per connection
        assert threading.active_count() - threads_before < 20
        # the trickling client is cut off after request_timeout with a 408
        slow_client.settimeout(10)
        answer = slow_client.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 408") and "not received within 3s" in answer
        # and the header trickler is disconnected after idle_timeout, without an answer
        slow_headers.settimeout(10)
        try:
            assert slow_headers.recv(4096) == b""
        except ConnectionResetError:
            pass
        stop.set()
        for sock in idle + [slow_client, slow_headers]:
            sock.close()


def test_cli_reports_a_bad_batching_parameters_file(tmp_path):
    import subprocess
    import sys

    (tmp_path / "models" / "1").mkdir(parents=True)
    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size: 16\n")  # TF Serving wants `max_batch_size { value: 16 }`
    cli = [sys.executable, "-m", "kerasflow.cli", "serve", str(tmp_path / "models"), "--no-tfserving"]
    result = subprocess.run(cli + ["--enable-batching", "--batching-parameters-file", str(bad)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "BatchingParameters" in result.stderr + result.stdout and "batching.txt" in result.stderr + result.stdout
    result = subprocess.run(cli + ["--batching-parameters-file", str(bad)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0 and "--enable-batching" in result.stderr + result.stdout
