"""TF Serving's gRPC API: `PredictionService` (Predict, Classify, Regress, GetModelMetadata)
and `ModelService` (GetModelStatus) on the generated servicers of `tensorflow-serving-api`,
so the official stubs talk to it unchanged.

It is grpc's thread-pool server: gRPC's C core reads and writes the connections
(a slow or idle client holds no thread), and a handler runs on a pool thread
only once its whole request has arrived; it calls the model right there (or
waits for its batch), so a request crosses no event loop, executor or result
hand-off. Measured against the grpc.aio server this replaced (one event loop,
model calls on the executor): about half the server CPU per request with
batching off (docs/serving.md). Tensors are converted without
`tf.make_ndarray` / `tf.make_tensor_proto` for the common dense cases (see `tensors.py`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc, predict_pb2,
                                    prediction_service_pb2_grpc, regression_pb2)

from kerasflow.serve import tensors
from kerasflow.serve.servables import DEFAULT_SIGNATURE, ModelRepository, ServingError

_SIGNATURE_DEF = "signature_def"


def _model_spec(spec) -> tuple[str, int | None, str | None]:
    if not spec.name:
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
    version = spec.version.value if spec.HasField("version") else None
    return spec.name, version, spec.version_label or None


def _abort(context, err: ServingError) -> None:
    context.abort(getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN), err.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        try:
            servable = self._repository.resolve(*_model_spec(request.model_spec))
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = {k: tensors.to_array(v) for k, v in request.inputs.items()}
            outputs = servable.predict(signature_name, inputs)
            wanted = list(request.output_filter) or sorted(outputs)
            unknown = [k for k in wanted if k not in outputs]
            if unknown:
                expected = ",".join(sorted(outputs))
                raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in signature: {unknown[0]} "
                                                       f"Outputs expected to be in the set {{{expected}}}.")
        except ServingError as err:
            _abort(context, err)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for key in wanted:
            tensors.fill_proto(response.outputs[key], outputs[key])
        return response

    def Classify(self, request, context):  # noqa: N802 - gRPC method name
        return self._infer("classify", request, context, classification_pb2.ClassificationResponse())

    def Regress(self, request, context):  # noqa: N802 - gRPC method name
        return self._infer("regress", request, context, regression_pb2.RegressionResponse())

    def _infer(self, verb: str, request, context, response):
        from kerasflow.serve.inference import Call

        try:
            servable = self._repository.resolve(*_model_spec(request.model_spec))
            call = Call.from_proto(servable, verb, request)
            outputs = call.run()
            call.proto_result(outputs, response, request.model_spec.name)
        except ServingError as err:
            _abort(context, err)
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        try:
            if not request.metadata_field:
                raise ServingError("INVALID_ARGUMENT",
                                   "GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != _SIGNATURE_DEF:
                    raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
            return self._repository.metadata_response(*_model_spec(request.model_spec))
        except ServingError as err:
            _abort(context, err)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return self._repository.status_response(*_model_spec(request.model_spec))
        except ServingError as err:
            _abort(context, err)


class GrpcServer:
    """The gRPC API on `host:port` (0: any free port), handlers on a pool of `threads`.

    Args:
        repository: the model's versions.
        max_message_bytes: largest request message (RESOURCE_EXHAUSTED above it).
        threads: requests handled at once (more wait in gRPC's queue); with batching on,
            also the most gRPC requests one batch can hold.
    """

    def __init__(self, host: str, port: int, repository: ModelRepository, *, max_message_bytes: int,
                 threads: int = 16):
        self.host, self.port = host, port
        self._repository = repository
        self._threads = threads
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", max(max_message_bytes, 64 << 20)),
                         ("grpc.so_reuseport", 0)]
        self._server = None

    def start(self) -> int:
        """Bind and serve; returns the bound port (raises OSError when the port is taken)."""
        self._server = grpc.server(ThreadPoolExecutor(self._threads, thread_name_prefix="kerasflow-grpc"),
                                   options=self._options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self._repository), self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self._repository), self._server)
        try:
            bound = self._server.add_insecure_port(f"{_bracket(self.host)}:{self.port}")
        except RuntimeError as err:  # newer grpc raises where older versions returned 0
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}: {err}") from None
        if bound == 0:
            raise OSError(f"cannot bind gRPC port {self.host}:{self.port}")
        self._server.start()
        self.port = bound
        return bound

    def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
