"""TF Serving's REST API on aiohttp: one event loop thread for every connection.

Routes and status codes follow `tensorflow_serving/model_servers/http_rest_api_*`:

    POST /v1/models/NAME[/versions/N|/labels/L]:(predict|classify|regress)
    POST /v1/models/NAME[/versions/N|/labels/L]:upload   (kerasflow's own: an image file, see serve/upload.py)
    GET  /v1/models/NAME[/versions/N|/labels/L]            -> GetModelStatusResponse JSON
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   -> model_spec + signature_def JSON

Errors are `{"error": "..."}` with INVALID_ARGUMENT -> 400, NOT_FOUND -> 404,
UNAVAILABLE -> 503 (also: batching queue full); a body over the size limit is
refused with 413 before it is read.

Why aiohttp (measured, see docs/serving.md): with a thread per connection the
stdlib server pays a thread start per new connection and its listen backlog
of 5 drops SYNs under 16 concurrent clients; aiohttp parses HTTP in C, keeps
idle and slow connections as cheap coroutines (no thread each), and was ~3x
faster on new connections. Model calls leave the loop: they run on the
batching threads or a bounded executor, so a slow model or a slow client
never stalls other connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from concurrent.futures import Executor
from urllib.parse import unquote

from aiohttp import web
from google.protobuf import json_format

from kerasflow.serve import inference, rest_json, upload
from kerasflow.serve.loop import LoopThread
from kerasflow.serve.servables import ModelRepository, ServingError

log = logging.getLogger("kerasflow.serve")

_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict|upload)", re.IGNORECASE)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE)
_HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
                "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503}
_JSON = {"Content-Type": "application/json"}
_INLINE_BODY_BYTES = 64 << 10  # bigger requests are converted off the event loop
LISTEN_BACKLOG = 1024  # the stdlib's 5 drops SYNs under a burst of new connections


class RestServer:
    """The REST API on `host:port` (0: any free port) in its own event-loop thread.

    Args:
        repository: the model's versions.
        max_body_bytes: largest request body (413 above it).
        executor: runs model calls and large-body parsing when batching is off.
        body_timeout: seconds a client may take to send its body (408 after it).
        keepalive_timeout: seconds a connection may sit without a complete request: idle
            keep-alive connections and clients trickling their headers are closed after it.
    """

    def __init__(self, host: str, port: int, repository: ModelRepository, max_body_bytes: int, *,
                 executor: Executor, body_timeout: float = 30.0, keepalive_timeout: float = 30.0):
        self.host, self.port = host, port
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self._executor = executor
        self._loop = LoopThread("kerasflow-rest")
        self._runner = None

    def start(self) -> int:
        """Bind and serve; returns the bound port (raises OSError when the port is taken)."""
        self.port = self._loop.start(self._bind)
        return self.port

    async def _bind(self) -> int:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handle, expect_handler=self._expect)
        # lingering_time: an oversized body is read (and dropped) for a while after the 413 is
        # sent, so clients that are still uploading see the answer instead of a reset
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     keepalive_timeout=self.keepalive_timeout, lingering_time=5.0)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port, backlog=LISTEN_BACKLOG,
                              reuse_address=True).start()
        except BaseException:
            await self._runner.cleanup()
            raise
        return self._runner.addresses[0][1]

    def stop(self) -> None:
        self._loop.stop(lambda: self._runner.cleanup())

    # --- requests ---------------------------------------------------------------------------

    async def _expect(self, request):
        # curl sends `Expect: 100-continue` for large bodies: refuse before the upload
        if (request.content_length or 0) > self.max_body_bytes:
            return self._too_large(request.content_length)
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def _handle(self, request):
        method, path = request.method, request.raw_path.split("?", 1)[0]
        try:
            body = b""
            if method == "POST":
                if (request.content_length or 0) > self.max_body_bytes:
                    return self._too_large(request.content_length)
                try:
                    # a body that already arrived (most) needs no timer: wait_for costs a task per request
                    body = await (request.read() if request.content.is_eof() else
                                  asyncio.wait_for(request.read(), self.body_timeout))
                except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past the limit
                    return self._too_large(None)
                except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                    response = _response(408, {"error": f"Request body not received within {self.body_timeout:g}s"})
                    response.force_close()
                    return response
            if not path.lower().startswith("/v1/"):
                return _response(404, {"error": f"Not found: {method} {path}"})
            return _response(200, await self._route(method, path, body, request.headers.get("Content-Type", "")))
        except ServingError as err:
            return _response(_HTTP_STATUS.get(err.code, 500), {"error": err.message})
        except Exception as err:  # a bug answers 500 and the server keeps going
            log.exception("unexpected error serving %s %s", method, path)
            return _response(500, {"error": f"Internal: {err}"})

    async def _route(self, method: str, path: str, body: bytes, content_type: str) -> bytes:
        repo = self.repository
        match = _PREDICT.fullmatch(path) if method == "POST" else None
        if match:
            name, version, label = _model_info(match)
            return await self._infer(repo.resolve(name, version, label), match.group(4).lower(), body, content_type)
        match = _STATUS.fullmatch(path) if method == "GET" else None
        if not match:
            raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
        name, version, label = _model_info(match)
        if not name:
            raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
        if match.group(4):
            from tensorflow_serving.apis import get_model_metadata_pb2

            # TF Serving prints the unpacked SignatureDefMap, not the Any that holds it
            response = repo.metadata_response(name, version, label)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            return _json({"model_spec": _as_dict(response.model_spec),
                          "metadata": {"signature_def": _as_dict(signatures)}})
        return _json(_as_dict(repo.status_response(name, version, label)))

    async def _infer(self, servable, verb: str, body: bytes, content_type: str) -> bytes:
        """:predict, :classify, :regress or :upload; the model runs batched or on the executor, never on the loop."""

        def prepare():
            if verb == "upload":
                inputs = upload.upload_inputs(servable, content_type, body)
                future = servable.submit(upload.SIGNATURE, inputs, self._executor)
                return future, lambda outputs: rest_json.response_body(outputs, True)
            doc = rest_json.parse_body(body)
            if verb == "predict":
                name = doc.get("signature_name")
                inputs, row_format = rest_json.request_tensors(doc, servable.numpy_dtypes(name))
                future = servable.submit(name, inputs, self._executor)
                return future, lambda outputs: rest_json.response_body(outputs, row_format)
            call = inference.Call.from_json(servable, verb, doc)
            return call.submit(self._executor), lambda outputs: _json(call.json_result(outputs))

        # converting megabytes of JSON would stall every connection: big requests convert off the loop
        loop, big = asyncio.get_running_loop(), len(body) > _INLINE_BODY_BYTES
        future, render = await loop.run_in_executor(self._executor, prepare) if big else prepare()
        outputs = await self._loop.inbox.wait(future)
        if big:
            return await loop.run_in_executor(self._executor, render, outputs)
        return render(outputs)

    def _too_large(self, length: int | None):
        size = f" of {length} bytes" if length is not None else ""
        response = _response(413, {"error": f"Request body{size} exceeds the limit of {self.max_body_bytes} bytes"})
        response.force_close()
        return response


def _json(payload: dict) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _response(status: int, payload: dict | bytes):
    body = payload if isinstance(payload, bytes) else _json(payload)
    return web.Response(status=status, body=body, headers=_JSON)


def _model_info(match: re.Match) -> tuple[str | None, int | None, str | None]:
    name, version, label = match.group(1), match.group(2), match.group(3)
    return (unquote(name) if name else None, int(version) if version else None,
            unquote(label) if label else None)


def _as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
