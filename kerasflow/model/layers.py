"""Parameter schemas of the Keras layers a spec can name. No TensorFlow import:
each registration names its `keras.layers` class by string."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, confloat

from kerasflow.model.registry import LayerNode, register_layer
from kerasflow.spec.base import Tunable

Activation = str


@register_layer("dense", "Dense")
class Dense(LayerNode):
    """Densely-connected layer: `activation(dot(x, kernel) + bias)`."""

    units: Tunable[PositiveInt] = Field(description="Dimensionality of the output space.")
    activation: Tunable[Activation | None] = Field(None, description="Activation name, e.g. relu, softmax.")
    use_bias: bool = True
    kernel_initializer: str = "glorot_uniform"
    kernel_regularizer: str | None = None


@register_layer("dropout", "Dropout")
class Dropout(LayerNode):
    """Randomly sets input units to 0 with frequency `rate` during training."""

    rate: Tunable[confloat(ge=0.0, lt=1.0)] = Field(description="Fraction of the input units to drop.")
    seed: int | None = None


@register_layer("activation", "Activation")
class Activation_(LayerNode):
    """Applies an activation function."""

    activation: Tunable[Activation] = Field(description="Activation name.")
