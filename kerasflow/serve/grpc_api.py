"""TF Serving's gRPC API: `PredictionService` (Predict, Classify, Regress, GetModelMetadata)
and `ModelService` (GetModelStatus) on the generated servicers of `tensorflow-serving-api`,
so the official stubs talk to it unchanged.

Two servers, picked by batching (measured in docs/serving.md; gRPC's C core does the
connection I/O in both, so idle or slow clients hold no thread):

- batching off: grpc's thread-pool server. A handler runs on a pool thread once its
  request has arrived and calls the model itself: no event loop, executor or result
  hand-off per request (about half the server CPU per request of the grpc.aio server).
- batching on: grpc.aio, one event loop. A request waits for its batch as a coroutine,
  and a finished batch wakes the loop once (`Inbox`); on the thread-pool server every
  waiting request holds a pool thread that must be woken on its own, which was slower,
  and a batch could hold no more gRPC requests than there are threads.

Tensors are converted without `tf.make_ndarray` / `tf.make_tensor_proto` for the common
dense cases (see `tensors.py`).
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

import grpc
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc, predict_pb2,
                                    prediction_service_pb2_grpc, regression_pb2)

from kerasflow.serve import tensors
from kerasflow.serve.inference import Call
from kerasflow.serve.loop import Inbox, LoopThread
from kerasflow.serve.servables import DEFAULT_SIGNATURE, ModelRepository, ServingError

_SIGNATURE_DEF = "signature_def"
_RESPONSES = {"classify": classification_pb2.ClassificationResponse, "regress": regression_pb2.RegressionResponse}


def _model_spec(spec) -> tuple[str, int | None, str | None]:
    if not spec.name:
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def _status_code(err: ServingError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN)


# --- what each RPC does around its model call (both servers) ------------------------------------

def _predict_inputs(repository: ModelRepository, request):
    """The servable, signature name and input arrays of a PredictRequest."""
    servable = repository.resolve(*_model_spec(request.model_spec))
    inputs = {k: tensors.to_array(v) for k, v in request.inputs.items()}
    return servable, request.model_spec.signature_name or DEFAULT_SIGNATURE, inputs


def _predict_response(request, servable, signature_name: str, outputs) -> predict_pb2.PredictResponse:
    wanted = list(request.output_filter) or sorted(outputs)
    unknown = [k for k in wanted if k not in outputs]
    if unknown:
        expected = ",".join(sorted(outputs))
        raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in signature: {unknown[0]} "
                                               f"Outputs expected to be in the set {{{expected}}}.")
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for key in wanted:
        tensors.fill_proto(response.outputs[key], outputs[key])
    return response


def _infer_call(repository: ModelRepository, verb: str, request) -> Call:
    return Call.from_proto(repository.resolve(*_model_spec(request.model_spec)), verb, request)


def _infer_response(verb: str, request, call: Call, outputs):
    response = _RESPONSES[verb]()
    call.proto_result(outputs, response, request.model_spec.name)
    return response


def _metadata(repository: ModelRepository, request):
    if not request.metadata_field:
        raise ServingError("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != _SIGNATURE_DEF:
            raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
    return repository.metadata_response(*_model_spec(request.model_spec))


# --- batching off: thread-pool server, the handler calls the model ------------------------------

class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            servable, name, inputs = _predict_inputs(self._repository, request)
            return _predict_response(request, servable, name, servable.predict(name, inputs))
        except ServingError as err:
            context.abort(_status_code(err), err.message)

    def Classify(self, request, context):  # noqa: N802 - gRPC method name
        return self._infer("classify", request, context)

    def Regress(self, request, context):  # noqa: N802 - gRPC method name
        return self._infer("regress", request, context)

    def _infer(self, verb: str, request, context):
        try:
            call = _infer_call(self._repository, verb, request)
            return _infer_response(verb, request, call, call.run())
        except ServingError as err:
            context.abort(_status_code(err), err.message)

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return _metadata(self._repository, request)
        except ServingError as err:
            context.abort(_status_code(err), err.message)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self._repository.status_response(*_model_spec(request.model_spec))
        except ServingError as err:
            context.abort(_status_code(err), err.message)


# --- batching on: grpc.aio, requests wait for their batch as coroutines -------------------------

class _AioPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, executor: Executor, inbox: Inbox):
        self._repository, self._executor, self._inbox = repository, executor, inbox

    async def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            servable, name, inputs = _predict_inputs(self._repository, request)
            outputs = await self._inbox.wait(servable.submit(name, inputs, self._executor))
            return _predict_response(request, servable, name, outputs)
        except ServingError as err:
            await context.abort(_status_code(err), err.message)

    async def Classify(self, request, context):  # noqa: N802 - gRPC method name
        return await self._infer("classify", request, context)

    async def Regress(self, request, context):  # noqa: N802 - gRPC method name
        return await self._infer("regress", request, context)

    async def _infer(self, verb: str, request, context):
        try:
            call = _infer_call(self._repository, verb, request)
            return _infer_response(verb, request, call, await self._inbox.wait(call.submit(self._executor)))
        except ServingError as err:
            await context.abort(_status_code(err), err.message)

    async def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return _metadata(self._repository, request)
        except ServingError as err:
            await context.abort(_status_code(err), err.message)


class _AioModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    async def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self._repository.status_response(*_model_spec(request.model_spec))
        except ServingError as err:
            await context.abort(_status_code(err), err.message)


class GrpcServer:
    """The gRPC API on `host:port` (0: any free port): the thread-pool server, or grpc.aio with batching.

    Args:
        repository: the model's versions (batching is on when it has a scheduler).
        max_message_bytes: largest request message (RESOURCE_EXHAUSTED above it).
        executor: what `Servable.submit` takes (with batching on, calls go to the scheduler instead).
        threads: thread-pool server: requests handled at once (more wait in gRPC's queue).
    """

    def __init__(self, host: str, port: int, repository: ModelRepository, *, max_message_bytes: int,
                 executor: Executor, threads: int = 16):
        self.host, self.port = host, port
        self._repository, self._executor, self._threads = repository, executor, threads
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", max(max_message_bytes, 64 << 20)),
                         ("grpc.so_reuseport", 0)]
        self._loop = LoopThread("kerasflow-grpc") if repository.scheduler is not None else None
        self._server = None

    def start(self) -> int:
        """Bind and serve; returns the bound port (raises OSError when the port is taken)."""
        if self._loop is not None:
            self.port = self._loop.start(self._bind_aio)
            return self.port
        self._server = grpc.server(ThreadPoolExecutor(self._threads, thread_name_prefix="kerasflow-grpc"),
                                   options=self._options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self._repository), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self._repository), self._server)
        self.port = self._bind(self._server)
        self._server.start()
        return self.port

    async def _bind_aio(self) -> int:
        self._server = grpc.aio.server(options=self._options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _AioPredictionService(self._repository, self._executor, self._loop.inbox), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_AioModelService(self._repository), self._server)
        bound = self._bind(self._server)
        await self._server.start()
        return bound

    def _bind(self, server) -> int:
        try:
            bound = server.add_insecure_port(f"{_bracket(self.host)}:{self.port}")
        except RuntimeError as err:  # grpc.aio raises where the thread-pool server returns 0
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}: {err}") from None
        if bound == 0:
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}")
        return bound

    def stop(self, grace: float = 1.0) -> None:
        if self._loop is not None:
            self._loop.stop(lambda: self._server.stop(grace))
        elif self._server is not None:
            self._server.stop(grace).wait()
            self._server = None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
