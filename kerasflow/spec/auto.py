"""`model: {auto: {...}}` (or no `model`): a model chosen from the feature and
target types, expanded at validation into an ordinary `model.nodes` graph
(TF-free), so plan, build, freezing and `kerasflow render --explicit` all see
plain registered nodes.

One encoder per feature, by type:
- numeric: as the data section preprocesses it (normalized when it says
  `normalize: true`, else a batch_normalization node), flattened, optional dense;
- category: the lookup's one-hot through a bias-free dense layer (an embedding
  table) sized from the vocabulary, or an embedding of its index;
- text: token ids -> embedding -> global pooling (bags: a dense layer);
- image: a conv_stack and global pooling, or a `backbone`;
- sequence: embedding of the token ids, then a GRU/LSTM or conv encoder;
  timeseries: the recurrent encoder on the window.
Encoders are concatenated (`combiner: concat`), or each projected to one
token of a `transformer_encoder` over the features (`combiner: transformer`,
Ludwig's transformer combiner) and averaged; an MLP on top, one head per
target from its type. Every choice is a plain value, so each can be `tune:`d.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kerasflow.spec.base import Count, SpecModel, Tunable, Width
from kerasflow.spec.nodes.applications import APPLICATIONS
from kerasflow.spec.nodes.values import Activation, Rate, Sizes


class AutoSpec(SpecModel):
    """A model chosen from the feature and target types (see docs/models.md)."""

    units: Sizes = Field([128, 64], description="Dense layers on top of the combined encoders.")
    activation: Tunable[Activation] = Field("relu", description="Activation of the dense layers.")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout after each dense layer on top.")
    batch_norm: Tunable[bool] = Field(False, description="Batch-normalize the dense layers on top.")
    combiner: Tunable[Literal["concat", "transformer"]] = Field(
        "concat", description="How the feature encodings are combined: concatenated, or each projected to one token "
        "of a transformer encoder over the features (then averaged).")
    combiner_dim: Tunable[Width] = Field(32, description="transformer: width of each feature's token (also the "
                                         "attention key size and feed-forward width).")
    combiner_heads: Tunable[Width] = Field(2, description="transformer: attention heads.")
    combiner_layers: Tunable[Count] = Field(1, description="transformer: transformer layers stacked.")
    numeric_units: Sizes | None = Field(None, description="Dense layers per numeric feature before combining (none: raw).")
    category_dim: Tunable[Width] | None = Field(
        None, description="Embedding size of category features (default: min(50, round(1.6 * vocabulary^0.56))).")
    text_embedding_dim: Tunable[Width] = Field(32, description="Embedding size of text tokens.")
    text_pooling: Tunable[Literal["average", "max"]] = Field("average", description="Pooling over text tokens.")
    image_encoder: Tunable[Literal["conv", "backbone"]] = Field("conv", description="Small conv stack or a pretrained backbone.")
    image_filters: Sizes = Field([32, 64], description="conv: filters of each level.")
    image_backbone: Tunable[Literal[tuple(APPLICATIONS)]] = Field(
        "MobileNetV3Small", description="backbone: the keras.applications model.")
    image_backbone_weights: str | None = Field("imagenet", description="backbone: imagenet, null or a local file.")
    sequence_encoder: Tunable[Literal["gru", "lstm", "conv"]] = Field("gru", description="Encoder of sequences.")
    sequence_units: Tunable[Width] = Field(64, description="Units (or filters) of the sequence encoder.")
    sequence_embedding_dim: Tunable[Width] = Field(32, description="Embedding size of sequence tokens.")


def _value(v: Any) -> Any:
    """A plain value, or a `{tune: ...}` marker's default (markers are refused when a model is built)."""
    from kerasflow.spec.base import TuneBool, TuneChoice, TuneFloat, TuneInt

    if isinstance(v, TuneChoice):
        return v.default if v.default is not None else v.values[0]
    if isinstance(v, TuneBool):
        return bool(v.default)
    if isinstance(v, (TuneInt, TuneFloat)):
        return v.default if v.default is not None else v.min
    return v


def _raw(v: Any) -> Any:
    """A field as spec input: markers stay markers where the node field is tunable."""
    return v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else v


def category_dim(vocabulary: int) -> int:
    """fast.ai's embedding-size rule of thumb."""
    return max(2, min(50, round(1.6 * vocabulary ** 0.56)))


def _category_width(feature) -> int | None:
    if feature.vocabulary is not None:
        return len(feature.vocabulary) + feature.num_oov_indices
    return feature.max_tokens


def expand(auto: AutoSpec, data, inputs: list[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """The node graph (raw node mappings) and outputs of an auto model.

    Raises:
        ValueError: a target or feature the auto model cannot handle, with the fix.
    """
    nodes: dict[str, dict] = {}
    encoded: list[str] = []

    def add(name: str, node: dict) -> str:
        nodes[name] = node
        return name

    for name in inputs:
        feature = data.features[name]
        kind = feature.type
        x = name
        if kind == "numeric":
            if not feature.normalize:
                x = add(f"{name}_norm", {"layer": "batch_normalization", "input": x})
            if len(feature.shape) > 1:
                x = add(f"{name}_flat", {"layer": "flatten", "input": x})
            if auto.numeric_units is not None:
                x = add(f"{name}_dense", {"block": "mlp", "input": x, "units": _raw(auto.numeric_units),
                                          "activation": _raw(auto.activation)})
        elif kind == "category":
            width = _category_width(feature)
            dim = _raw(auto.category_dim) if auto.category_dim is not None else category_dim(width or 8)
            if feature.output == "one_hot":
                x = add(f"{name}_embed", {"layer": "dense", "input": x, "units": dim, "use_bias": False})
            elif feature.output == "index":
                if width is None:
                    raise ValueError(f"model.auto: category feature `{name}` with output index needs its size: "
                                     "declare `vocabulary` or `max_tokens`, or use output one_hot")
                x = add(f"{name}_embed", {"layer": "embedding", "input": x, "input_dim": width, "output_dim": dim})
                x = add(f"{name}_flat", {"layer": "flatten", "input": x})
            # output embedding: the data section already embeds it
        elif kind == "text":
            if feature.output_mode == "int":
                pool = _value(auto.text_pooling)
                # Average pooling skips padding through the mask; max pooling takes no mask (padding embeds as id 0).
                x = add(f"{name}_embed", {"layer": "embedding", "input": x, "input_dim": int(_value(feature.max_tokens)),
                                          "output_dim": _raw(auto.text_embedding_dim), "mask_zero": pool == "average"})
                x = add(f"{name}_pool", {"layer": f"global_{pool}_pooling1d", "input": x})
            else:
                x = add(f"{name}_dense", {"layer": "dense", "input": x, "units": _raw(auto.text_embedding_dim),
                                          "activation": _raw(auto.activation)})
        elif kind == "image":
            if _value(auto.image_encoder) == "backbone":
                # A rescaled image feature reaches the model in [0, 1]; preprocess_input expects 0-255.
                x = add(f"{name}_backbone", {"block": "backbone", "input": x, "application": _raw(auto.image_backbone),
                                             "weights": auto.image_backbone_weights,
                                             "input_scale": 255.0 if feature.rescale else 1.0})
            else:
                x = add(f"{name}_conv", {"block": "conv_stack", "input": x, "filters": _raw(auto.image_filters),
                                         "batch_norm": True, "activation": _raw(auto.activation)})
                x = add(f"{name}_pool", {"layer": "global_average_pooling2d", "input": x})
        else:  # sequence of token ids, or a timeseries window
            if kind == "sequence":
                x = add(f"{name}_embed", {"layer": "embedding", "input": x, "input_dim": feature.vocab_size,
                                          "output_dim": _raw(auto.sequence_embedding_dim)})
            encoder = _value(auto.sequence_encoder)
            if encoder == "conv":
                x = add(f"{name}_conv", {"block": "conv_stack", "input": x, "filters": [_raw(auto.sequence_units)],
                                         "kernel_size": 3, "pool": None, "activation": _raw(auto.activation)})
                x = add(f"{name}_pool", {"layer": "global_max_pooling1d", "input": x})
            else:
                x = add(f"{name}_rnn", {"block": "rnn_stack", "input": x, "cell": encoder,
                                        "units": [_raw(auto.sequence_units)]})
        encoded.append(x)

    if _value(auto.combiner) == "transformer":
        x = _transformer_combiner(auto, dict(zip(inputs, encoded)), add)
    else:
        x = encoded[0] if len(encoded) == 1 else add("combined", {"layer": "concatenate", "input": encoded})
    x = add("body", {"block": "mlp", "input": x, "units": _raw(auto.units), "activation": _raw(auto.activation),
                     "dropout": _raw(auto.dropout), "batch_norm": _raw(auto.batch_norm)})
    outputs = {}
    targets = data.targets()
    for target in targets:
        head = "output" if len(targets) == 1 else f"{target.name}_output"
        outputs[target.name] = add(head, {"layer": "dense", "input": x, **_head(target)})
    return nodes, outputs


def _transformer_combiner(auto: AutoSpec, encoded: dict[str, str], add) -> str:
    """One token per feature encoding (a dense projection), self-attention across them, then their average."""
    dim = _raw(auto.combiner_dim)
    tokens = []
    for feature, x in encoded.items():
        x = add(f"{feature}_project", {"layer": "dense", "input": x, "units": dim})
        tokens.append(add(f"{feature}_token", {"layer": "reshape", "input": x, "target_shape": [1, -1]}))
    x = tokens[0] if len(tokens) == 1 else add("combiner_tokens", {"layer": "concatenate", "input": tokens, "axis": 1})
    x = add("combiner", {"block": "transformer_encoder", "input": x, "num_heads": _raw(auto.combiner_heads),
                         "key_dim": dim, "ff_dim": dim, "num_layers": _raw(auto.combiner_layers)})
    return add("combined", {"layer": "global_average_pooling1d", "input": x})


def _head(target) -> dict:
    if target.type == "binary":
        return {"units": 1, "activation": "sigmoid"}
    if target.type == "category":
        classes = target.num_classes or (len(target.class_names) if target.class_names else None)
        if classes is None:
            raise ValueError(f"model.auto: target `{target.name}` needs `num_classes` (or `class_names`) "
                             "to size the output layer")
        return {"units": classes, "activation": "softmax"}
    if target.type == "numeric":
        shape = target.shape or [len(target.column) if isinstance(target.column, list) else 1]
        if len(shape) != 1:
            raise ValueError(f"model.auto: numeric target `{target.name}` has shape {shape}; auto heads are "
                             "vectors: write model.nodes for other shapes")
        return {"units": shape[0]}
    raise ValueError(f"model.auto: `{target.type}` targets (`{target.name}`) need a hand-written model.nodes graph "
                     "(a per-position decoder)")


__all__ = ["AutoSpec", "category_dim", "expand"]
