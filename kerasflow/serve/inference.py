"""TF Serving's Classify and Regress APIs over `tf.Example` input.

They run signatures whose method is `tensorflow/serving/classify` (one DT_STRING
input `inputs` of serialized tf.Examples; outputs `classes` [batch, n] string
and/or `scores` [batch, n] float) or `tensorflow/serving/regress` (input
`inputs`; output `outputs` [batch] or [batch, 1] float), as
`tensorflow_serving/servables/tensorflow/{classifier,regressor}.cc` require.
REST takes `{"signature_name", "context", "examples": [{feature: value}]}` and
answers `{"result": ...}`; gRPC takes `ClassificationRequest`/`RegressionRequest`.
With `context`, each example is the context with the example's own features
on top (TF Serving concatenates the serialized protos the same way).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from kerasflow.serve.servables import DEFAULT_SIGNATURE, Servable, ServingError

METHODS = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}
_NAMES = {"classify": "classification", "regress": "regression"}
INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"


def _bad(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


class Call:
    """One Classify/Regress request: the servable, the signature and the serialized examples."""

    def __init__(self, servable: Servable, verb: str, signature_name: str | None, examples: list[bytes]):
        self.servable, self.verb = servable, verb
        self.signature_name = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_def(self.signature_name)
        if signature.method_name != METHODS[verb]:
            raise _bad(f"Expected {_NAMES[verb]} signature method_name to be {METHODS[verb]}. "
                       f"Was: {signature.method_name}")
        if list(signature.inputs) != [INPUTS]:
            raise _bad(f"Expected one input Tensor named '{INPUTS}'; the signature has {sorted(signature.inputs)}")
        wanted = {CLASSES, SCORES} if verb == "classify" else {OUTPUTS}
        if not wanted & set(signature.outputs):
            raise _bad(f"Expected {_NAMES[verb]} signature outputs {sorted(wanted)}; "
                       f"it has {sorted(signature.outputs)}")
        if not examples:
            raise _bad("Input is empty")
        self.examples = examples

    @classmethod
    def from_json(cls, servable: Servable, verb: str, doc: dict) -> Call:
        examples = doc.get("examples")
        if not isinstance(examples, list) or not examples:
            raise _bad("'examples' must be a non-empty list of objects")
        context = doc.get("context")
        prefix = _example(context, "context").SerializeToString() if context is not None else b""
        return cls(servable, verb, doc.get("signature_name"),
                   [prefix + _example(e, f"examples[{i}]").SerializeToString() for i, e in enumerate(examples)])

    @classmethod
    def from_proto(cls, servable: Servable, verb: str, request) -> Call:
        which = request.input.WhichOneof("kind")
        if which == "example_list":
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
        elif which == "example_list_with_context":
            listed = request.input.example_list_with_context
            prefix = listed.context.SerializeToString()
            examples = [prefix + e.SerializeToString() for e in listed.examples]
        else:
            examples = []
        return cls(servable, verb, request.model_spec.signature_name, examples)

    def _inputs(self) -> dict[str, np.ndarray]:
        array = np.empty(len(self.examples), dtype=object)
        array[:] = self.examples
        return {INPUTS: array}

    def submit(self, executor):
        """A Future of the signature's outputs (batched when batching is on)."""
        return self.servable.submit(self.signature_name, self._inputs(), executor)

    def run(self) -> dict[str, np.ndarray]:
        return self.servable.predict(self.signature_name, self._inputs())

    def _rows(self, outputs: dict[str, np.ndarray]) -> list:
        n = len(self.examples)
        if self.verb == "regress":
            values = np.asarray(outputs[OUTPUTS])
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            if values.shape != (n,):
                raise _bad(f"Expected output Tensor shape to be [{n}] or [{n},1] but got {list(values.shape)}")
            return values.astype(float).tolist()
        classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
        for name, array in ((CLASSES, classes), (SCORES, scores)):
            if array is not None and (array.ndim != 2 or array.shape[0] != n):
                raise _bad(f"Expected Tensor shape: [{n},n] but got {list(array.shape)} ({name})")
        width = (classes if classes is not None else scores).shape[1]
        return [[(bytes(classes[i, j]).decode("utf-8", "replace") if classes is not None else "",
                  float(scores[i, j]) if scores is not None else 0.0) for j in range(width)] for i in range(n)]

    def json_result(self, outputs: dict[str, np.ndarray]) -> dict:
        rows = self._rows(outputs)
        return {"result": [[list(pair) for pair in row] for row in rows] if self.verb == "classify" else rows}

    def proto_result(self, outputs: dict[str, np.ndarray], response, model_name: str) -> None:
        """Fill a ClassificationResponse / RegressionResponse."""
        response.model_spec.name = model_name
        response.model_spec.version.value = self.servable.version
        response.model_spec.signature_name = self.signature_name
        for row in self._rows(outputs):
            if self.verb == "regress":
                response.result.regressions.add(value=row)
            else:
                entry = response.result.classifications.add()
                for label, score in row:
                    entry.classes.add(label=label, score=score)


def _example(features: Any, where: str):
    """A tf.train.Example from `{"name": value or [values]}` (TF Serving's JSON rules)."""
    from tensorflow.core.example import example_pb2

    if not isinstance(features, dict):
        raise _bad(f"{where}: expected an object of features, got {type(features).__name__}")
    example = example_pb2.Example()
    for name, value in features.items():
        values = value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        kinds = {_kind(v, f"{where}.{name}") for v in values}
        if kinds <= {"int"}:
            feature.int64_list.value.extend(values)
        elif kinds <= {"int", "float"}:
            feature.float_list.value.extend(float(v) for v in values)
        elif kinds == {"bytes"}:
            feature.bytes_list.value.extend(_bytes(v, f"{where}.{name}") for v in values)
        else:
            raise _bad(f"{where}.{name}: mixes strings and numbers")
    return example


def _kind(value: Any, where: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, list) or \
            (isinstance(value, dict) and set(value) != {"b64"}):
        raise _bad(f"{where}: feature values must be numbers, strings or {{\"b64\": ...}}, got {value!r:.80}")
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "bytes"


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError, TypeError) as err:
        raise _bad(f"{where}: unable to base64 decode") from err
