"""Parameter schemas of the convolution and pooling layers (TF-free)."""

from typing import Literal

from pydantic import Field

from kerasflow.spec.base import Choosable, Count, Tunable, Width
from kerasflow.spec.nodes.layers import KerasLayer, Regularizer
from kerasflow.spec.nodes.values import Activation, Initializer, Padding, Size2D
from kerasflow.spec.registry import register_layer


class _Separable(KerasLayer):
    filters: Tunable[Width] = Field(description="Number of output channels.")
    strides: Size2D = Field(1, description="Stride of the convolution.")
    padding: Padding = Field("valid", description="`valid` (no padding) or `same` (keep the size).")
    dilation_rate: Size2D = Field(1, description="Dilation rate of the kernel.")
    activation: Tunable[Activation | None] = Field(None, description="Activation name.")
    use_bias: bool = Field(True, description="Add a bias vector.")


class _Conv(_Separable):
    kernel_initializer: Initializer = Field("glorot_uniform", description="Initializer of the kernel.")
    kernel_regularizer: Choosable(Regularizer, "Regularizer") | None = Field(None, description="Penalty on the kernel, e.g. {l2: 1e-4}.")


@register_layer("conv1d", "Conv1D")
class Conv1D(_Conv):
    """1D convolution over (batch, steps, channels)."""

    kernel_size: Tunable[Count] = Field(description="Length of the convolution window.")
    strides: Count = Field(1, description="Stride of the convolution.")
    padding: Literal["valid", "same", "causal"] = Field("valid", description="`causal` never looks ahead in time.")
    dilation_rate: Count = Field(1, description="Dilation rate of the kernel.")


@register_layer("conv2d", "Conv2D")
class Conv2D(_Conv):
    """2D convolution over (batch, height, width, channels)."""

    kernel_size: Tunable[Size2D] = Field(description="Window size: an int or [height, width].")


@register_layer("separable_conv1d", "SeparableConv1D")
class SeparableConv1D(_Separable):
    """Depthwise then pointwise 1D convolution."""

    kernel_size: Tunable[Count] = Field(description="Length of the convolution window.")
    strides: Count = Field(1, description="Stride of the convolution.")
    dilation_rate: Count = Field(1, description="Dilation rate of the kernel.")
    depth_multiplier: Count = Field(1, description="Depthwise channels per input channel.")


@register_layer("separable_conv2d", "SeparableConv2D")
class SeparableConv2D(_Separable):
    """Depthwise then pointwise 2D convolution."""

    kernel_size: Tunable[Size2D] = Field(description="Window size: an int or [height, width].")
    depth_multiplier: Count = Field(1, description="Depthwise channels per input channel.")


class _Pool1D(KerasLayer):
    pool_size: Tunable[Count] = Field(2, description="Size of the pooling window.")
    strides: Count | None = Field(None, description="Stride (default: pool_size).")
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
