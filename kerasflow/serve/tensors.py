"""TensorProto <-> numpy for the gRPC API, fast for dense numeric and string tensors.

`tf.make_ndarray` and `tf.make_tensor_proto` are general (every dtype, every
field, broadcasting a single value) and cost tens of microseconds per tensor
in Python, more than the rest of a small request. A dense numeric tensor is
its `tensor_content` bytes (what `tf.make_tensor_proto` writes for numpy
arrays) and a string tensor its `string_val` list; anything else goes the
general way, so every proto the official client sends is still understood.
"""

from __future__ import annotations

import math

import numpy as np

_DTYPES: dict[int, np.dtype] = {}  # DataType enum -> numpy dtype, for the dtypes with a plain byte layout
_ENUMS: dict[np.dtype, int] = {}
_STRING = 7  # DT_STRING


def _tables() -> None:
    import tensorflow as tf

    for dtype in (tf.float32, tf.float64, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.uint16,
                  tf.uint32, tf.uint64, tf.bool, tf.float16):
        _DTYPES[dtype.as_datatype_enum] = np.dtype(dtype.as_numpy_dtype)
        _ENUMS[np.dtype(dtype.as_numpy_dtype)] = dtype.as_datatype_enum


def to_array(proto) -> np.ndarray:
    """The numpy array of a TensorProto (object array of bytes for DT_STRING)."""
    if not _DTYPES:
        _tables()
    shape = [d.size for d in proto.tensor_shape.dim]
    dtype = _DTYPES.get(proto.dtype)
    if dtype is not None and proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=dtype)
        if array.size == math.prod(shape):
            return array.reshape(shape)
    elif proto.dtype == _STRING and len(proto.string_val) == math.prod(shape) > 0:
        array = np.empty(len(proto.string_val), dtype=object)
        array[:] = list(proto.string_val)
        return array.reshape(shape)
    import tensorflow as tf

    return tf.make_ndarray(proto)  # typed value fields, a single broadcast value, other dtypes


def fill_proto(proto, array: np.ndarray) -> None:
    """Write `array` into the (empty) TensorProto `proto`, as `tf.make_tensor_proto` would."""
    if not _DTYPES:
        _tables()
    enum = _ENUMS.get(array.dtype)
    if enum is None and array.dtype.kind not in "OS":
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if enum is None:  # strings: bytes values, one per element
        proto.dtype = _STRING
        proto.string_val.extend(bytes(v) if not isinstance(v, str) else v.encode("utf-8") for v in array.ravel())
        return
    proto.dtype = enum
    proto.tensor_content = np.ascontiguousarray(array).tobytes()
