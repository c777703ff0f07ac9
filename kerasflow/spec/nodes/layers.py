"""Parameter schemas of the Keras layers a spec can name. No TensorFlow import:
each registration names its `keras.layers` class by string, and the builder
instantiates it with `params()` and calls it through `call()`.

Preprocessing layers live in `preprocessing`; blocks in `blocks`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, NonNegativeFloat, PositiveFloat, PositiveInt, Tag, confloat, model_validator

from kerasflow.spec.registry import LayerNode, register_layer
from kerasflow.spec.base import SpecModel, Tunable

Activation = Literal[
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "glu", "silu", "swish", "mish",
    "sigmoid", "hard_sigmoid", "log_sigmoid", "sparse_sigmoid", "tanh", "hard_tanh", "tanh_shrink",
    "softmax", "log_softmax", "sparsemax", "softplus", "softsign", "squareplus", "sparse_plus",
    "soft_shrink", "hard_shrink", "hard_silu", "hard_swish", "exponential", "linear",
]
Initializer = Literal[
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "orthogonal", "zeros", "ones", "random_normal", "random_uniform", "truncated_normal",
]
Padding = Literal["valid", "same"]
Rate = confloat(ge=0.0, lt=1.0)
Size2D = Union[PositiveInt, Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]]


class Regularizer(SpecModel):
    """L1/L2 weight penalty added to the loss."""

    l1: Tunable[NonNegativeFloat] = Field(0.0, description="L1 factor.")
    l2: Tunable[NonNegativeFloat] = Field(0.0, description="L2 factor.")

    def keras_config(self) -> dict[str, Any]:
        return {"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}}


class KerasLayer(LayerNode):
    """A node built as `KerasClass(**params())` and called on its input(s).

    `merge` layers take a list of two or more tensors; `call_fields` are passed
    when calling the layer instead of to its constructor.
    """

    merge: ClassVar[bool] = False
    call_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _arity(self):
        n = len(self.input_names())
        kind = getattr(self, "layer", "?")
        if self.merge and 0 < n < 2:
            raise ValueError(f"{kind} merges two or more inputs, received {n}: write `input: [a, b]`")
        if not self.merge and n > 1:
            raise ValueError(f"{kind} takes one input, received {n}: merge them first "
                             "(e.g. a `concatenate` or `add` node)")
        return self

    def params(self) -> dict[str, Any]:
        out = {k: v for k, v in super().params().items() if k not in self.call_fields}
        for key in out:
            value = getattr(self, key, None)
            if isinstance(value, Regularizer):
                out[key] = value.keras_config()
        return out

    def call(self, layer: Any, inputs: list) -> Any:
        """Call the built Keras `layer` on the node's input tensors."""
        kwargs = {f: getattr(self, f) for f in self.call_fields}
        return layer(list(inputs) if self.merge else inputs[0], **kwargs)


# ---------------------------------------------------------------- core


@register_layer("dense", "Dense")
class Dense(KerasLayer):
    """Densely-connected layer: `activation(dot(x, kernel) + bias)`."""

    units: Tunable[PositiveInt] = Field(description="Dimensionality of the output space.")
    activation: Tunable[Activation | None] = Field(None, description="Activation name, e.g. relu, softmax.")
    use_bias: bool = Field(True, description="Add a bias vector.")
    kernel_initializer: Initializer = Field("glorot_uniform", description="Initializer of the kernel.")
    kernel_regularizer: Regularizer | None = Field(None, description="Penalty on the kernel, e.g. {l2: 1e-4}.")


@register_layer("dropout", "Dropout")
class Dropout(KerasLayer):
    """Randomly sets input units to 0 with frequency `rate` during training."""

    rate: Tunable[Rate] = Field(description="Fraction of the input units to drop.")
    seed: int | None = Field(None, description="Seed of the dropout mask (default: from the spec seed).")


@register_layer("spatial_dropout1d", "SpatialDropout1D")
class SpatialDropout1D(KerasLayer):
    """Dropout of whole 1D feature maps (channels) of a (batch, steps, channels) input."""

    rate: Tunable[Rate] = Field(description="Fraction of the channels to drop.")
    seed: int | None = Field(None, description="Seed of the dropout mask.")


@register_layer("gaussian_noise", "GaussianNoise")
class GaussianNoise(KerasLayer):
    """Adds zero-centered Gaussian noise during training (a regularizer)."""

    stddev: Tunable[NonNegativeFloat] = Field(description="Standard deviation of the noise.")
    seed: int | None = Field(None, description="Seed of the noise.")


@register_layer("activation", "Activation")
class Activation_(KerasLayer):
    """Applies an activation function."""

    activation: Tunable[Activation] = Field(description="Activation name.")


@register_layer("batch_normalization", "BatchNormalization")
class BatchNormalization(KerasLayer):
    """Normalizes with batch statistics in training, moving averages in inference."""

    axis: int = Field(-1, description="The features axis.")
    momentum: Tunable[confloat(gt=0, lt=1)] = Field(0.99, description="Momentum of the moving averages.")
    epsilon: PositiveFloat = Field(1e-3, description="Added to the variance to avoid division by zero.")
    center: bool = Field(True, description="Learn an offset (beta).")
    scale: bool = Field(True, description="Learn a scale (gamma).")


@register_layer("layer_normalization", "LayerNormalization")
class LayerNormalization(KerasLayer):
    """Normalizes each example over its last axis (or `axis`)."""

    axis: int | list[int] = Field(-1, description="Axis or axes to normalize over.")
    epsilon: PositiveFloat = Field(1e-3, description="Added to the variance to avoid division by zero.")
    center: bool = Field(True, description="Learn an offset (beta).")
    scale: bool = Field(True, description="Learn a scale (gamma).")


@register_layer("flatten", "Flatten")
class Flatten(KerasLayer):
    """Flattens every axis but the batch axis."""


@register_layer("reshape", "Reshape")
class Reshape(KerasLayer):
    """Reshapes each example to `target_shape` (one entry may be -1)."""

    target_shape: list[Annotated[int, Field(ge=-1)]] = Field(
        min_length=1, description="Per-example output shape; -1 once to infer that axis.")

    @model_validator(mode="after")
    def _one_unknown(self):
        if self.target_shape.count(-1) > 1 or 0 in self.target_shape:
            raise ValueError(f"expected positive sizes and at most one -1, received target_shape={self.target_shape}")
        return self


@register_layer("repeat_vector", "RepeatVector")
class RepeatVector(KerasLayer):
    """Repeats a (batch, features) input `n` times: (batch, n, features)."""

    n: PositiveInt = Field(description="Number of repetitions.")


@register_layer("embedding", "Embedding")
class Embedding(KerasLayer):
    """Turns integer ids in [0, input_dim) into dense vectors of size output_dim."""

    input_dim: PositiveInt = Field(description="Vocabulary size (largest id + 1).")
    output_dim: Tunable[PositiveInt] = Field(description="Embedding size.")
    mask_zero: bool = Field(False, description="Treat id 0 as padding and mask it downstream.")
    embeddings_initializer: Initializer = Field("random_uniform", description="Initializer of the table.")


# ---------------------------------------------------------------- convolution and pooling


class _Separable(KerasLayer):
    filters: Tunable[PositiveInt] = Field(description="Number of output channels.")
    strides: Size2D = Field(1, description="Stride of the convolution.")
    padding: Padding = Field("valid", description="`valid` (no padding) or `same` (keep the size).")
    dilation_rate: Size2D = Field(1, description="Dilation rate of the kernel.")
    activation: Tunable[Activation | None] = Field(None, description="Activation name.")
    use_bias: bool = Field(True, description="Add a bias vector.")


class _Conv(_Separable):
    kernel_initializer: Initializer = Field("glorot_uniform", description="Initializer of the kernel.")
    kernel_regularizer: Regularizer | None = Field(None, description="Penalty on the kernel, e.g. {l2: 1e-4}.")


@register_layer("conv1d", "Conv1D")
class Conv1D(_Conv):
    """1D convolution over (batch, steps, channels)."""

    kernel_size: Tunable[PositiveInt] = Field(description="Length of the convolution window.")
    strides: PositiveInt = Field(1, description="Stride of the convolution.")
    padding: Literal["valid", "same", "causal"] = Field("valid", description="`causal` never looks ahead in time.")
    dilation_rate: PositiveInt = Field(1, description="Dilation rate of the kernel.")


@register_layer("conv2d", "Conv2D")
class Conv2D(_Conv):
    """2D convolution over (batch, height, width, channels)."""

    kernel_size: Tunable[Size2D] = Field(description="Window size: an int or [height, width].")


@register_layer("separable_conv1d", "SeparableConv1D")
class SeparableConv1D(_Separable):
    """Depthwise then pointwise 1D convolution."""

    kernel_size: Tunable[PositiveInt] = Field(description="Length of the convolution window.")
    strides: PositiveInt = Field(1, description="Stride of the convolution.")
    dilation_rate: PositiveInt = Field(1, description="Dilation rate of the kernel.")
    depth_multiplier: PositiveInt = Field(1, description="Depthwise channels per input channel.")


@register_layer("separable_conv2d", "SeparableConv2D")
class SeparableConv2D(_Separable):
    """Depthwise then pointwise 2D convolution."""

    kernel_size: Tunable[Size2D] = Field(description="Window size: an int or [height, width].")
    depth_multiplier: PositiveInt = Field(1, description="Depthwise channels per input channel.")


class _Pool1D(KerasLayer):
    pool_size: Tunable[PositiveInt] = Field(2, description="Size of the pooling window.")
    strides: PositiveInt | None = Field(None, description="Stride (default: pool_size).")
    padding: Padding = Field("valid", description="Padding mode.")


class _Pool2D(KerasLayer):
    pool_size: Tunable[Size2D] = Field(2, description="Window size: an int or [height, width].")
    strides: Size2D | None = Field(None, description="Stride (default: pool_size).")
    padding: Padding = Field("valid", description="Padding mode.")


@register_layer("max_pooling1d", "MaxPooling1D")
class MaxPooling1D(_Pool1D):
    """Max over windows of a (batch, steps, channels) input."""


@register_layer("max_pooling2d", "MaxPooling2D")
class MaxPooling2D(_Pool2D):
    """Max over windows of a (batch, height, width, channels) input."""


@register_layer("average_pooling1d", "AveragePooling1D")
class AveragePooling1D(_Pool1D):
    """Average over windows of a (batch, steps, channels) input."""


@register_layer("average_pooling2d", "AveragePooling2D")
class AveragePooling2D(_Pool2D):
    """Average over windows of a (batch, height, width, channels) input."""


class _GlobalPool(KerasLayer):
    keepdims: bool = Field(False, description="Keep the pooled axes with size 1.")


@register_layer("global_max_pooling1d", "GlobalMaxPooling1D")
class GlobalMaxPooling1D(_GlobalPool):
    """Max over the steps axis: (batch, steps, channels) -> (batch, channels)."""


@register_layer("global_max_pooling2d", "GlobalMaxPooling2D")
class GlobalMaxPooling2D(_GlobalPool):
    """Max over height and width: (batch, h, w, channels) -> (batch, channels)."""


@register_layer("global_average_pooling1d", "GlobalAveragePooling1D")
class GlobalAveragePooling1D(_GlobalPool):
    """Mean over the steps axis (respects a padding mask)."""


@register_layer("global_average_pooling2d", "GlobalAveragePooling2D")
class GlobalAveragePooling2D(_GlobalPool):
    """Mean over height and width."""


# ---------------------------------------------------------------- recurrent


class _Recurrent(KerasLayer):
    units: Tunable[PositiveInt] = Field(description="Size of the hidden state.")
    activation: Tunable[Activation] = Field("tanh", description="Activation of the candidate state.")
    return_sequences: bool = Field(False, description="Return every step's output, not only the last.")
    go_backwards: bool = Field(False, description="Read the sequence in reverse.")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout on the inputs.")
    recurrent_dropout: Tunable[Rate] = Field(0.0, description="Dropout on the recurrent state (disables cuDNN).")
    use_bias: bool = Field(True, description="Add bias vectors.")


@register_layer("lstm", "LSTM")
class LSTM(_Recurrent):
    """Long short-term memory recurrent layer."""

    recurrent_activation: Activation = Field("sigmoid", description="Activation of the gates.")
    unit_forget_bias: bool = Field(True, description="Initialize the forget gate bias to 1.")


@register_layer("gru", "GRU")
class GRU(_Recurrent):
    """Gated recurrent unit layer."""

    recurrent_activation: Activation = Field("sigmoid", description="Activation of the gates.")
    reset_after: bool = Field(True, description="Apply the reset gate after the matrix product (cuDNN style).")


@register_layer("simple_rnn", "SimpleRNN")
class SimpleRNN(_Recurrent):
    """Fully-connected recurrent layer."""


def _layer_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("layer"))
    return getattr(value, "layer", None)


WrappedRNN = Annotated[
    Union[Annotated[LSTM, Tag("lstm")], Annotated[GRU, Tag("gru")], Annotated[SimpleRNN, Tag("simple_rnn")]],
    Discriminator(_layer_name, custom_error_type="rnn_layer",
                  custom_error_message="a recurrent layer mapping: {layer: lstm|gru|simple_rnn, units: ...}"),
]


@register_layer("bidirectional", "Bidirectional")
class Bidirectional(KerasLayer):
    """Runs a recurrent layer forwards and backwards and merges the two outputs."""

    rnn: WrappedRNN = Field(description="The wrapped recurrent layer, e.g. {layer: lstm, units: 32}.")
    merge_mode: Literal["concat", "sum", "mul", "ave"] | None = Field(
        "concat", description="How the two directions are combined (null: return both).")

    @model_validator(mode="after")
    def _no_wiring(self):
        if self.rnn.input_names() or self.rnn.name is not None:
            raise ValueError("the wrapped rnn reads the bidirectional node's input: remove its `input`/`name`")
        return self

    def params(self) -> dict[str, Any]:
        return {"layer": self.rnn, "merge_mode": self.merge_mode, "trainable": self.trainable}


# ---------------------------------------------------------------- attention and merging


@register_layer("multi_head_attention", "MultiHeadAttention")
class MultiHeadAttention(KerasLayer):
    """Multi-head attention: `input` is the query; `value` and `key` default to it (self-attention)."""

    value: str | None = Field(None, description="Node or feature attended to (default: the query).")
    key: str | None = Field(None, description="Node or feature giving the keys (default: `value`).")
    num_heads: Tunable[PositiveInt] = Field(description="Number of attention heads.")
    key_dim: Tunable[PositiveInt] = Field(description="Size of each head for query and key.")
    value_dim: PositiveInt | None = Field(None, description="Size of each head for value (default: key_dim).")
    dropout: Tunable[Rate] = Field(0.0, description="Dropout on the attention weights.")
    use_bias: bool = Field(True, description="Dense projections use biases.")
    use_causal_mask: bool = Field(False, description="Mask future positions (decoder self-attention).")

    call_fields: ClassVar[tuple[str, ...]] = ("use_causal_mask",)

    def references(self) -> list[tuple[str, str]]:
        refs = super().references()
        refs += [(f, getattr(self, f)) for f in ("value", "key") if getattr(self, f) is not None]
        return refs

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.pop("value")
        out.pop("key")
        return out

    def call(self, layer: Any, inputs: list) -> Any:
        query, rest = inputs[0], list(inputs[1:])
        value = rest.pop(0) if self.value is not None else query
        key = rest.pop(0) if self.key is not None else value
        return layer(query, value, key=key, use_causal_mask=self.use_causal_mask)


class _Merge(KerasLayer):
    merge: ClassVar[bool] = True


@register_layer("add", "Add")
class Add(_Merge):
    """Element-wise sum of inputs of the same shape."""


@register_layer("subtract", "Subtract")
class Subtract(_Merge):
    """Element-wise difference of exactly two inputs."""


@register_layer("multiply", "Multiply")
class Multiply(_Merge):
    """Element-wise product of inputs of the same shape."""


@register_layer("average", "Average")
class Average(_Merge):
    """Element-wise mean of inputs of the same shape."""


@register_layer("maximum", "Maximum")
class Maximum(_Merge):
    """Element-wise maximum of inputs of the same shape."""


@register_layer("minimum", "Minimum")
class Minimum(_Merge):
    """Element-wise minimum of inputs of the same shape."""


@register_layer("concatenate", "Concatenate")
class Concatenate(_Merge):
    """Joins inputs along `axis` (the others must match)."""

    axis: int = Field(-1, description="Axis to concatenate along.")
