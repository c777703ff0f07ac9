"""The `serving_default` signature: raw named features in, named outputs out.

Inputs are the model's `keras.Input`s by name (dict keys for dict-input
models), batch dimension dynamic. Outputs depend on each target's type:

- category: `probabilities` [batch, n] float, `class_id` [batch] int64,
  `class_name` [batch] string;
- binary (sigmoid [batch, 1]): the same three, `probabilities` being
  [P(class_names[0]), P(class_names[1])] and `class_id` = (p > 0.5);
- numeric (or any other type): the model output under the target name.

With several targets, classification outputs are prefixed `<target>/`
(`label/probabilities`, ...); numeric outputs keep the target name either way. Model
outputs without an entry in `target_info` are exported under their own name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from kerasflow.spec.errors import Problem, SpecError

_CLASSIFICATION = ("category", "binary")
_STRING_DTYPES = ("string", "str", "object")


def input_specs(model) -> dict:
    """Feature name -> `tf.TensorSpec` with a dynamic batch dimension."""
    import tensorflow as tf

    specs = {}
    for name, tensor in _named_inputs(model):
        dtype = tf.string if str(tensor.dtype) in _STRING_DTYPES else tf.as_dtype(tensor.dtype)
        shape = (None,) + tuple(tensor.shape[1:])
        specs[name] = tf.TensorSpec(shape, dtype, name=name)
    return specs


def _named_inputs(model) -> list[tuple[str, Any]]:
    import keras

    if not getattr(model, "built", False) or not getattr(model, "inputs", None):
        raise SpecError(Problem("model", "the model has no symbolic inputs to export",
                                expected="a built functional keras.Model with one keras.Input per feature",
                                received=type(model).__name__))
    named = []
    for path, tensor in keras.tree.flatten_with_path(model.input):
        name = path[-1] if path and isinstance(path[-1], str) else tensor.name
        named.append((name, tensor))
    return named


def coerce_inputs(sample_inputs: Mapping[str, Any], specs: Mapping) -> dict[str, np.ndarray]:
    """Sample rows cast to the signature's dtypes (strings as bytes objects) and ranks."""
    problems, rows = [], {}
    for name, spec in specs.items():
        if name not in sample_inputs:
            problems.append(Problem(f"export.sample_inputs.{name}", "no sample rows for this model input",
                                    expected=f"keys {sorted(specs)}", received=f"{sorted(sample_inputs)}"))
            continue
        try:
            rows[name] = _coerce(np.asarray(sample_inputs[name]), spec)
        except ValueError as err:
            problems.append(Problem(f"export.sample_inputs.{name}", str(err),
                                    expected=f"{spec.dtype.name} {_shape_text(spec.shape)}",
                                    received=f"{np.asarray(sample_inputs[name]).dtype} "
                                             f"{list(np.shape(sample_inputs[name]))}"))
    sizes = {len(v) for v in rows.values()}
    if not problems and (len(sizes) != 1 or 0 in sizes):
        problems.append(Problem("export.sample_inputs", "every input needs the same, non-zero number of rows",
                                received=str({k: len(v) for k, v in rows.items()})))
    if problems:
        raise SpecError(problems)
    return rows


def _coerce(array: np.ndarray, spec) -> np.ndarray:
    shape = list(spec.shape)
    if array.ndim == len(shape) - 1 and shape[-1] == 1:
        array = array[..., None]  # a column of scalars for a [batch, 1] input
    if array.ndim != len(shape) or any(
        want is not None and have != want for have, want in zip(array.shape[1:], shape[1:])
    ):
        raise ValueError("sample rows do not match the input's shape")
    if spec.dtype.name == "string":
        flat = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.ravel().tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"expected numbers for a {spec.dtype.name} input")
    return array.astype(spec.dtype.as_numpy_dtype)


def _shape_text(shape) -> str:
    return "[" + ", ".join("batch" if i == 0 else ("?" if d is None else str(d))
                           for i, d in enumerate(shape)) + "]"


def serving_function(model, target_info: Mapping[str, Mapping[str, Any]] | None) -> Callable:
    """A function dict(feature -> tensor) -> dict(output name -> tensor) for the signature."""
    import keras
    import tensorflow as tf

    named = _named_inputs(model)
    names = [name for name, _ in named]
    structure = model.input
    raw_names = _raw_output_names(model)
    heads = {t: head for t, (head, _) in _heads(target_info or {}, raw_names, model).items()}

    def serve(inputs):
        args = keras.tree.pack_sequence_as(structure, [inputs[n] for n in names])
        raw = model(args, training=False)
        if not isinstance(raw, Mapping):
            raw = dict(zip(raw_names, keras.tree.flatten(raw)))
        outputs = {}
        for key, tensor in raw.items():
            head = heads.get(key)
            outputs.update(head(tensor) if head else {key: tf.identity(tensor)})
        return outputs

    return serve


def _raw_output_names(model) -> list[str]:
    import keras

    if isinstance(model.output, Mapping):
        return [path[-1] for path, _ in keras.tree.flatten_with_path(model.output)]
    return list(model.output_names)


def _heads(target_info, raw_names, model) -> dict[str, tuple[Callable, tuple[str, list[str]]]]:
    import keras

    problems = []
    unknown = [t for t in target_info if t not in raw_names]
    for t in unknown:
        problems.append(Problem(f"data.target.{t}", "target has no model output of that name",
                                expected=f"one of {raw_names}", received=t))
    shapes = dict(zip(raw_names, [tuple(o.shape) for o in keras.tree.flatten(model.output)]))
    several = len(target_info) > 1
    heads = {}
    for target, info in target_info.items():
        if target in unknown or info.get("type") not in _CLASSIFICATION:
            continue
        width = shapes.get(target, (None,))[-1]
        binary_sigmoid = info.get("type") == "binary" and width == 1
        default = ["0", "1"] if info.get("type") == "binary" else [str(i) for i in range(width or 0)]
        class_names = [str(c) for c in (info.get("class_names") or default)]
        expected = 2 if binary_sigmoid else width
        if not class_names or (expected is not None and len(class_names) != expected):
            problems.append(Problem(f"data.target.{target}.class_names",
                                    "class names do not match the width of the model output",
                                    expected=f"{expected} names", received=str(class_names)))
            continue
        prefix = f"{target}/" if several else ""
        heads[target] = (_classification_head(prefix, class_names, binary_sigmoid), (prefix, class_names))
    if problems:
        raise SpecError(problems)
    return heads


def example_targets(model, target_info: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Targets TF Serving's Classify/Regress APIs can answer, from `serving_function`'s outputs.

    Returns target -> {"method": "classify", "scores": output key, "class_names": [...]}
    for classification targets, or {"method": "regress", "outputs": output key}
    for numeric targets with one value per row.
    """
    import keras

    info = dict(target_info or {})
    raw_names = _raw_output_names(model)
    shapes = dict(zip(raw_names, [tuple(o.shape) for o in keras.tree.flatten(model.output)]))
    found = {}
    for target, (_, (prefix, class_names)) in _heads(info, raw_names, model).items():
        found[target] = {"method": "classify", "scores": f"{prefix}probabilities", "class_names": class_names}
    for target, spec in info.items():
        if spec.get("type") not in _CLASSIFICATION and shapes.get(target) in ((None,), (None, 1)):
            found[target] = {"method": "regress", "outputs": target}
    return found


def _classification_head(prefix: str, class_names: list[str], binary_sigmoid: bool) -> Callable:
    import tensorflow as tf

    def head(tensor):
        probs = tf.cast(tensor, tf.float32)
        if binary_sigmoid:
            class_id = tf.cast(probs[:, 0] > 0.5, tf.int64)
            probs = tf.concat([1.0 - probs, probs], axis=-1)
        else:
            class_id = tf.argmax(probs, axis=-1, output_type=tf.int64)
        names = tf.constant(class_names, dtype=tf.string)
        return {
            f"{prefix}probabilities": probs,
            f"{prefix}class_id": class_id,
            f"{prefix}class_name": tf.gather(names, class_id),
        }

    return head


def call_eagerly(fn: Callable, rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the serving function in this process (the parity reference)."""
    import tensorflow as tf

    outputs = fn({k: tf.constant(v) for k, v in rows.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def describe(saved_model_dir: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Inputs/outputs of `serving_default` as written in saved_model.pb (dtype, shape)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    sig = proto.meta_graphs[0].signature_def["serving_default"]

    def info(tensor_info):
        shape = tensor_info.tensor_shape
        dims = None if shape.unknown_rank else [d.size for d in shape.dim]
        return {"dtype": tf.as_dtype(tensor_info.dtype).name, "shape": dims}

    return {
        "inputs": {k: info(v) for k, v in sorted(sig.inputs.items())},
        "outputs": {k: info(v) for k, v in sorted(sig.outputs.items())},
    }
