"""Block schemas (TF-free). A block expands into several Keras layers named
`<node>.<part>`; its build function (`module:function(node, inputs, name)`)
lives in a module imported only when a model is built."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field, PositiveFloat, confloat, model_validator

from kerasflow.spec.base import Choosable, Count, Tunable, Width
from kerasflow.spec.nodes.layers import Activation, Padding, Rate, Regularizer, Size2D
from kerasflow.spec.registry import BlockNode, Node, register_block

# Build functions import Keras: named by string, resolved only when a model is built.
_MODEL = "kerasflow.model."


class _Block(BlockNode):
    """A block reading `arity` inputs."""

    arity: ClassVar[int] = 1

    @model_validator(mode="after")
    def _arity(self):
        n = len(self.input_names())
        if n and n != self.arity:
            what = "one input" if self.arity == 1 else f"{self.arity} inputs"
            raise ValueError(f"{self.block} takes {what}, received {n}")
        return self


# A list (or a `tune: choice` of lists, to search depth) of tunable sizes.
Sizes = Tunable[Annotated[list[Tunable[Width]], Field(min_length=1)]]


@register_block("mlp", _MODEL + "stacks:build_mlp")
class MLP(_Block):
    """Dense layers, each optionally followed by batch normalization and dropout."""

    units: Sizes = Field(description="Units of each dense layer, first to last.")
    activation: Tunable[Activation] = Field("relu", description="Activation of every layer.")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout after every layer (0: none).")
    batch_norm: Tunable[bool] = Field(False, description="Batch-normalize before each activation.")
    batch_norm_momentum: Tunable[confloat(gt=0, lt=1)] = Field(
        0.9, description="Momentum of the moving statistics (Keras' 0.99 needs hundreds of steps to settle; "
        "small datasets have few).")
    kernel_regularizer: Choosable(Regularizer, "Regularizer") | None = Field(None, description="Penalty on every kernel, e.g. {l2: 1e-4}.")


@register_block("conv_stack", _MODEL + "stacks:build_conv_stack")
class ConvStack(_Block):
    """Convolution levels (conv, batch norm, activation, pooling, dropout); 1D or 2D from the input rank."""

    filters: Sizes = Field(description="Filters of each level, first to last.")
    kernel_size: Tunable[Size2D] = Field(3, description="Convolution window (an int or [h, w] for 2D).")
    convs_per_level: Count = Field(1, description="Convolutions before each pooling.")
    activation: Tunable[Activation] = Field("relu", description="Activation of every convolution.")
    padding: Padding = Field("same", description="Padding of the convolutions.")
    pool: Literal["max", "average"] | None = Field("max", description="Pooling after each level (null: none).")
    pool_size: Size2D = Field(2, description="Pooling window.")
    batch_norm: Tunable[bool] = Field(False, description="Batch-normalize before each activation.")
    batch_norm_momentum: Tunable[confloat(gt=0, lt=1)] = Field(
        0.9, description="Momentum of the moving statistics (Keras' 0.99 needs hundreds of steps to settle; "
        "small datasets have few).")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout after each level (0: none).")


@register_block("rnn_stack", _MODEL + "stacks:build_rnn_stack")
class RNNStack(_Block):
    """Stacked LSTM or GRU layers; every layer but the last returns sequences."""

    cell: Tunable[Literal["lstm", "gru"]] = Field("lstm", description="Recurrent layer type.")
    units: Sizes = Field(description="Units of each recurrent layer, first to last.")
    bidirectional: Tunable[bool] = Field(False, description="Wrap every layer in Bidirectional.")
    return_sequences: bool = Field(False, description="The last layer returns every step (e.g. per-step outputs).")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout on each layer's inputs.")
    recurrent_dropout: Tunable[Rate] = Field(0.0, description="Dropout on the recurrent state (disables cuDNN).")


PositionMode = Literal["learned", "sinusoidal"]


@register_block("positional_embedding", _MODEL + "embeddings:build_positional_embedding")
class PositionalEmbedding(_Block):
    """Adds a position encoding (learned or sinusoidal) to a (batch, steps, features) input."""

    mode: PositionMode = Field("learned", description="Learned position table or fixed sinusoids.")
    max_length: Count | None = Field(None, description="Longest sequence (default: the input's length).")


@register_block("token_and_position_embedding", _MODEL + "embeddings:build_token_and_position_embedding")
class TokenAndPositionEmbedding(_Block):
    """Embeds integer token ids and adds a position encoding."""

    vocab_size: Count = Field(description="Number of token ids (largest id + 1).")
    embed_dim: Tunable[Width] = Field(description="Embedding size (the model width).")
    max_length: Count | None = Field(None, description="Longest sequence (default: the input's length).")
    mode: PositionMode = Field("learned", description="Learned position table or fixed sinusoids.")
    mask_zero: bool = Field(False, description="Token 0 is padding: mask it in attention and pooling.")


class _Transformer(_Block):
    num_heads: Tunable[Width] = Field(description="Attention heads.")
    key_dim: Tunable[Width] | None = Field(None, description="Size of each head (default: width / num_heads).")
    ff_dim: Tunable[Width] = Field(description="Hidden units of the feed-forward part.")
    num_layers: Tunable[Count] = Field(1, description="Identical layers stacked.")
    dropout: Tunable[Rate] = Field(0.1, description="Dropout on attention weights and residual branches.")
    activation: Tunable[Activation] = Field("relu", description="Activation of the feed-forward part.")
    norm: Literal["post", "pre"] = Field("post", description="LayerNormalization after (post) or before (pre) each residual branch.")
    epsilon: PositiveFloat = Field(1e-5, description="LayerNormalization epsilon.")


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
class Residual(_Block):
    """A chain of nodes whose output is added to its input (a skip connection)."""

    layers: list[Node] = Field(min_length=1, description="The chain: nodes without `input` (each reads the previous).")
    project: bool = Field(True, description="Project the skip with a Dense/1x1 conv when the widths differ.")
    norm: Literal["layer", "batch"] | None = Field(None, description="Normalization after the sum.")
    activation: Activation | None = Field(None, description="Activation after the sum (and norm).")

    @model_validator(mode="after")
    def _chained(self):
        for i, item in enumerate(self.layers):
            if item.input_names():
                raise ValueError(f"layers[{i}] reads the previous layer of the chain: remove its `input`")
        return self

