"""TF Serving's gRPC API: `PredictionService` (Predict, GetModelMetadata) and
`ModelService` (GetModelStatus), plus Classify and Regress, on the generated servicers of
`tensorflow-serving-api`, so the official stubs talk to it unchanged.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc, predict_pb2,
                                    prediction_service_pb2_grpc, regression_pb2)

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
        import tensorflow as tf

        try:
            servable = self._repository.resolve(*_model_spec(request.model_spec))
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
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
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
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
            call.proto_result(call.run(), response, request.model_spec.name)
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


def start_grpc_server(repository: ModelRepository, host: str, port: int, *,
                      max_message_bytes: int, workers: int = 32) -> tuple[grpc.Server, int]:
    """Start the gRPC server; returns it and the bound port (port 0 picks a free one)."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max(max_message_bytes, 64 << 20)),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kerasflow-grpc"),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(repository), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(repository), server)
    bound = server.add_insecure_port(f"{_bracket(host)}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    server.start()
    return server, bound


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

