"""TF Serving's gRPC API: `PredictionService` (Predict, Classify, Regress, GetModelMetadata)
and `ModelService` (GetModelStatus) on the generated servicers of `tensorflow-serving-api`,
so the official stubs talk to it unchanged.

It runs on grpc.aio, one event loop thread: a request is a coroutine, not a
pool thread, and model calls go to the batching threads or the model
executor like REST's (measured against the thread-pool server in
docs/serving.md). Tensors are converted without `tf.make_ndarray` /
`tf.make_tensor_proto` for the common dense cases (see `tensors.py`).
"""

from __future__ import annotations

from concurrent.futures import Executor

import grpc
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc, predict_pb2,
                                    prediction_service_pb2_grpc, regression_pb2)

from kerasflow.serve import tensors
from kerasflow.serve.loop import Inbox, LoopThread
from kerasflow.serve.servables import DEFAULT_SIGNATURE, ModelRepository, ServingError

_SIGNATURE_DEF = "signature_def"


def _model_spec(spec) -> tuple[str, int | None, str | None]:
    if not spec.name:
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


async def _abort(context, err: ServingError) -> None:
    await context.abort(getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN), err.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, executor: Executor, inbox: Inbox):
        self._repository, self._executor, self._inbox = repository, executor, inbox

    async def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            servable = self._repository.resolve(*_model_spec(request.model_spec))
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = {k: tensors.to_array(v) for k, v in request.inputs.items()}
            outputs = await self._inbox.wait(servable.submit(signature_name, inputs, self._executor))
            wanted = list(request.output_filter) or sorted(outputs)
            unknown = [k for k in wanted if k not in outputs]
            if unknown:
                expected = ",".join(sorted(outputs))
                raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in signature: {unknown[0]} "
                                                       f"Outputs expected to be in the set {{{expected}}}.")
        except ServingError as err:
            await _abort(context, err)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for key in wanted:
            tensors.fill_proto(response.outputs[key], outputs[key])
        return response

    async def Classify(self, request, context):  # noqa: N802 - gRPC method name
        return await self._infer("classify", request, context, classification_pb2.ClassificationResponse())

    async def Regress(self, request, context):  # noqa: N802 - gRPC method name
        return await self._infer("regress", request, context, regression_pb2.RegressionResponse())

    async def _infer(self, verb: str, request, context, response):
        from kerasflow.serve.inference import Call

        try:
            servable = self._repository.resolve(*_model_spec(request.model_spec))
            call = Call.from_proto(servable, verb, request)
            outputs = await self._inbox.wait(call.submit(self._executor))
            call.proto_result(outputs, response, request.model_spec.name)
        except ServingError as err:
            await _abort(context, err)
        return response

    async def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        try:
            if not request.metadata_field:
                raise ServingError("INVALID_ARGUMENT",
                                   "GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != _SIGNATURE_DEF:
                    raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
            return self._repository.metadata_response(*_model_spec(request.model_spec))
        except ServingError as err:
            await _abort(context, err)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    async def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self._repository.status_response(*_model_spec(request.model_spec))
        except ServingError as err:
            await _abort(context, err)


class GrpcServer:
    """The gRPC API on `host:port` (0: any free port) on its own event-loop thread.

    Args:
        repository: the model's versions.
        max_message_bytes: largest request message (RESOURCE_EXHAUSTED above it).
        executor: runs model calls when batching is off.
    """

    def __init__(self, host: str, port: int, repository: ModelRepository, *, max_message_bytes: int,
                 executor: Executor):
        self.host, self.port = host, port
        self._repository, self._executor = repository, executor
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", max(max_message_bytes, 64 << 20)),
                         ("grpc.so_reuseport", 0)]
        self._loop = LoopThread("kerasflow-grpc")
        self._server = None

    def start(self) -> int:
        """Bind and serve; returns the bound port (raises OSError when the port is taken)."""
        self.port = self._loop.start(self._bind)
        return self.port

    async def _bind(self) -> int:
        self._server = grpc.aio.server(options=self._options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self._repository, self._executor, self._loop.inbox), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self._repository), self._server)
        try:
            bound = self._server.add_insecure_port(f"{_bracket(self.host)}:{self.port}")
        except RuntimeError as err:  # grpc.aio raises where the sync server returned 0
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}: {err}") from None
        if bound == 0:
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}")
        await self._server.start()
        return bound

    def stop(self, grace: float = 1.0) -> None:
        self._loop.stop(lambda: self._server.stop(grace))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
