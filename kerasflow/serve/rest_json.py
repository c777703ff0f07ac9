"""TF Serving's JSON <-> tensor mapping for the REST predict API.

Follows `tensorflow_serving/util/json_tensor.cc`: `instances` (row format, a
plain list for a single input or a list of objects keyed by input name) or
`inputs` (columnar: a value for a single input or an object of inputs), never
both; `{"b64": ...}` for binary string values; `NaN`/`Infinity` tokens;
floats must be numbers, ints whole numbers, strings strings. Responses mirror
the request format (`predictions` / `outputs`), omitting the output name
when there is only one; string outputs whose name ends in `_bytes` come back
base64-encoded.

Speed: bodies are decoded with orjson and predict responses rendered by it
straight from the output arrays (float32 in its shortest round-trip form, as
before); the stdlib `json` takes over for what orjson does not do like TF
Serving (`NaN`/`Infinity` tokens, the parse error messages). Integers beyond
64 bits become floats, as in TF Serving's rapidjson.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping

import numpy as np
import orjson

from kerasflow.serve.servables import ServingError


def _bad(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def _text(value: Any) -> str:
    return json.dumps(value)[:200]


def parse_body(body: bytes) -> dict:
    """The request object; TF Serving's parse errors."""
    if not body:
        raise _bad("JSON Parse error: The document is empty")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None  # NaN/Infinity tokens, or broken: the stdlib accepts or explains
    try:
        doc = json.loads(body) if doc is None else doc
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        position = getattr(err, "pos", getattr(err, "start", 0))
        raise _bad(f"JSON Parse error: {getattr(err, 'msg', err)} at offset: {position}") from err
    if not isinstance(doc, dict):
        raise _bad(f"JSON Value: {_text(doc)} Is not object")
    name = doc.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise _bad(f"JSON Value: {_text(doc)} not formatted correctly. "
                   "'signature_name' key must be a string value.")
    return doc


def request_tensors(doc: Mapping[str, Any], dtypes: Mapping[str, np.dtype]) -> tuple[dict[str, np.ndarray], bool]:
    """Input arrays from a predict request, and whether it used the row format.

    `dtypes` maps each signature input to its numpy dtype (object for strings).
    """
    if "instances" in doc and "inputs" in doc:
        raise _bad("JSON Value: request not formatted correctly expecting only one of 'inputs' "
                   "or 'instances' keys to exist")
    if "instances" in doc:
        return _from_instances(doc["instances"], dtypes), True
    if "inputs" in doc:
        return _from_inputs(doc["inputs"], dtypes), False
    raise _bad("Missing 'inputs' or 'instances' key")


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _from_instances(instances: Any, dtypes: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise _bad("JSON Value: request not formatted correctly. Excepting 'instances' to be an list/array")
    if not instances:
        raise _bad("JSON Value: request not formatted correctly. No values in 'instances' array")
    names = set(dtypes)
    if not _is_object(instances[0]):
        if len(dtypes) > 1:
            raise _bad("instances is a plain list, but expecting list of objects as multiple input "
                       "tensors required as per tensorinfo_map")
        for i, item in enumerate(instances):
            if _is_object(item):
                raise _bad(f"Expecting value/list but got object at item {i} of input list")
        (name,) = dtypes
        return {name: _to_array(instances, dtypes[name], "'instances' list")}
    for i, item in enumerate(instances):
        if not _is_object(item):
            raise _bad(f"Expecting object but got list at item {i} of input list")
        for key in item:
            if key not in names:
                raise _bad(f"Failed to process element: {i} key: {key} of 'instances' list. "
                           f"Error: JSON object: does not have named input: {key}")
        if set(item) != names:
            raise _bad(f"Failed to process element: {i} of 'instances' list. JSON object: {_text(item)} "
                       f"must only have keys: {','.join(sorted(names))}")
    return {name: _to_array([item[name] for item in instances], dtype, f"input '{name}' of 'instances'")
            for name, dtype in dtypes.items()}


def _from_inputs(inputs: Any, dtypes: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    if not _is_object(inputs):
        if len(dtypes) > 1:
            raise _bad("inputs is a plain value/list, but expecting an object as multiple input tensors "
                       "required as per tensorinfo_map")
        (name,) = dtypes
        return {name: _to_array(inputs, dtypes[name], "'inputs'")}
    arrays = {}
    for name, dtype in dtypes.items():
        if name not in inputs:
            raise _bad(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = _to_array(inputs[name], dtype, f"input '{name}' of 'inputs'")
    return arrays


def _to_array(value: Any, dtype: np.dtype, where: str) -> np.ndarray:
    """A dense array of `dtype` from nested JSON lists, checked like TF Serving."""
    if dtype.kind != "O":
        try:
            array = np.asarray(value)
        except ValueError:
            array = None  # ragged: the walk below reports where
        allowed = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}.get(dtype.kind, "")
        if array is not None and (array.dtype.kind in allowed or array.size == 0):
            if dtype.kind in "iu" and array.size:
                info = np.iinfo(dtype)
                if array.min() < info.min or array.max() > info.max:
                    raise _bad(f"JSON Value out of range for {np.dtype(dtype).name} ({where})")
            return array.astype(dtype)
    # strings, or numbers of the wrong kind: walk the values for TF Serving's checks and messages
    shape = _dense_shape(value, where)
    leaves: list = []
    _collect(value, dtype, leaves, where)
    if dtype.kind == "O":
        out = np.empty(len(leaves), dtype=object)
        out[:] = leaves
        return out.reshape(shape)
    return np.asarray(leaves, dtype=dtype).reshape(shape)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return {str: "String", dict: "Object", list: "Array", type(None): "Null"}.get(type(value), "Number")


def _dense_shape(value: Any, where: str) -> list[int]:
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    _check_dense(value, shape, 0, where)
    return shape


def _check_dense(value: Any, shape: list[int], level: int, where: str) -> None:
    if isinstance(value, list):
        if level >= len(shape):
            raise _bad(f"Encountered list at unexpected level: {level} expected < {len(shape)} ({where})")
        if len(value) != shape[level]:
            raise _bad(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                       f"expected size: {shape[level]} ({where})")
        for item in value:
            _check_dense(item, shape, level + 1, where)
    elif level != len(shape):
        raise _bad(f"JSON Value: {_text(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                   f"Expected at level: {len(shape)} ({where})")


def _collect(value: Any, dtype: np.dtype, out: list, where: str) -> None:
    if isinstance(value, list):
        for item in value:
            _collect(item, dtype, out, where)
        return
    if dtype.kind == "O":
        if isinstance(value, str):
            out.append(value.encode("utf-8"))
        elif _is_b64(value):
            try:
                out.append(base64.b64decode(value["b64"], validate=True))
            except (binascii.Error, ValueError) as err:
                raise _bad(f"Unable to base64 decode ({where})") from err
        elif isinstance(value, dict):
            raise _bad(f"JSON Value: {_text(value)} not formatted correctly for base64 data ({where})")
        else:
            raise _bad(f"JSON Value: {_text(value)} Type: {_json_type(value)} is not of expected type: "
                       f"string ({where})")
        return
    if dtype.kind == "b":
        ok = isinstance(value, bool)
    else:  # JSON true/false are not numbers; ints need whole numbers, floats take both
        allowed = (int, float) if dtype.kind == "f" else (int,)
        ok = isinstance(value, allowed) and not isinstance(value, bool)
    if not ok:
        raise _bad(f"JSON Value: {_text(value)} Type: {_json_type(value)} is not of expected type: "
                   f"{np.dtype(dtype).name} ({where})")
    out.append(value)


def response_body(outputs: Mapping[str, np.ndarray], row_format: bool) -> bytes:
    """`{"predictions": ...}` (row) or `{"outputs": ...}` (columnar), TF Serving's layout, as JSON bytes."""
    if not outputs:
        raise _bad("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    # orjson writes numeric arrays itself, float32 in the shortest form that round-trips (0.2, not
    # 0.200000003) as the stdlib path below does, but NaN/Infinity as null where TF Serving writes NaN
    native = not any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in outputs.values())
    values = {name: np.ascontiguousarray(outputs[name]) if native and _orjson_array(outputs[name]) else
              _to_json(name, outputs[name]) for name in names}
    if not row_format:
        return _dumps({"outputs": values[names[0]] if len(names) == 1 else values}, native)
    batch = None
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise _bad(f"Tensor name: {name} has no shape information ")
        if shape[0] < 1 or (batch is not None and shape[0] != batch):
            raise _bad(f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}")
        batch = shape[0]
    if len(names) == 1:
        return _dumps({"predictions": values[names[0]]}, native)
    return _dumps({"predictions": [{name: values[name][i] for name in names} for i in range(batch)]}, native)


def _orjson_array(array: np.ndarray) -> bool:
    return array.ndim > 0 and array.dtype in _ORJSON_DTYPES


_ORJSON_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                                        "uint16", "uint32", "uint64", "bool")}


def _dumps(payload: dict, native: bool) -> bytes:
    if native:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(payload).encode("utf-8")


def _to_json(name: str, array: np.ndarray) -> Any:
    if array.dtype == np.float32:
        # shortest text that round-trips the float32 (0.2, not 0.20000000298023224)
        return array.astype(str).astype(np.float64).tolist()
    if array.dtype.kind in "OS":
        if name.endswith("_bytes"):
            encode = np.frompyfunc(lambda b: {"b64": base64.b64encode(bytes(b)).decode("ascii")}, 1, 1)
        elif array.ndim == 1:  # the common case (class names): no ufunc machinery
            return [bytes(b).decode("utf-8", "replace") for b in array.tolist()]
        else:
            encode = np.frompyfunc(lambda b: bytes(b).decode("utf-8", "replace"), 1, 1)
        return encode(array).tolist() if array.ndim else encode(array.item())
    return array.tolist()
