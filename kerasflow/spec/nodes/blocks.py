"""Block schemas (TF-free). A block expands into several Keras layers named
`<node>.<part>`; its build function (`module:function(node, inputs, name)`)
lives in a module imported only when a model is built."""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PrivateAttr, confloat, model_validator

from kerasflow.spec.base import Choosable, Count, Tunable, Width
from kerasflow.spec.nodes.layers import Regularizer
from kerasflow.spec.nodes.values import Activation, Padding, Rate, Size2D, Sizes
from kerasflow.spec.registry import BlockNode, Node, node_adapter, register_block

# Build functions import Keras: named by string, resolved only when a model is built.
_MODEL = "kerasflow.model."


class Block(BlockNode):
    """A block reading `arity` inputs."""

    arity: ClassVar[int] = 1

    @model_validator(mode="after")
    def _arity(self):
        n = len(self.input_names())
        if n and n != self.arity:
            what = "one input" if self.arity == 1 else f"{self.arity} inputs"
            raise ValueError(f"{self.block} takes {what}, received {n}")
        return self


def _use_bias() -> Any:
    """The `use_bias` field of the blocks that can batch-normalize (one text for all)."""
    return Field(True, description="Each layer has a bias (Keras' default, also with batch_norm). Keras examples "
                 "often pass false before batch normalization, whose beta makes the bias redundant.")


def _batch_norm_momentum() -> Any:
    return Field(0.99, description="Momentum of the moving statistics (Keras' default; 0.9 settles faster on "
                 "small datasets with few steps).")

@register_block("mlp", _MODEL + "stacks:build_mlp")
class MLP(Block):
    """Dense layers, each optionally followed by batch normalization and dropout."""

    units: Sizes = Field(description="Units of each dense layer, first to last.")
    activation: Tunable[Activation] = Field("relu", description="Activation of every layer.")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout after every layer (0: none).")
    batch_norm: Tunable[bool] = Field(False, description="Batch-normalize before each activation.")
    use_bias: Tunable[bool] = _use_bias()
    batch_norm_momentum: Tunable[confloat(gt=0, lt=1)] = _batch_norm_momentum()
    kernel_regularizer: Choosable(Regularizer, "Regularizer") | None = Field(None, description="Penalty on every kernel, e.g. {l2: 1e-4}.")


@register_block("conv_stack", _MODEL + "stacks:build_conv_stack")
class ConvStack(Block):
    """Convolution levels (conv, batch norm, activation, pooling, dropout); 1D or 2D from the input rank."""

    filters: Sizes = Field(description="Filters of each level, first to last.")
    kernel_size: Tunable[Size2D] = Field(3, description="Convolution window (an int or [h, w] for 2D).")
    convs_per_level: Count = Field(1, description="Convolutions before each pooling.")
    activation: Tunable[Activation] = Field("relu", description="Activation of every convolution.")
    padding: Padding = Field("same", description="Padding of the convolutions.")
    pool: Literal["max", "average"] | None = Field("max", description="Pooling after each level (null: none).")
    pool_size: Size2D = Field(2, description="Pooling window.")
    pool_padding: Padding = Field("valid", description="Padding of the pooling (Keras' default; `same` keeps odd sizes' "
                                  "last row and column).")
    batch_norm: Tunable[bool] = Field(False, description="Batch-normalize before each activation.")
    use_bias: Tunable[bool] = _use_bias()
    batch_norm_momentum: Tunable[confloat(gt=0, lt=1)] = _batch_norm_momentum()
    dropout: Tunable[Rate] = Field(0.0, description="Dropout after each level (0: none).")


@register_block("rnn_stack", _MODEL + "stacks:build_rnn_stack")
class RNNStack(Block):
    """Stacked LSTM or GRU layers; every layer but the last returns sequences."""

    cell: Tunable[Literal["lstm", "gru"]] = Field("lstm", description="Recurrent layer type.")
    units: Sizes = Field(description="Units of each recurrent layer, first to last.")
    bidirectional: Tunable[bool] = Field(False, description="Wrap every layer in Bidirectional.")
    return_sequences: bool = Field(False, description="The last layer returns every step (e.g. per-step outputs).")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout on each layer's inputs.")
    recurrent_dropout: Tunable[Rate] = Field(0.0, description="Dropout on the recurrent state (disables cuDNN).")


PositionMode = Literal["learned", "sinusoidal"]


@register_block("positional_embedding", _MODEL + "embeddings:build_positional_embedding")
class PositionalEmbedding(Block):
    """Adds a position encoding (learned or sinusoidal) to a (batch, steps, features) input."""

    mode: PositionMode = Field("learned", description="Learned position table or fixed sinusoids.")
    max_length: Count | None = Field(None, description="Longest sequence (default: the input's length).")


@register_block("token_and_position_embedding", _MODEL + "embeddings:build_token_and_position_embedding")
class TokenAndPositionEmbedding(Block):
    """Embeds integer token ids and adds a position encoding."""

    vocab_size: Count = Field(description="Number of token ids (largest id + 1).")
    embed_dim: Tunable[Width] = Field(description="Embedding size (the model width).")
    max_length: Count | None = Field(None, description="Longest sequence (default: the input's length).")
    mode: PositionMode = Field("learned", description="Learned position table or fixed sinusoids.")
    mask_zero: bool = Field(False, description="Token 0 is padding: mask it in attention and pooling.")


class _Transformer(Block):
    num_heads: Tunable[Width] = Field(description="Attention heads.")
    key_dim: Tunable[Width] = Field(description="Size of each attention head (Keras' MultiHeadAttention has no "
                                    "default; Keras' text-classification example passes the embedding width).")
    ff_dim: Tunable[Width] = Field(description="Hidden units of the feed-forward part.")
    num_layers: Tunable[Count] = Field(1, description="Identical layers stacked.")
    dropout: Tunable[Rate] = Field(0.1, description="Dropout on the output of each residual branch (attention and "
                                   "feed-forward) before the sum.")
    attention_dropout: Tunable[Rate] = Field(0.0, description="Dropout on the attention weights (MultiHeadAttention's "
                                             "`dropout`; Keras' default 0).")
    activation: Tunable[Activation] = Field("relu", description="Activation of the feed-forward part.")
    norm: Literal["post", "pre"] = Field("post", description="LayerNormalization after (post) or before (pre) each residual branch.")
    epsilon: PositiveFloat = Field(1e-3, description="LayerNormalization epsilon (Keras' default; Keras' Transformer "
                                   "examples pass 1e-6).")


@register_block("transformer_encoder", _MODEL + "transformer:build_transformer_encoder")
class TransformerEncoder(_Transformer):
    """Self-attention + feed-forward layers with residuals and LayerNormalization."""

    causal: bool = Field(False, description="Each position attends only to itself and earlier ones.")


@register_block("transformer_decoder", _MODEL + "transformer:build_transformer_decoder")
class TransformerDecoder(_Transformer):
    """Causal self-attention, cross-attention to the encoder output, feed-forward. Input: [target, encoder_output]."""

    arity: ClassVar[int] = 2
    causal: bool = Field(True, description="Causal self-attention (false only for non-autoregressive decoding).")


@register_block("residual", _MODEL + "residual:build_residual")
class Residual(Block):
    """A chain of nodes whose output is added to its input (a skip connection).

    The skip is the input itself, or the `shortcut` chain applied to it: a
    projection that changes its shape the way the main chain does, e.g. Keras'
    Xception example's `Conv2D(size, 1, strides=2, padding="same")`.
    """

    layers: list[Node] = Field(min_length=1, description="The chain: nodes without `input` (each reads the previous).")
    shortcut: list[Node] | None = Field(
        None, description="Nodes without `input` applied to the skip before the sum (strides, 1x1 conv, pooling), "
        "named `<node>.shortcut.<part>`; null: the input itself (see `project`).")
    project: bool = Field(True, description="Without `shortcut`: project the skip with a Dense/1x1 conv (named "
                          "`<node>.projection`) when only the widths differ.")
    norm: Literal["layer", "batch"] | None = Field(None, description="Normalization after the sum.")
    batch_norm_momentum: confloat(gt=0, lt=1) = Field(0.99, description="Momentum of `norm: batch` (Keras' default).")
    activation: Activation | None = Field(None, description="Activation after the sum (and norm).")

    @model_validator(mode="after")
    def _chained(self):
        for key in ("layers", "shortcut"):
            for i, item in enumerate(getattr(self, key) or []):
                if item.input_names():
                    raise ValueError(f"{key}[{i}] reads the previous layer of the chain: remove its `input`")
        return self



EACH = "each"  # `{each: <key>}` in a repeated node takes that key's value of the repetition


@register_block("repeat", _MODEL + "stacks:build_repeat")
class Repeat(Block):
    """One node repeated in a chain, with per-repetition values.

    `{each: <key>}` anywhere in `node` takes the repetition's value of `<key>`
    from `values`, e.g. Keras' `for size in [256, 512, 728]:` is
    `values: {size: [256, 512, 728]}` with `filters: {each: size}`. In the
    graph the repetitions are ordinary nodes, each reading the previous one:
    `<name>_0` ... `<name>_<n-2>`, and the last is `<name>` itself, so other
    nodes and outputs read the chain's end by the repeat's name.
    """

    values: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        None, description="Per-repetition values by key (lists of equal length: one entry per repetition).")
    times: Count | None = Field(None, description="Number of repetitions when no `values` are given.")
    node: dict[str, Any] = Field(description="The repeated node, without `input`/`name`; `{each: <key>}` marks "
                                 "a per-repetition value.")
    _repetitions: tuple = PrivateAttr(())

    @model_validator(mode="after")
    def _expand(self):
        lengths = {len(v) for v in (self.values or {}).values()}
        if self.values is not None and len(lengths) != 1:
            raise ValueError("expected lists of equal length under `values` (one entry per repetition), received "
                             + ", ".join(f"{k}: {len(v)}" for k, v in self.values.items()))
        count = lengths.pop() if self.values else self.times
        if count is None or (self.values and self.times is not None and self.times != count):
            raise ValueError("expected `values` (per-repetition lists) or `times`" +
                             (f", received times: {self.times} for {count} values" if count else ""))
        if "input" in self.node or "inputs" in self.node or "name" in self.node:
            raise ValueError("the repeated `node` reads the previous repetition: remove its `input`/`name`")
        expanded = []
        for i in range(count):
            raw = _substitute(self.node, {k: v[i] for k, v in (self.values or {}).items()}, i)
            node = node_adapter().validate_python(raw)
            expanded.append(node.model_copy(update={"trainable": node.trainable and self.trainable}))
        self._repetitions = tuple(expanded)
        return self

    def repetitions(self) -> tuple:
        """The repeated nodes, values substituted, without wiring."""
        return self._repetitions


def _substitute(value: Any, row: dict[str, Any], index: int) -> Any:
    if isinstance(value, dict) and set(value) == {EACH}:
        key = value[EACH]
        if key not in row:
            raise ValueError(f"repetition {index}: `{{each: {key}}}` names no key of `values`"
                             + (f"; expected one of: {', '.join(row)}" if row else " (none given)"))
        return row[key]
    if isinstance(value, dict):
        return {k: _substitute(v, row, index) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, row, index) for v in value]
    return value
