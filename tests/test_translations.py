"""Official Keras examples written as kerasflow specs, each compared with the
same model written in Keras code here (the example's code, with layer names
added so weights can be copied by name): equal parameter counts, and equal
outputs for the same weights on the same input. Synthetic inputs of the
example's shapes; image sizes are reduced where the model allows any size.

A spec is written as a Keras user would, without workarounds; where a
translation differs from the example's code, the test says why.
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasflow.spec.loader import load_spec

keras = pytest.importorskip("keras")
layers = keras.layers
ops = keras.ops

TRAINING = "training:\n  loss: {loss}\n  stages: [{{name: main, epochs: 1}}]\n"


def spec_model(tmp_path, data: str, model: str, loss: str, stats: dict | None = None):
    """The Keras model kerasflow builds from a spec (validated first, as `kerasflow validate` does)."""
    from kerasflow.model.builder import build_model

    path = tmp_path / "spec.yaml"
    path.write_text("kerasflow: 1\nname: translation\ndata:\n  source: {type: npz, path: data.npz}\n"
                    + data + model + TRAINING.format(loss=loss))
    return build_model(load_spec(path), stats)


def copy_weights(source, target, composite: dict[str, list[str]] | None = None) -> None:
    """Give every layer of `target` with weights the weights of the `source` layer
    of the same name (or, for a composite layer of an example, the weights of the
    listed source layers in order). Every weighted source layer is used once."""
    composite = composite or {}
    used = []
    for layer in target.layers:
        if not layer.weights:
            continue
        names = composite.get(layer.name, [layer.name])
        layer.set_weights([w for n in names for w in source.get_layer(n).get_weights()])
        used += names
    weighted = sorted(layer.name for layer in source.layers if layer.weights)
    assert sorted(used) == weighted, "weights not copied one to one"


def assert_same_model(ours, theirs, inputs, their_inputs=None, composite=None, atol=1e-5):
    """Equal parameter counts, and equal outputs once `theirs` has our (perturbed) weights."""
    assert ours.count_params() == theirs.count_params()
    rng = np.random.default_rng(1)
    for variable in ours.trainable_weights:  # away from initial values, so a wrong copy shows
        variable.assign(variable.numpy() + rng.normal(scale=0.05, size=variable.shape).astype("float32"))
    copy_weights(ours, theirs, composite)
    a = ours(inputs, training=False)
    b = theirs(inputs if their_inputs is None else their_inputs, training=False)
    if not isinstance(b, dict):
        a, b = {"": next(iter(a.values()))}, {"": b}
    assert set(a) == set(b)
    for key in b:
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=atol, rtol=1e-4)
    return a


def test_mnist_convnet(tmp_path):
    """keras.io/examples/vision/mnist_convnet (34,826 params)."""
    ours = spec_model(tmp_path, "  features:\n    image: {type: numeric, shape: [28, 28, 1]}\n"
                      "  target: {name: digit, type: category, num_classes: 10}\n", """\
model:
  sequential:
    - {layer: conv2d, name: conv_1, filters: 32, kernel_size: [3, 3], activation: relu}
    - {layer: max_pooling2d, name: pool_1, pool_size: [2, 2]}
    - {layer: conv2d, name: conv_2, filters: 64, kernel_size: [3, 3], activation: relu}
    - {layer: max_pooling2d, name: pool_2, pool_size: [2, 2]}
    - {layer: flatten, name: flatten}
    - {layer: dropout, name: dropout, rate: 0.5}
    - {layer: dense, name: out, units: 10, activation: softmax}
""", "sparse_categorical_crossentropy")
    theirs = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", name="conv_1"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu", name="conv_2"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax", name="out"),
    ])
    assert theirs.count_params() == 34_826
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    assert_same_model(ours, theirs, {"image": x}, x)


XCEPTION_BLOCK = """\
    block_{size}:
      block: residual
      input: {previous}
      layers:
        - {{layer: activation, name: relu_1, activation: relu}}
        - {{layer: separable_conv2d, name: sepconv_1, filters: {size}, kernel_size: 3, padding: same}}
        - {{layer: batch_normalization, name: bn_1}}
        - {{layer: activation, name: relu_2, activation: relu}}
        - {{layer: separable_conv2d, name: sepconv_2, filters: {size}, kernel_size: 3, padding: same}}
        - {{layer: batch_normalization, name: bn_2}}
        - {{layer: max_pooling2d, name: pool, pool_size: 3, strides: 2, padding: same}}
      shortcut:
        - {{layer: conv2d, name: project, filters: {size}, kernel_size: 1, strides: 2, padding: same}}
"""


def test_image_classification_from_scratch_xception(tmp_path):
    """keras.io/examples/vision/image_classification_from_scratch: the small
    Xception with residual projection shortcuts, a logits output and
    BinaryCrossentropy(from_logits=True). 180x180 images in the example; the
    model takes any size, so 32x32 here (same parameter count)."""
    blocks = "".join(XCEPTION_BLOCK.format(size=s, previous=p) for s, p in
                     ((256, "entry_relu"), (512, "block_256"), (728, "block_512")))
    ours = spec_model(tmp_path, "  features:\n    image: {type: numeric, shape: [32, 32, 3]}\n"
                      "  target: {name: label, type: binary}\n", f"""\
model:
  nodes:
    rescale: {{layer: rescaling, input: image, scale: 0.00392156862745098}}
    entry_conv: {{layer: conv2d, input: rescale, filters: 128, kernel_size: 3, strides: 2, padding: same}}
    entry_bn: {{layer: batch_normalization, input: entry_conv}}
    entry_relu: {{layer: activation, input: entry_bn, activation: relu}}
{blocks}    exit_sepconv: {{layer: separable_conv2d, input: block_728, filters: 1024, kernel_size: 3, padding: same}}
    exit_bn: {{layer: batch_normalization, input: exit_sepconv}}
    exit_relu: {{layer: activation, input: exit_bn, activation: relu}}
    pool: {{layer: global_average_pooling2d, input: exit_relu}}
    dropout: {{layer: dropout, input: pool, rate: 0.25}}
    logits: {{layer: dense, input: dropout, units: 1, activation: null}}
  outputs: {{label: logits}}
""", "{type: binary_crossentropy, from_logits: true}")

    theirs = keras_io_xception([f"block_{size}" for size in (256, 512, 728)])

    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert_same_model(ours, theirs, {"image": x}, x, atol=1e-4)


def keras_io_xception(block_names: list[str]):
    """keras.io/examples/vision/image_classification_from_scratch's
    make_model(input_shape=(32, 32, 3), num_classes=2), its layers named as the
    spec's nodes: the three residual blocks as `block_names`."""
    inputs = keras.Input(shape=(32, 32, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(128, 3, strides=2, padding="same", name="entry_conv")(x)
    x = layers.BatchNormalization(name="entry_bn")(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for node, size in zip(block_names, [256, 512, 728]):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", name=f"{node}.sepconv_1")(x)
        x = layers.BatchNormalization(name=f"{node}.bn_1")(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", name=f"{node}.sepconv_2")(x)
        x = layers.BatchNormalization(name=f"{node}.bn_2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same", name=f"{node}.shortcut.project")(
            previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(1024, 3, padding="same", name="exit_sepconv")(x)
    x = layers.BatchNormalization(name="exit_bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation=None, name="logits")(x)
    return keras.Model(inputs, outputs)


class TransformerBlock(layers.Layer):
    """keras.io/examples/nlp/text_classification_with_transformer, verbatim."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    """keras.io/examples/nlp/text_classification_with_transformer, verbatim."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


def test_text_classification_with_transformer(tmp_path):
    """keras.io/examples/nlp/text_classification_with_transformer: key_dim is the
    embedding width, no dropout on the attention weights, epsilon 1e-6."""
    vocab_size, maxlen, embed_dim, num_heads, ff_dim = 20000, 200, 32, 2, 32
    ours = spec_model(tmp_path, f"  features:\n    tokens: {{type: sequence, length: {maxlen}, vocab_size: {vocab_size}}}\n"
                      "  target: {name: label, type: category, num_classes: 2}\n", f"""\
model:
  sequential:
    - {{block: token_and_position_embedding, name: embed, vocab_size: {vocab_size}, embed_dim: {embed_dim}}}
    - {{block: transformer_encoder, name: encoder, num_heads: {num_heads}, key_dim: {embed_dim}, ff_dim: {ff_dim},
       dropout: 0.1, epsilon: 1.0e-6}}
    - {{layer: global_average_pooling1d, name: pool}}
    - {{layer: dropout, name: dropout_1, rate: 0.1}}
    - {{layer: dense, name: hidden, units: 20, activation: relu}}
    - {{layer: dropout, name: dropout_2, rate: 0.1}}
    - {{layer: dense, name: out, units: 2, activation: softmax}}
""", "sparse_categorical_crossentropy")
    inputs = layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim, name="embed")(inputs)
    x = TransformerBlock(embed_dim, num_heads, ff_dim, name="encoder")(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax", name="out")(x)
    theirs = keras.Model(inputs=inputs, outputs=outputs)
    composite = {"embed": ["embed.token", "embed.position"],
                 "encoder": ["encoder.0.attention", "encoder.0.ffn_1", "encoder.0.ffn_2", "encoder.0.attention_norm",
                             "encoder.0.ffn_norm"]}
    x = np.random.default_rng(0).integers(0, vocab_size, (2, maxlen)).astype("int32")
    assert_same_model(ours, theirs, {"tokens": x}, x, composite=composite)


def test_bidirectional_lstm_imdb(tmp_path):
    """keras.io/examples/nlp/bidirectional_lstm_imdb (2,757,761 params). The
    example pads reviews to 200 tokens; the model reads any length, so 40 here."""
    ours = spec_model(tmp_path, "  features:\n    review: {type: sequence, length: 40, vocab_size: 20000}\n"
                      "  target: {name: positive, type: binary}\n", """\
model:
  sequential:
    - {layer: embedding, name: embedding, input_dim: 20000, output_dim: 128}
    - {layer: bidirectional, name: bilstm_1, rnn: {layer: lstm, units: 64, return_sequences: true}}
    - {layer: bidirectional, name: bilstm_2, rnn: {layer: lstm, units: 64}}
    - {layer: dense, name: out, units: 1, activation: sigmoid}
""", "binary_crossentropy")
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(20000, 128, name="embedding")(inputs)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True), name="bilstm_1")(x)
    x = layers.Bidirectional(layers.LSTM(64), name="bilstm_2")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="out")(x)
    theirs = keras.Model(inputs, outputs)
    assert theirs.count_params() == 2_757_761
    x = np.random.default_rng(0).integers(1, 20000, (2, 40)).astype("int32")
    assert_same_model(ours, theirs, {"review": x}, x)


def test_masking_and_padding(tmp_path):
    """keras.io/guides/understanding_masking_and_padding: Embedding(mask_zero=True)
    into an LSTM. Zero-padded steps are skipped: a pre-padded sequence gives the
    output of the unpadded one, in the spec's model as in Keras'."""
    ours = spec_model(tmp_path, "  features:\n    tokens: {type: sequence, length: 12, vocab_size: 5000}\n"
                      "  target: {name: state, type: numeric, shape: [32]}\n", """\
model:
  sequential:
    - {layer: embedding, name: embedding, input_dim: 5000, output_dim: 16, mask_zero: true}
    - {layer: lstm, name: lstm, units: 32}
""", "mse")
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True, name="embedding")(inputs)
    outputs = layers.LSTM(32, name="lstm")(x)
    theirs = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5000, (2, 12)).astype("int32")
    x[0, :5] = 0  # pre-padding, as pad_sequences does by default
    out = assert_same_model(ours, theirs, {"tokens": x}, x)[""]
    unpadded = theirs(x[:1, 5:], training=False)
    np.testing.assert_allclose(np.asarray(out[:1]), np.asarray(unpadded), atol=1e-5)


def test_masking_with_variable_length_input(tmp_path):
    """The masking guide's model on its own padded batch: token lists of
    different lengths, `pad_sequences(padding="post")`, an input of shape
    (None,) (`length: variable`): the same parameters and outputs as Keras,
    and each row's output equals that of its unpadded tokens."""
    ours = spec_model(tmp_path, "  features:\n    tokens: {type: sequence, length: variable, vocab_size: 5000, "
                      "padding: post}\n  target: {name: state, type: numeric, shape: [32]}\n", """\
model:
  sequential:
    - {layer: embedding, name: embedding, input_dim: 5000, output_dim: 16, mask_zero: true}
    - {layer: lstm, name: lstm, units: 32}
""", "mse")
    assert tuple(ours.inputs[0].shape) == (None, None)
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = layers.Embedding(input_dim=5000, output_dim=16, mask_zero=True, name="embedding")(inputs)
    theirs = keras.Model(inputs, layers.LSTM(32, name="lstm")(x))
    raw = [[711, 632, 71], [73, 8, 3215, 55, 927], [83, 91, 1, 645, 1253, 927]]  # the guide's raw_inputs
    padded = keras.utils.pad_sequences(raw, padding="post").astype("int32")
    out = assert_same_model(ours, theirs, {"tokens": padded}, padded)[""]
    for i, row in enumerate(raw):
        alone = theirs(np.array([row], dtype="int32"), training=False)
        np.testing.assert_allclose(np.asarray(out[i:i + 1]), np.asarray(alone), atol=1e-5)


FORDA = """\
kerasflow: 1
name: forda
seed: 0
data:
  source: {type: csv, path: FordA_TRAIN.tsv, test_path: FordA_TEST.tsv, delimiter: "\\t", header: false}
  features:
    signal: {type: numeric, shape: [500, 1], columns: {start: 1, stop: 501}}
  target: {name: label, type: category, column: "0", class_names: [-1, 1]}
  split: {validation: 0.2}
  batch_size: 32
model:
  sequential:
    - {block: conv_stack, name: features, filters: [64, 64, 64], kernel_size: 3, padding: same, pool: null,
       batch_norm: true}
    - {layer: global_average_pooling1d, name: gap}
    - {layer: dense, name: out, units: 2, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  metrics: [sparse_categorical_accuracy]
  stages: [{name: main, epochs: 1}]
tracking: {enabled: false}
"""


@pytest.mark.slow
def test_timeseries_classification_from_scratch(tmp_path):
    """keras.io/examples/timeseries/timeseries_classification_from_scratch (FordA,
    25,858 params), end to end from headerless UCR-style TSV files (label -1/1,
    then 500 values per line): three Conv1D/BatchNormalization/ReLU levels;
    Conv1D keeps its bias as in the example (conv_stack's `use_bias` defaults to
    Keras'). Trains one epoch; the model equals the example's."""
    from kerasflow import api

    rng = np.random.default_rng(0)
    for name, n in (("FordA_TRAIN.tsv", 120), ("FordA_TEST.tsv", 40)):
        labels = rng.choice([-1, 1], n)
        steps = np.linspace(0, 6 * np.pi, 500)
        values = np.sin(steps[None, :] * (1.5 + labels[:, None] * 0.5)) + rng.normal(scale=0.3, size=(n, 500))
        (tmp_path / name).write_text("".join(f"{y}\t" + "\t".join(f"{v:.4f}" for v in row) + "\n"
                                             for y, row in zip(labels, values)))
    (tmp_path / "forda.yaml").write_text(FORDA)
    result = api.train(tmp_path / "forda.yaml", run_dir=tmp_path / "run", quiet=True)
    assert result.data.targets["label"]["class_names"] == ["-1", "1"]
    x, y = result.data.arrays("test")
    assert x["signal"].shape == (40, 500, 1) and set(np.unique(y["label"])) == {0, 1}

    input_layer = keras.layers.Input((500, 1))
    h = input_layer
    for i in range(3):  # the example's conv1/conv2/conv3, written once
        h = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same", name=f"features.conv_{i}")(h)
        h = keras.layers.BatchNormalization(name=f"features.norm_{i}")(h)
        h = keras.layers.ReLU()(h)
    gap = keras.layers.GlobalAveragePooling1D()(h)
    output_layer = keras.layers.Dense(2, activation="softmax", name="out")(gap)
    theirs = keras.Model(inputs=input_layer, outputs=output_layer)
    assert theirs.count_params() == 25_858
    assert_same_model(result.model, theirs, {"signal": x["signal"][:4]}, x["signal"][:4], atol=1e-4)


def test_functional_api_multi_input_multi_output(tmp_path):
    """keras.io/guides/functional_api, the ticket model: two text inputs and tags,
    a priority logit (BinaryCrossentropy(from_logits=True)) and department
    logits. kerasflow's category labels are class indices, so the department
    loss is the sparse form of the example's CategoricalCrossentropy(from_logits=True)."""
    ours = spec_model(tmp_path, """\
  features:
    title: {type: sequence, length: 10, vocab_size: 10000}
    body: {type: sequence, length: 100, vocab_size: 10000}
    tags: {type: numeric, shape: [12]}
  target:
    - {name: priority, type: binary}
    - {name: department, type: category, num_classes: 4}
""", """\
model:
  inputs: [title, body, tags]
  nodes:
    title_embedding: {layer: embedding, input: title, input_dim: 10000, output_dim: 64}
    body_embedding: {layer: embedding, input: body, input_dim: 10000, output_dim: 64}
    title_lstm: {layer: lstm, input: title_embedding, units: 128}
    body_lstm: {layer: lstm, input: body_embedding, units: 32}
    features: {layer: concatenate, input: [title_lstm, body_lstm, tags]}
    priority_logit: {layer: dense, input: features, units: 1}
    department_logits: {layer: dense, input: features, units: 4}
  outputs: {priority: priority_logit, department: department_logits}
""", "{priority: {type: binary_crossentropy, from_logits: true}, "
     "department: {type: sparse_categorical_crossentropy, from_logits: true}}")
    num_tags, num_words, num_departments = 12, 10000, 4
    title_input = keras.Input(shape=(None,), name="title")
    body_input = keras.Input(shape=(None,), name="body")
    tags_input = keras.Input(shape=(num_tags,), name="tags")
    title_features = layers.Embedding(num_words, 64, name="title_embedding")(title_input)
    body_features = layers.Embedding(num_words, 64, name="body_embedding")(body_input)
    title_features = layers.LSTM(128, name="title_lstm")(title_features)
    body_features = layers.LSTM(32, name="body_lstm")(body_features)
    x = layers.concatenate([title_features, body_features, tags_input])
    priority_pred = layers.Dense(1, name="priority_logit")(x)
    department_pred = layers.Dense(num_departments, name="department_logits")(x)
    theirs = keras.Model(inputs=[title_input, body_input, tags_input],
                         outputs={"priority": priority_pred, "department": department_pred})
    rng = np.random.default_rng(0)
    batch = {"title": rng.integers(0, num_words, (2, 10)).astype("int32"),
             "body": rng.integers(0, num_words, (2, 100)).astype("int32"),
             "tags": rng.integers(0, 2, (2, num_tags)).astype("float32")}
    assert_same_model(ours, theirs, batch, batch)


def test_structured_data_with_string_categories(tmp_path):
    """keras.io/examples/structured_data/structured_data_classification_from_scratch
    (heart disease): a normalized number, an integer category and a string
    category one-hot encoded by lookups, concatenated into Dense(32) -> Dropout
    -> Dense(1, sigmoid). Vocabularies and moments as `adapt` would learn them."""
    thal = ["fixed", "normal", "reversible"]
    stats = {"age": {"mean": [54.0], "variance": [81.0]}}
    ours = spec_model(tmp_path, f"""\
  features:
    age: {{type: numeric, shape: [1], normalize: true}}
    sex: {{type: category, dtype: int64, vocabulary: [0, 1]}}
    thal: {{type: category, vocabulary: {thal}}}
  target: {{name: target, type: binary}}
""", """\
model:
  inputs: [sex, thal, age]
  nodes:
    all_features: {layer: concatenate, input: [sex, thal, age]}
    hidden: {layer: dense, input: all_features, units: 32, activation: relu}
    dropout: {layer: dropout, input: hidden, rate: 0.5}
    out: {layer: dense, input: dropout, units: 1, activation: sigmoid}
""", "binary_crossentropy", stats=stats)
    sex = keras.Input(shape=(1,), name="sex", dtype="int64")
    thal_input = keras.Input(shape=(1,), name="thal", dtype="string")
    age = keras.Input(shape=(1,), name="age")
    sex_encoded = layers.IntegerLookup(vocabulary=[0, 1], output_mode="one_hot")(sex)
    thal_encoded = layers.StringLookup(vocabulary=thal, output_mode="one_hot")(thal_input)
    age_encoded = layers.Normalization(mean=54.0, variance=81.0)(age)
    all_features = layers.concatenate([sex_encoded, thal_encoded, age_encoded])
    x = layers.Dense(32, activation="relu", name="hidden")(all_features)
    x = layers.Dropout(0.5)(x)
    output = layers.Dense(1, activation="sigmoid", name="out")(x)
    theirs = keras.Model([sex, thal_input, age], output)
    batch = {"sex": np.array([[0], [1]], dtype="int64"), "thal": np.array([["normal"], ["reversible"]], dtype=object),
             "age": np.array([[40.0], [63.0]], dtype="float32")}
    assert_same_model(ours, theirs, batch, batch)


def test_xception_with_repeat_is_the_same_model(tmp_path):
    """The Xception example's `for size in [256, 512, 728]:` loop as one `repeat`
    node: the repetitions are ordinary nodes `blocks_0`, `blocks_1`, `blocks`."""
    ours = spec_model(tmp_path, "  features:\n    image: {type: numeric, shape: [32, 32, 3]}\n"
                      "  target: {name: label, type: binary}\n", """\
model:
  nodes:
    rescale: {layer: rescaling, input: image, scale: 0.00392156862745098}
    entry_conv: {layer: conv2d, input: rescale, filters: 128, kernel_size: 3, strides: 2, padding: same}
    entry_bn: {layer: batch_normalization, input: entry_conv}
    entry_relu: {layer: activation, input: entry_bn, activation: relu}
    blocks:
      block: repeat
      input: entry_relu
      values: {size: [256, 512, 728]}
      node:
        block: residual
        layers:
          - {layer: activation, name: relu_1, activation: relu}
          - {layer: separable_conv2d, name: sepconv_1, filters: {each: size}, kernel_size: 3, padding: same}
          - {layer: batch_normalization, name: bn_1}
          - {layer: activation, name: relu_2, activation: relu}
          - {layer: separable_conv2d, name: sepconv_2, filters: {each: size}, kernel_size: 3, padding: same}
          - {layer: batch_normalization, name: bn_2}
          - {layer: max_pooling2d, name: pool, pool_size: 3, strides: 2, padding: same}
        shortcut:
          - {layer: conv2d, name: project, filters: {each: size}, kernel_size: 1, strides: 2, padding: same}
    exit_sepconv: {layer: separable_conv2d, input: blocks, filters: 1024, kernel_size: 3, padding: same}
    exit_bn: {layer: batch_normalization, input: exit_sepconv}
    exit_relu: {layer: activation, input: exit_bn, activation: relu}
    pool: {layer: global_average_pooling2d, input: exit_relu}
    dropout: {layer: dropout, input: pool, rate: 0.25}
    logits: {layer: dense, input: dropout, units: 1, activation: null}
  outputs: {label: logits}
""", "{type: binary_crossentropy, from_logits: true}")
    names = [layer.name for layer in ours.layers]
    assert {"blocks_0.sepconv_1", "blocks_1.shortcut.project", "blocks.sepconv_2", "blocks.add"} <= set(names)

    theirs = keras_io_xception(["blocks_0", "blocks_1", "blocks"])
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert_same_model(ours, theirs, {"image": x}, x, atol=1e-4)
