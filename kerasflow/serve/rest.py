"""TF Serving's REST API over `http.server`, one thread per connection.

Routes and status codes follow `tensorflow_serving/model_servers/http_rest_api_*`:

    POST /v1/models/NAME[/versions/N|/labels/L]:predict
    GET  /v1/models/NAME[/versions/N|/labels/L]            -> GetModelStatusResponse JSON
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   -> model_spec + signature_def JSON

Errors are `{"error": "..."}` with INVALID_ARGUMENT -> 400, NOT_FOUND -> 404,
UNAVAILABLE -> 503; a body over the size limit is refused with 413 before it
is parsed.
"""

from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from kerasflow.serve import rest_json
from kerasflow.serve.servables import ModelRepository, ServingError

log = logging.getLogger("kerasflow.serve")

_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.I)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.I)
_HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
                "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503}
_DRAIN_FACTOR = 16  # read and discard oversized bodies up to this multiple of the limit, so clients see the 413


class RestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, repository: ModelRepository, max_body_bytes: int):
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        super().__init__(address, _RestEndpoint)


class _RestEndpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per request on Linux)
    disable_nagle_algorithm = True
    server_version = "kerasflow-serving"
    server: RestServer

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def handle_expect_100(self):
        # curl sends `Expect: 100-continue` for large bodies: refuse before the upload
        if self._content_length() > self.server.max_body_bytes:
            self._send_too_large(drain=False)
            return False
        return super().handle_expect_100()

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if method == "POST" and self._content_length() > self.server.max_body_bytes:
                self._send_too_large(drain=True)
                return
            body = self._read_body() if method == "POST" else b""
            if not path.lower().startswith("/v1/"):
                self._send(404, {"error": f"Not found: {method} {path}"})
                return
            self._send(200, self._route(method, path, body))
        except ServingError as err:
            self._send(_HTTP_STATUS.get(err.code, 500), {"error": err.message})
        except Exception as err:  # a bug must not kill the connection thread silently
            log.exception("unexpected error serving %s %s", method, path)
            self._send(500, {"error": f"Internal: {err}"})

    def _route(self, method: str, path: str, body: bytes) -> dict:
        repo = self.server.repository
        match = _PREDICT.fullmatch(path) if method == "POST" else None
        if match:
            name, version, label = _model_info(match)
            verb = match.group(4).lower()
            if verb != "predict":  # kerasflow exports Predict signatures only
                raise ServingError("INVALID_ARGUMENT", f"Expected {verb} signature method_name to be "
                                   f"tensorflow/serving/{verb}. Was: tensorflow/serving/predict (use :predict)")
            doc = rest_json.parse_body(body)
            servable = repo.resolve(name, version, label)
            signature = servable.signature_def(doc.get("signature_name"))
            dtypes = {k: _numpy_dtype(v.dtype) for k, v in signature.inputs.items()}
            inputs, row_format = rest_json.request_tensors(doc, dtypes)
            outputs = servable.predict(doc.get("signature_name"), inputs)
            return rest_json.response_body(outputs, row_format)
        match = _STATUS.fullmatch(path) if method == "GET" else None
        if not match:
            raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
        name, version, label = _model_info(match)
        if not name:
            raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
        if match.group(4):
            # TF Serving prints the unpacked SignatureDefMap, not the Any that holds it
            response = repo.metadata_response(name, version, label)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            return {"model_spec": _as_dict(response.model_spec), "metadata": {"signature_def": _as_dict(signatures)}}
        return _as_dict(repo.status_response(name, version, label))

    def _content_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ServingError("INVALID_ARGUMENT", "chunked request bodies are not supported; send Content-Length")
        length = self._content_length()
        return self.rfile.read(length) if length > 0 else b""

    def _send_too_large(self, drain: bool) -> None:
        length, limit = self._content_length(), self.server.max_body_bytes
        if drain and length <= _DRAIN_FACTOR * limit:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        self.close_connection = True
        self._send(413, {"error": f"Request body of {length} bytes exceeds the limit of {limit} bytes"},
                   close=True)

    def _send(self, code: int, payload: dict, close: bool = False) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def _model_info(match: re.Match) -> tuple[str | None, int | None, str | None]:
    name, version, label = match.group(1), match.group(2), match.group(3)
    return (unquote(name) if name else None, int(version) if version else None,
            unquote(label) if label else None)


def _numpy_dtype(enum: int):
    import numpy as np
    import tensorflow as tf

    return np.dtype(tf.as_dtype(enum).as_numpy_dtype)  # object for DT_STRING


def _as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
