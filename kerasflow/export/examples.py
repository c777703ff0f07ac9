"""TF Serving's `classify` and `regress` signatures over serialized `tf.Example`s.

Per classification target `T`, `classify_T` answers `classes` (the class names,
[batch, n] string) and `scores` (probabilities, [batch, n] float); per numeric
target with one value per row, `regress_T` answers `outputs` ([batch] float).
Both take one input, `inputs`: a [batch] string tensor of serialized
`tf.Example`s carrying the model's raw features by name, parsed inside the
graph with `tf.io.parse_example` (a tf.Example holds only float, int64 and
bytes lists, so values are cast to the model input's dtype; image features
are encoded PNG/JPEG bytes, decoded like `serving_bytes` does).

Keras' `ExportArchive` writes every endpoint with the predict method, so
`set_methods` rewrites the method names in `saved_model.pb` after
`write_out`; TF Serving reads them to accept Classify/Regress calls. It runs
on the unpublished temporary directory, so the publish stays atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
EXAMPLES_INPUT = "inputs"


def example_endpoints(
    serve: Callable, specs: Mapping, targets: Mapping[str, Mapping[str, Any]], images: Mapping[str, tuple]
) -> dict[str, tuple[Callable, list, str]]:
    """Signature name -> (function, input signature, method name) for Classify/Regress.

    Args:
        serve: the `serving_default` function (feature dict -> outputs).
        specs: the model's input `tf.TensorSpec`s by feature name.
        targets: `signature.example_targets(...)`.
        images: image feature name -> (height, width, channels); these come as encoded bytes.

    Returns an empty dict when some input cannot be written as a fixed-size
    tf.Example feature (a dimension other than the batch is unknown).
    """
    import tensorflow as tf

    features = _example_features(specs, images)
    if features is None or not targets:
        return {}
    # a dict, like every kerasflow endpoint: the function takes {"inputs": serialized}
    signature = [{EXAMPLES_INPUT: tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)}]

    def parse(inputs):
        from kerasflow.data.images import decode_images

        parsed = tf.io.parse_example(inputs[EXAMPLES_INPUT], features)
        out = {}
        for name, spec in specs.items():
            if name in images:
                out[name] = decode_images(parsed[name], *images[name])
            else:
                out[name] = tf.cast(parsed[name], spec.dtype) if spec.dtype != tf.string else parsed[name]
        return out

    endpoints = {}
    for target, info in targets.items():
        if info["method"] == "classify":
            endpoints[f"classify_{target}"] = (_classify(serve, parse, info), signature, CLASSIFY_METHOD)
        else:
            endpoints[f"regress_{target}"] = (_regress(serve, parse, info), signature, REGRESS_METHOD)
    return endpoints


def _example_features(specs: Mapping, images: Mapping[str, tuple]) -> dict | None:
    import tensorflow as tf

    features = {}
    for name, spec in specs.items():
        shape = list(spec.shape[1:])
        if name in images:
            features[name] = tf.io.FixedLenFeature([], tf.string)
        elif any(d is None for d in shape):
            return None
        elif spec.dtype == tf.string:
            features[name] = tf.io.FixedLenFeature(shape, tf.string)
        elif spec.dtype.is_integer or spec.dtype.is_bool:
            features[name] = tf.io.FixedLenFeature(shape, tf.int64)
        else:
            features[name] = tf.io.FixedLenFeature(shape, tf.float32)
    return features


def _classify(serve, parse, info) -> Callable:
    import tensorflow as tf

    names = list(info["class_names"])

    def classify(inputs):
        scores = serve(parse(inputs))[info["scores"]]
        classes = tf.tile(tf.constant([names], dtype=tf.string), [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    return classify


def _regress(serve, parse, info) -> Callable:
    import tensorflow as tf

    def regress(inputs):
        values = tf.cast(serve(parse(inputs))[info["outputs"]], tf.float32)
        return {"outputs": tf.reshape(values, [-1])}

    return regress


def serialize_examples(rows: Mapping[str, np.ndarray], images: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Rows (feature -> array) as a [batch] object array of serialized tf.Examples.

    `images` replaces image features by their encoded bytes (one per row).
    """
    from tensorflow.core.example import example_pb2

    images = images or {}
    n = len(next(iter(rows.values())))
    out = np.empty(n, dtype=object)
    for i in range(n):
        example = example_pb2.Example()
        for name, values in rows.items():
            feature = example.features.feature[name]
            if name in images:
                feature.bytes_list.value.append(bytes(images[name][i]))
                continue
            flat = np.asarray(values[i]).ravel()
            if flat.dtype.kind in "OSU":
                feature.bytes_list.value.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
            elif flat.dtype.kind in "biu":
                feature.int64_list.value.extend(int(v) for v in flat)
            else:
                feature.float_list.value.extend(float(v) for v in flat)
        out[i] = example.SerializeToString()
    return out


def set_methods(saved_model_dir: str | Path, methods: Mapping[str, str]) -> None:
    """Rewrite the `method_name` of the named signatures in `saved_model.pb`."""
    from tensorflow.core.protobuf import saved_model_pb2

    if not methods:
        return
    pb = Path(saved_model_dir) / "saved_model.pb"
    proto = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    for meta_graph in proto.meta_graphs:
        for name, method in methods.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    pb.write_bytes(proto.SerializeToString())
