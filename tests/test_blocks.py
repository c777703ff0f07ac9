"""Blocks: each builds from YAML, runs, and reloads from a `.keras` file with
identical outputs; the custom layer round-trips its config; causal attention
never looks ahead; `trainable: false` freezes a whole block."""

from __future__ import annotations

import numpy as np
import pytest

from kerasflow.spec.registry import load_all
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec, load_spec_dict
from test_builder import output_shapes, random_batch, write_spec

keras = pytest.importorskip("keras")

# name -> variants of (features read, the node's fields, per-example output shape)
BLOCK_CASES = {
    "backbone": [(["photo"], "input: photo, application: MobileNetV3Small, weights: null, pooling: max", (576,))],
    "hub_backbone": [(["tok"], "input: tok, backbone: BertBackbone, config: {vocabulary_size: 21, num_layers: 1, "
                               "num_heads: 2, hidden_dim: 8, intermediate_dim: 16, max_sequence_length: 7}", (8,))],
    "mlp": [(["vec"], "input: vec, units: [8, 4], dropout: 0.1, batch_norm: true, kernel_regularizer: {l2: 0.001}", (4,))],
    "conv_stack": [
        (["img"], "input: img, filters: [4, 8], batch_norm: true, dropout: 0.1", (2, 2, 8)),
        (["seq"], "input: seq, filters: [4], kernel_size: 2, pool: average, convs_per_level: 2", (4, 4)),
    ],
    "rnn_stack": [
        (["seq"], "input: seq, cell: gru, units: [4, 3], bidirectional: true", (6,)),
        (["seq"], "input: seq, cell: lstm, units: [3], return_sequences: true", (8, 3)),
    ],
    "positional_embedding": [
        (["seq"], "input: seq, mode: learned", (8, 4)),
        (["seq"], "input: seq, mode: sinusoidal", (8, 4)),
    ],
    "token_and_position_embedding": [
        (["tok"], "input: tok, vocab_size: 20, embed_dim: 6, mask_zero: true, mode: sinusoidal", (6, 6)),
        (["tok"], "input: tok, vocab_size: 20, embed_dim: 6, max_length: 10", (6, 6)),
    ],
    "transformer_encoder": [
        (["seq"], "input: seq, num_heads: 2, key_dim: 2, ff_dim: 8, num_layers: 2, norm: pre, causal: true, attention_dropout: 0.1", (8, 4)),
    ],
    "transformer_decoder": [
        (["seq", "ctx"], "input: [seq, ctx], num_heads: 2, key_dim: 3, ff_dim: 8", (8, 4)),
    ],
    "repeat": [
        (["vec"], "input: vec, values: {units: [5, 3]}, node: {layer: dense, units: {each: units}}", (3,)),
        (["vec"], "input: vec, times: 2, node: {block: mlp, units: [4], batch_norm: true}", (4,)),
    ],
    "residual": [
        (["img"], "input: img, layers: [{layer: conv2d, filters: 4, kernel_size: 3, strides: 2, padding: same}], "
                  "shortcut: [{layer: conv2d, filters: 4, kernel_size: 1, strides: 2, padding: same}]", (4, 4, 4)),
        (["vec"], "input: vec, layers: [{layer: dense, units: 8, activation: relu}, {block: mlp, units: [5]}], "
                  "norm: layer, activation: relu", (5,)),
        (["img"], "input: img, layers: [{layer: conv2d, name: conv, filters: 3, kernel_size: 3, padding: same}], "
                  "norm: batch", (8, 8, 3)),
    ],
}
VARIANTS = [(name, i) for name in sorted(load_all()[1]) for i in range(len(BLOCK_CASES.get(name, [None])))]


@pytest.mark.parametrize("name, variant", VARIANTS)
def test_every_block_builds_runs_and_reloads_identically(tmp_path, name, variant):
    from kerasflow.model.builder import build_model, node_layers

    assert name in BLOCK_CASES, f"block `{name}` is registered but has no case in BLOCK_CASES"
    if name == "hub_backbone":
        pytest.importorskip("keras_hub", reason="KerasHub is an optional extra: pip install 'kerasflow[hub]'")
    features, fields, shape = BLOCK_CASES[name][variant]
    model_yaml = f"model:\n  inputs: {features}\n  nodes:\n    b: {{block: {name}, {fields}}}\n"
    model = build_model(load_spec(write_spec(tmp_path, model_yaml, features)))
    assert output_shapes(model) == {"y": (None, *shape)}
    assert node_layers(model, "b"), "a block's layers are named after its node"

    batch = random_batch(model, n=3)
    before = np.asarray(model(batch, training=False)["y"])
    model.save(tmp_path / "block.keras")
    reloaded = keras.models.load_model(tmp_path / "block.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(batch, training=False)["y"]), before)


def test_positional_embedding_config_round_trips_and_sinusoids_are_the_standard_ones():
    from kerasflow.model.embeddings import PositionalEmbedding

    layer = PositionalEmbedding("sinusoidal", max_length=16, name="pos")
    clone = PositionalEmbedding.from_config(layer.get_config())
    assert (clone.mode, clone.max_length, clone.name) == ("sinusoidal", 16, "pos")
    assert keras.saving.get_registered_name(PositionalEmbedding) == "kerasflow>PositionalEmbedding"

    zeros = np.zeros((1, 5, 4), dtype="float32")
    encoding = np.asarray(layer(zeros))[0]
    position, index = np.arange(5)[:, None], np.arange(4)[None, :]
    angle = position / np.power(10000.0, (2 * (index // 2)) / 4)
    np.testing.assert_allclose(encoding, np.where(index % 2 == 0, np.sin(angle), np.cos(angle)), atol=1e-6)

    with pytest.raises(ValueError, match="expected one of .*Received: mode='fixed'"):
        PositionalEmbedding("fixed")


@pytest.mark.parametrize("block, extra_feature", [("transformer_encoder", None), ("transformer_decoder", "ctx")])
def test_causal_attention_never_looks_ahead(tmp_path, block, extra_feature):
    from kerasflow.model.builder import build_model

    features = ["tok"] + ([extra_feature] if extra_feature else [])
    source = "[e, ctx]" if extra_feature else "e"
    model_yaml = (f"model:\n  inputs: {features}\n  nodes:\n"
                  "    e: {block: token_and_position_embedding, input: tok, vocab_size: 20, embed_dim: 4}\n"
                  f"    t: {{block: {block}, input: {source}, num_heads: 2, key_dim: 2, ff_dim: 8, causal: true, dropout: 0}}\n")
    model = build_model(load_spec(write_spec(tmp_path, model_yaml, features)))
    batch = random_batch(model, n=2)
    changed = {k: v.copy() for k, v in batch.items()}
    changed["tok"][:, 4] = (changed["tok"][:, 4] + 1) % 5
    a, b = np.asarray(model(batch)["y"]), np.asarray(model(changed)["y"])
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-5)  # earlier steps ignore step 4
    assert not np.allclose(a[:, 4], b[:, 4])


def test_untrainable_block_freezes_all_its_layers(tmp_path):
    from kerasflow.model.builder import build_model, node_layers

    model_yaml = ("model:\n  nodes:\n    body: {block: residual, input: vec, trainable: false, layers: "
                  "[{block: mlp, units: [4, 4], batch_norm: true}]}\n    head: {layer: dense, input: body, units: 1}\n")
    model = build_model(load_spec(write_spec(tmp_path, model_yaml, ["vec"])))
    frozen = node_layers(model, "body")
    assert {layer.name for layer in frozen} >= {"body.0_mlp.dense_0", "body.projection", "body.add"}
    assert not any(layer.trainable_weights for layer in frozen)
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]


def test_block_depth_can_be_a_tune_choice(tmp_path):
    from kerasflow.model.builder import build_model
    from kerasflow.spec import search_space

    model_yaml = "model:\n  nodes:\n    b: {block: mlp, input: vec, units: {tune: choice, values: [[8], [16, 8]]}}\n"
    loaded = load_spec(write_spec(tmp_path, model_yaml, ["vec"]))
    with pytest.raises(SpecError, match=r"model\.nodes\.b\.units: unresolved `tune:` marker"):
        build_model(loaded)
    model = build_model(load_spec_dict(search_space.substitute(loaded.raw, {})).spec)  # what `train` does
    assert [layer.name for layer in model.layers[1:]] == ["b.dense_0"]


@pytest.mark.parametrize("model_yaml, match", [
    ("    b: {block: transformer_decoder, input: vec, num_heads: 2, key_dim: 2, ff_dim: 4}\n",
     r"model\.nodes\.b: transformer_decoder takes 2 inputs, received 1"),
    ("    b: {block: residual, input: vec, layers: [{layer: dense, units: 2, input: vec}]}\n",
     r"model\.nodes\.b: layers\[0\] reads the previous layer of the chain"),
    ("    b: {block: residual, input: vec, layers: [{layer: dens, units: 2}]}\n",
     r"model\.nodes\.b\.layers\[0\]\.layer: unknown layer `dens`\n(.*\n)*\s+hint: did you mean `dense`"),
    ("    b: {block: mlp, input: vec, units: []}\n", r"model\.nodes\.b\.units: invalid value"),
    ("    b: {block: rnn_stack, input: vec, cell: rnn, units: [2]}\n", r"model\.nodes\.b\.cell: invalid value"),
])
def test_invalid_blocks_are_spec_errors_at_validation(tmp_path, model_yaml, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, "model:\n  nodes:\n" + model_yaml, ["vec"]))


@pytest.mark.parametrize("model_yaml, match", [
    ("    b: {block: transformer_encoder, input: vec, num_heads: 2, key_dim: 2, ff_dim: 4}\n",
     r"model\.nodes\.b: transformer_encoder: expected the input as \(batch, steps, features\).*got \(None, 6\)"),
    ("    r: {layer: reshape, input: vec, target_shape: [2, 3, 1]}\n"
     "    b: {block: residual, input: r, layers: [{layer: max_pooling2d, pool_size: [2, 1]}]}\n",
     r"model\.nodes\.b: residual: the chain gives shape \(None, 1, 3, 1\) but the skip is \(None, 2, 3, 1\).*add a `shortcut`"),
    ("    b: {block: positional_embedding, input: vec}\n", r"model\.nodes\.b: positional_embedding: .*\(batch, steps, features\)"),
])
def test_block_shape_errors_name_the_node(tmp_path, model_yaml, match):
    from kerasflow.model.builder import build_model

    with pytest.raises(SpecError, match=match):
        build_model(load_spec(write_spec(tmp_path, "model:\n  nodes:\n" + model_yaml, ["vec"])))


def test_block_defaults_are_keras_defaults(tmp_path):
    """A block left at its defaults builds what plain Keras layers would: biases
    kept under batch norm, Keras' BatchNormalization momentum and
    LayerNormalization epsilon, no dropout on the attention weights."""
    from kerasflow.model.builder import build_model

    stacks = ("model:\n  nodes:\n    c: {block: conv_stack, input: img, filters: [3], batch_norm: true}\n"
              "    m: {block: mlp, input: c, units: [4], batch_norm: true}\n")
    transformer = "model:\n  nodes:\n    t: {block: transformer_encoder, input: seq, num_heads: 2, key_dim: 4, ff_dim: 8}\n"
    layers = {layer.name: layer for model_yaml, feature in ((stacks, "img"), (transformer, "seq"))
              for layer in build_model(load_spec(write_spec(tmp_path, model_yaml, [feature]))).layers}
    assert layers["c.conv_0"].use_bias and layers["m.dense_0"].use_bias
    assert layers["c.norm_0"].momentum == keras.layers.BatchNormalization().momentum
    attention = layers["t.0.attention"]
    assert (attention._key_dim, attention._dropout) == (4, 0.0)
    assert layers["t.0.attention_norm"].epsilon == keras.layers.LayerNormalization().epsilon
    assert layers["c.pool_0"].padding == keras.layers.MaxPooling2D().padding


def test_block_choices_are_options(tmp_path):
    from kerasflow.model.builder import build_model

    mlp = "model:\n  nodes:\n    m: {block: mlp, input: vec, units: [4], batch_norm: true, use_bias: false}\n"
    transformer = ("model:\n  nodes:\n    t: {block: transformer_encoder, input: seq, num_heads: 2, key_dim: 4, "
                   "ff_dim: 8, attention_dropout: 0.2, dropout: 0.3, epsilon: 1.0e-6}\n")
    layers = {layer.name: layer for model_yaml, feature in ((mlp, "vec"), (transformer, "seq"))
              for layer in build_model(load_spec(write_spec(tmp_path, model_yaml, [feature]))).layers}
    assert not layers["m.dense_0"].use_bias
    assert layers["t.0.attention"]._dropout == 0.2 and layers["t.0.attention_dropout"].rate == 0.3
    assert layers["t.0.attention_norm"].epsilon == 1e-6


def test_transformer_key_dim_is_required(tmp_path):
    model_yaml = "model:\n  nodes:\n    t: {block: transformer_encoder, input: seq, num_heads: 2, ff_dim: 8}\n"
    with pytest.raises(SpecError, match=r"model\.nodes\.t\.key_dim: missing required key"):
        load_spec(write_spec(tmp_path, model_yaml, ["seq"]))


def test_repeat_expands_to_ordinary_nodes(tmp_path):
    from kerasflow.model.builder import build_graph

    model_yaml = ("model:\n  nodes:\n    h: {block: repeat, input: vec, values: {units: [8, 4, 2], act: [relu, tanh, relu]}, "
                  "node: {layer: dense, units: {each: units}, activation: {each: act}}}\n"
                  "    out: {layer: dense, input: h, units: 1}\n")
    built = build_graph(load_spec(write_spec(tmp_path, model_yaml, ["vec"])))
    assert list(built.paths) == ["h_0", "h_1", "h", "out"]
    layers = {layer.name: layer for layer in built.model.layers}
    assert [(layers[n].units, layers[n].activation.__name__) for n in ("h_0", "h_1", "h")] == \
        [(8, "relu"), (4, "tanh"), (2, "relu")]


@pytest.mark.parametrize("model_yaml, match", [
    ("    h: {block: repeat, input: vec, values: {u: [8, 4], a: [relu]}, node: {layer: dense, units: {each: u}}}\n",
     r"model\.nodes\.h: .*lists of equal length.*u: 2, a: 1"),
    ("    h: {block: repeat, input: vec, values: {u: [8, 4]}, node: {layer: dense, units: {each: v}}}\n",
     r"`\{each: v\}` names no key of `values`; expected one of: u"),
    ("    h: {block: repeat, input: vec, times: 2, node: {layer: dense, units: 3, input: vec}}\n",
     r"reads the previous repetition"),
    ("    h_0: {layer: dense, input: vec, units: 2}\n"
     "    h: {block: repeat, input: h_0, times: 2, node: {layer: dense, units: 3}}\n",
     r"model\.nodes\.h: repeat `h` names its repetitions .* `h_0` is also a declared node"),
])
def test_invalid_repeats_are_spec_errors(tmp_path, model_yaml, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, "model:\n  nodes:\n" + model_yaml, ["vec"]))


def test_render_shows_the_repeated_nodes(tmp_path):
    import yaml

    from kerasflow import api

    model_yaml = ("model:\n  sequential:\n    - {block: repeat, name: h, values: {units: [8, 4]}, "
                  "node: {layer: dense, units: {each: units}}}\n    - {layer: dense, name: out, units: 1}\n")
    rendered = yaml.safe_load(api.render(write_spec(tmp_path, model_yaml, ["vec"])))
    nodes = rendered["model"]["nodes"]
    assert [(n, nodes[n]["input"], nodes[n]["units"]) for n in nodes] == [("h_0", "vec", 8), ("h", "h_0", 4),
                                                                          ("out", "h", 1)]
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump(rendered))
    assert load_spec(tmp_path / "rendered.yaml").spec.model.graph().keys() == nodes.keys()  # renders reload
