"""The model builder: every registered layer builds from YAML, graph wiring
(inputs, outputs, order, sequential, trainable, seeds), errors at node paths,
the seed architectures in specs/models/, and `plan`."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from kerasflow.spec.registry import LAYERS, load_all
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

keras = pytest.importorskip("keras")

MODELS = REPO / "specs" / "models"
TRAINING = "training: {loss: mse, stages: [{name: main, epochs: 1}]}\n"
FEATURES = {
    "vec": "{type: numeric, shape: [6]}",
    "vec2": "{type: numeric, shape: [6]}",
    "seq": "{type: numeric, shape: [8, 4]}",
    "ctx": "{type: numeric, shape: [5, 4]}",
    "img": "{type: numeric, shape: [8, 8, 3]}",
    "photo": "{type: numeric, shape: [32, 32, 3]}",  # the smallest keras.applications input
    "tok": "{type: sequence, length: 6, vocab_size: 20}",
    "ids": "{type: sequence, length: 1, vocab_size: 5}",
    "text": "{type: text}",  # fed as a raw string input (see _string_inputs)
}


def write_spec(tmp_path: Path, model: str, features: list[str], target: str = "{name: y, type: numeric}",
               extra: str = "") -> Path:
    feats = "\n".join(f"    {f}: {FEATURES[f]}" for f in features)
    path = tmp_path / "spec.yaml"
    path.write_text(f"kerasflow: 1\nname: t\n{extra}data:\n  source: {{type: npz, path: x.npz}}\n  features:\n{feats}\n"
                    f"  target: {target}\n{model}{TRAINING}")
    return path


def random_batch(model, n: int = 2, seed: int = 0) -> dict:
    """Random inputs of the right dtype per model input (ids < 5, strings from a tiny vocabulary)."""
    rng = np.random.default_rng(seed)
    batch = {}
    for tensor in model.inputs:
        shape = (n,) + tuple(tensor.shape[1:])
        if tensor.dtype == "string":
            batch[tensor.name] = rng.choice(np.array(["a b", "b", "c a", "zz"], dtype=object), size=shape)
        elif "int" in str(tensor.dtype):
            batch[tensor.name] = rng.integers(0, 5, size=shape).astype(tensor.dtype)
        else:
            batch[tensor.name] = rng.normal(size=shape).astype(tensor.dtype)
    return batch


def output_shapes(model) -> dict:
    return {name: tuple(tensor.shape) for name, tensor in model.output.items()}


def _string_inputs(names: list[str]):
    """Raw string tensors for cases whose node reads text itself (no feature preprocessing)."""
    return {"text": keras.Input(shape=(1,), dtype="string", name="text")} if names == ["text"] else None


# name -> (features read, the node's fields, per-example output shape)
LAYER_CASES = {
    "dense": (["vec"], "input: vec, units: 3, activation: relu, kernel_regularizer: {l2: 0.01}", (3,)),
    "dropout": (["vec"], "input: vec, rate: 0.5", (6,)),
    "spatial_dropout1d": (["seq"], "input: seq, rate: 0.2", (8, 4)),
    "gaussian_noise": (["vec"], "input: vec, stddev: 0.1", (6,)),
    "activation": (["vec"], "input: vec, activation: gelu", (6,)),
    "batch_normalization": (["vec"], "input: vec, momentum: 0.9", (6,)),
    "layer_normalization": (["seq"], "input: seq", (8, 4)),
    "flatten": (["seq"], "input: seq", (32,)),
    "reshape": (["vec"], "input: vec, target_shape: [-1, 3]", (2, 3)),
    "repeat_vector": (["vec"], "input: vec, n: 3", (3, 6)),
    "embedding": (["tok"], "input: tok, input_dim: 20, output_dim: 4, mask_zero: true", (6, 4)),
    "conv1d": (["seq"], "input: seq, filters: 5, kernel_size: 3, padding: causal, dilation_rate: 2", (8, 5)),
    "conv2d": (["img"], "input: img, filters: 4, kernel_size: [3, 3], padding: same", (8, 8, 4)),
    "separable_conv1d": (["seq"], "input: seq, filters: 5, kernel_size: 3, padding: same", (8, 5)),
    "separable_conv2d": (["img"], "input: img, filters: 4, kernel_size: 3", (6, 6, 4)),
    "max_pooling1d": (["seq"], "input: seq", (4, 4)),
    "max_pooling2d": (["img"], "input: img, pool_size: [2, 4]", (4, 2, 3)),
    "average_pooling1d": (["seq"], "input: seq, pool_size: 4", (2, 4)),
    "average_pooling2d": (["img"], "input: img", (4, 4, 3)),
    "global_max_pooling1d": (["seq"], "input: seq", (4,)),
    "global_max_pooling2d": (["img"], "input: img", (3,)),
    "global_average_pooling1d": (["seq"], "input: seq, keepdims: true", (1, 4)),
    "global_average_pooling2d": (["img"], "input: img", (3,)),
    "lstm": (["seq"], "input: seq, units: 5", (5,)),
    "gru": (["seq"], "input: seq, units: 5, return_sequences: true", (8, 5)),
    "simple_rnn": (["seq"], "input: seq, units: 2, go_backwards: true", (2,)),
    "bidirectional": (["seq"], "input: seq, rnn: {layer: gru, units: 3}", (6,)),
    "multi_head_attention": (["seq", "ctx"], "input: seq, value: ctx, num_heads: 2, key_dim: 3", (8, 4)),
    "add": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "subtract": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "multiply": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "average": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "maximum": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "minimum": (["vec", "vec2"], "input: [vec, vec2]", (6,)),
    "concatenate": (["vec", "vec2"], "inputs: [vec, vec2]", (12,)),
    "rescaling": (["img"], "input: img, scale: 0.0039, offset: -1", (8, 8, 3)),
    "normalization": (["vec"], "input: vec, mean: [0, 1, 2, 3, 4, 5], variance: [1, 1, 1, 4, 4, 4]", (6,)),
    "string_lookup": (["text"], "input: text, vocabulary: [a, b, c], output_mode: one_hot", (4,)),
    "integer_lookup": (["ids"], "input: ids, vocabulary: [1, 2, 3]", (1,)),
    "text_vectorization": (["text"], "input: text, vocabulary: [a, b], output_sequence_length: 5", (5,)),
    "category_encoding": (["ids"], "input: ids, num_tokens: 5, output_mode: one_hot", (5,)),
    "hashing": (["ids"], "input: ids, num_bins: 3", (1,)),
    "discretization": (["vec"], "input: vec, bin_boundaries: [-1, 0, 1]", (6,)),
    "resizing": (["img"], "input: img, height: 4, width: 5", (4, 5, 3)),
    "center_crop": (["img"], "input: img, height: 4, width: 4", (4, 4, 3)),
    "random_flip": (["img"], "input: img, mode: horizontal", (8, 8, 3)),
    "random_rotation": (["img"], "input: img, factor: 0.1", (8, 8, 3)),
    "random_zoom": (["img"], "input: img, height_factor: 0.2", (8, 8, 3)),
    "random_translation": (["img"], "input: img, height_factor: 0.1, width_factor: 0.1", (8, 8, 3)),
    "random_contrast": (["img"], "input: img, factor: 0.2", (8, 8, 3)),
    "random_brightness": (["img"], "input: img, factor: 0.2", (8, 8, 3)),
}


@pytest.mark.parametrize("name", sorted(load_all()[0]))
def test_every_registered_layer_builds_from_yaml_and_runs(tmp_path, name):
    from kerasflow.model.builder import build_model

    assert name in LAYER_CASES, f"layer `{name}` is registered but has no case in LAYER_CASES"
    features, fields, shape = LAYER_CASES[name]
    path = write_spec(tmp_path, f"model:\n  inputs: {features}\n  nodes:\n    n: {{layer: {name}, {fields}}}\n", features)
    model = build_model(load_spec(path), input_tensors=_string_inputs(features))
    assert output_shapes(model) == {"y": (None, *shape)}
    out = model(random_batch(model), training=False)["y"]
    assert tuple(out.shape) == (2, *shape)
    assert model.get_layer("n").__class__.__name__ == LAYERS[name].target


def test_cases_name_only_registered_layers():
    assert set(LAYER_CASES) <= set(LAYERS)


def test_layer_arguments_reach_keras(tmp_path):
    from kerasflow.model.builder import build_model

    model = "model:\n  nodes:\n    n: {layer: dense, input: vec, units: 3, use_bias: false, activation: tanh}\n"
    layer = build_model(load_spec(write_spec(tmp_path, model, ["vec"]))).get_layer("n")
    assert (layer.units, layer.use_bias, layer.activation.__name__) == (3, False, "tanh")


# ---------------------------------------------------------------- graph wiring

GRAPH = """model:
  inputs: [vec, seq]
  nodes:
    joined: {layer: concatenate, input: [left, right]}
    right: {layer: dense, input: pooled, units: 3}
    pooled: {layer: global_average_pooling1d, input: seq}
    left: {layer: dense, input: vec, units: 4, trainable: false}
    a: {layer: dense, input: joined, units: 2, activation: softmax}
    b: {layer: dense, input: joined, units: 1}
  outputs: {kind: a, amount: b}
"""


def test_multi_input_multi_output_graph_in_any_declaration_order(tmp_path):
    from kerasflow.model.builder import build_model, node_layers

    target = "[{name: kind, type: category, num_classes: 2}, {name: amount, type: numeric}]"
    model = build_model(load_spec(write_spec(tmp_path, GRAPH, ["vec", "seq"], target=target)))
    assert sorted(t.name for t in model.inputs) == ["seq", "vec"]
    assert output_shapes(model) == {"kind": (None, 2), "amount": (None, 1)}
    out = model(random_batch(model, n=3))
    np.testing.assert_allclose(np.sum(out["kind"], axis=1), 1.0, rtol=1e-5)
    frozen = node_layers(model, "left")
    assert [layer.name for layer in frozen] == ["left"] and not frozen[0].trainable
    assert len(model.trainable_weights) == 6  # right, a, b (kernel + bias); left is frozen


def test_sequential_chain_names_nodes_and_outputs_the_last(tmp_path):
    from kerasflow.model.builder import build_graph

    model = ("model:\n  sequential:\n    - {layer: dense, units: 8, activation: relu}\n"
             "    - {layer: dropout, rate: 0.1}\n    - {layer: dense, name: head, units: 1}\n")
    built = build_graph(load_spec(write_spec(tmp_path, model, ["vec"])))
    assert list(built.tensors) == ["dense_0", "dropout_1", "head"]
    assert built.paths["head"] == "model.sequential[2]"
    assert output_shapes(built.model) == {"y": (None, 1)}


def test_without_the_data_package_inputs_are_plain_and_unpreprocessed(tmp_path, monkeypatch):
    from kerasflow.model.builder import build_model

    monkeypatch.setitem(sys.modules, "kerasflow.data.features", None)  # as if kerasflow.data were absent
    model = "model:\n  inputs: [vec, tok]\n  nodes:\n    n: {layer: embedding, input: tok, input_dim: 20, output_dim: 2}\n"
    built = build_model(load_spec(write_spec(tmp_path, model, ["vec", "tok"])))
    assert {t.name: (tuple(t.shape), t.dtype) for t in built.inputs} == {
        "vec": ((None, 6), "float32"), "tok": ((None, 6), "int32")}
    assert [layer.name for layer in built.layers] in (["vec", "tok", "n"], ["tok", "vec", "n"])


def test_spec_seed_makes_initial_weights_reproducible(tmp_path):
    from kerasflow.model.builder import build_model

    model = "model:\n  sequential:\n    - {layer: dense, units: 4}\n"
    first = build_model(load_spec(write_spec(tmp_path, model, ["vec"], extra="seed: 7\n"))).get_weights()[0]
    again = build_model(load_spec(write_spec(tmp_path, model, ["vec"], extra="seed: 7\n"))).get_weights()[0]
    other = build_model(load_spec(write_spec(tmp_path, model, ["vec"], extra="seed: 8\n"))).get_weights()[0]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_mixed_precision_outputs_stay_float32(tmp_path):
    from kerasflow.model.builder import build_model

    model = "model:\n  sequential:\n    - {layer: dense, units: 4}\n"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        built = build_model(load_spec(write_spec(tmp_path, model, ["vec"])))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert built.outputs[0].dtype == "float32"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("model, match", [
    ("model:\n  nodes:\n    h1: {layer: dense, input: vec, units: 8}\n    h2: {layer: conv2d, input: h1, filters: 4, kernel_size: 3}\n",
     r"model\.nodes\.h2: conv2d: expected input rank at least 4, got \(None, 8\)"),
    ("model:\n  inputs: [vec]\n  sequential:\n    - {layer: lstm, units: 3}\n",
     r"model\.sequential\[0\]: lstm: expected input rank 3, got \(None, 6\)"),
    ("model:\n  nodes:\n    r: {layer: reshape, input: vec, target_shape: [4, 2]}\n",
     r"model\.nodes\.r: reshape: .*total size.*\n\s+received: input shape \(None, 6\)"),
    ("model:\n  inputs: [vec, seq]\n  nodes:\n    s: {layer: add, input: [vec, seq]}\n",
     r"model\.nodes\.s: add: .*incompatible shapes.*\n\s+received: input shapes \(None, 6\), \(None, 8, 4\)"),
])
def test_shape_mismatch_names_the_node_path_and_shapes(tmp_path, model, match):
    from kerasflow.model.builder import build_model

    with pytest.raises(SpecError, match=match) as info:
        build_model(load_spec(write_spec(tmp_path, model, ["vec", "seq"])))
    assert "spec.yaml:" in str(info.value.problems[0].location)
    assert "Traceback" not in str(info.value)


def test_unresolved_tune_markers_are_refused(tmp_path):
    from kerasflow.model.builder import build_model

    model = "model:\n  nodes:\n    h: {layer: dense, input: vec, units: {tune: int, min: 4, max: 8}}\n"
    with pytest.raises(SpecError, match=r"model\.nodes\.h\.units: unresolved `tune:` marker") as info:
        build_model(load_spec(write_spec(tmp_path, model, ["vec"])))
    assert "--set model.nodes.h.units=" in str(info.value)


def test_model_imports_are_the_only_code_a_spec_runs(tmp_path, monkeypatch):
    from kerasflow.model.builder import build_model

    (tmp_path / "kf_custom_layers.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = "model:\n  imports: [kf_custom_layers]\n  sequential:\n    - {layer: dense, units: 2}\n"
    with pytest.raises(SpecError, match=r"model\.imports\[0\]: importing `kf_custom_layers` would run its code"):
        build_model(load_spec(write_spec(tmp_path, model, ["vec"])))  # no consent: refused
    assert "kf_custom_layers" not in sys.modules
    monkeypatch.setenv("KERASFLOW_ALLOW_IMPORTS", "1")
    build_model(load_spec(write_spec(tmp_path, model, ["vec"])))
    assert sys.modules["kf_custom_layers"].LOADED

    missing = "model:\n  imports: [json, kf_missing_module]\n  sequential:\n    - {layer: dense, units: 2}\n"
    with pytest.raises(SpecError, match=r"model\.imports\[1\]: cannot import `kf_missing_module`"):
        build_model(load_spec(write_spec(tmp_path, missing, ["vec"])))

    lam = "model:\n  sequential:\n    - {layer: lambda, function: 'lambda x: x'}\n"
    with pytest.raises(SpecError, match=r"unknown layer `lambda`"):
        load_spec(write_spec(tmp_path, lam, ["vec"]))


@pytest.mark.parametrize("model, match", [
    ("    n: {layer: dense, input: [vec, vec2], units: 2}\n", r"model\.nodes\.n: dense takes one input, received 2"),
    ("    n: {layer: add, input: [vec]}\n", r"add merges two or more inputs, received 1"),
    ("    n: {layer: bidirectional, input: vec, rnn: {layer: dense, units: 2}}\n",
     r"model\.nodes\.n\.rnn: invalid value\n\s+expected: a recurrent layer"),
    ("    n: {layer: multi_head_attention, input: vec, value: nope, num_heads: 1, key_dim: 2}\n",
     r"model\.nodes\.n\.value: `nope` is neither an input nor a node"),
    ("    n: {layer: conv2d, input: vec, filters: 0, kernel_size: 3}\n", r"model\.nodes\.n\.filters: invalid value"),
    ("    n: {layer: dense, input: vec, units: 2, activation: rellu}\n", r"did you mean `relu`"),
])
def test_invalid_layer_params_are_spec_errors_at_validation(tmp_path, model, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, "model:\n  inputs: [vec, vec2]\n  nodes:\n" + model, ["vec", "vec2"]))


# ---------------------------------------------------------------- seed architectures and plan

DIGITS = "data:\n  source: {type: sklearn, name: digits}\n  target: {name: label, type: category, num_classes: 10}\n"
FRAGMENTS = {
    # fragment: (features, target, expected output shape)
    "mnist_mlp": ("{image: {type: image, height: 28, width: 28, channels: 1}}", None, (10,)),
    "digits_mlp": ("{pixels: {type: numeric, shape: [64]}}", None, (10,)),
    "digits_cnn": ("{image: {type: image, height: 8, width: 8, channels: 1, rescale: 0.0625}}", None, (10,)),
    "digits_transformer": ("{image: {type: image, height: 8, width: 8, channels: 1, rescale: 0.0625}}", None, (10,)),
    "sunspots_lstm": ("{series: {type: timeseries, input_width: 24}}", "{name: next, type: numeric}", (1,)),
    "sunspots_gru": ("{series: {type: timeseries, input_width: 24}}", "{name: next, type: numeric}", (1,)),
    "sequence_transformer": ("{source: {type: sequence, length: 8, vocab_size: 10}}",
                             "{name: target, type: sequence, num_classes: 10}", (8, 10)),
    "seq2seq_transformer": ("{source: {type: sequence, length: 8, vocab_size: 10}, "
                            "decoder_input: {type: sequence, length: 8, vocab_size: 11}}",
                            "{name: target, type: sequence, num_classes: 10}", (8, 10)),
    "two_input": ("{sepal: {type: numeric, shape: [2]}, petal: {type: numeric, shape: [2]}}",
                  "{name: species, type: category, num_classes: 3}", (3,)),
}


def fragment_spec(tmp_path: Path, name: str) -> Path:
    features, target, _ = FRAGMENTS[name]
    path = tmp_path / f"{name}.yaml"
    source = "{type: keras, name: mnist}" if name == "mnist_mlp" else "{type: sklearn, name: digits}"
    path.write_text(f"kerasflow: 1\nname: {name}\nextends: {MODELS / (name + '.yaml')}\n"
                    f"data:\n  source: {source}\n  features: {features}\n"
                    f"  target: {target or '{name: label, type: category, num_classes: 10}'}\n{TRAINING}")
    return path


def test_every_model_fragment_has_a_build_case():
    assert sorted(p.stem for p in MODELS.glob("*.yaml")) == sorted(FRAGMENTS)


@pytest.mark.parametrize("name", sorted(FRAGMENTS))
def test_seed_architecture_builds_and_runs(tmp_path, name):
    from kerasflow.model.builder import build_model

    loaded = load_spec(fragment_spec(tmp_path, name))
    model = build_model(loaded)
    (target,) = [t.name for t in loaded.spec.data.targets()]
    assert output_shapes(model) == {target: (None, *FRAGMENTS[name][2])}
    out = model(random_batch(model))[target]
    assert np.all(np.isfinite(np.asarray(out)))


def test_plan_of_the_seed_mnist_mlp_prints_its_parameter_count(tmp_path):
    from kerasflow.model.plan import plan_model

    text = plan_model(load_spec(fragment_spec(tmp_path, "mnist_mlp")))
    assert "Total params: 109,386" in text
    assert re.search(r"hidden1\s+dense\s+\(None, 128\)\s+100,480\s+model\.sequential\[1\]", text)
    assert "Parameter memory: 427.29 KB" in text
    assert re.search(r"ms at batch 8 .*; about \d+ ms at batch 32 \(scaled linearly: an estimate\)", text)
    assert re.search(r"hidden1 \(Dense\)\s+│ \(None, 128\)\s+│\s+100,480 │", text)  # "Param #" not cropped
    assert "depend on vocabularies" not in text


def test_plan_says_when_parameter_counts_depend_on_data(tmp_path):
    from kerasflow.model.plan import plan_model

    model_yaml = "model:\n  sequential:\n    - {layer: dense, units: 2}\n"
    path = tmp_path / "spec.yaml"
    path.write_text("kerasflow: 1\nname: t\ndata:\n  source: {type: csv, path: x.csv}\n  features:\n"
                    "    colour: {type: category}\n  target: {name: y, type: numeric}\n" + model_yaml + TRAINING)
    assert "parameter counts after colour depend on vocabularies learned from the data" in plan_model(load_spec(path))
    path.write_text(path.read_text().replace("colour: {type: category}",
                                             "colour: {type: category, vocabulary: [red, blue], num_oov_indices: 0}"))
    text = plan_model(load_spec(path))
    assert "depend on vocabularies" not in text and "Synthetic step: failed" not in text
    assert "Total params: 6" in text  # two one-hot columns into Dense(2)


def test_plan_fills_tune_markers_with_defaults_and_handles_plot(tmp_path):
    from kerasflow.model.plan import plan_model

    model = ("model:\n  nodes:\n    h: {layer: dense, input: vec, units: {tune: int, min: 4, max: 64}}\n"
             "    out: {layer: dense, input: h, units: {tune: choice, values: [2, 3]}}\n")
    plot = tmp_path / "model.png"
    text = plan_model(load_spec(write_spec(tmp_path, model, ["vec"])), plot=str(plot))
    assert "model.nodes.h.units = 4" in text and "model.nodes.out.units = 2" in text
    assert "Total params: 38 " in text  # 6*4+4 + 4*2+2
    if plot.exists():
        assert f"Plot written to {plot}" in text
    else:
        assert "pip install pydot" in text and "apt-get install graphviz" in text


@pytest.mark.slow
def test_cli_start_up_prints_no_tensorflow_noise(tmp_path):
    """TensorFlow's C++ start-up lines (oneDNN, cudart_stub, cuInit errors on a
    CPU-only machine) are not shown; the command's own output is."""
    import subprocess
    import sys

    path = tmp_path / "spec.yaml"
    path.write_text("kerasflow: 1\nname: t\ndata:\n  source: {type: npz, path: x.npz}\n  features:\n"
                    "    vec: {type: numeric, shape: [6]}\n  target: {name: y, type: numeric}\n"
                    "model:\n  sequential:\n    - {layer: dense, units: 1}\n" + TRAINING)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    res = subprocess.run([sys.executable, "-m", "kerasflow.cli", "plan", str(path)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "Total params: 7" in res.stdout
    for noise in ("I0000", "cudart_stub", "cuInit", "absl::InitializeLog"):
        assert noise not in res.stderr, res.stderr
