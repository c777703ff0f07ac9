"""Parameter schemas of the core Keras layers, and the shared base of every
layer schema (their value types are in `values`). No TensorFlow import: each
registration names its `keras.layers` class by string, and the builder
instantiates it with `params()` and calls it through `call()`.

Other layers live in `convolution`, `recurrent`, `merging` and
`preprocessing`; blocks in `blocks`. Each is imported only when a spec names
one of its types.
"""

from typing import Annotated, Any, ClassVar

from pydantic import Field, PositiveFloat, confloat, model_validator

from kerasflow.spec.base import Choosable, Count, NonNegativeFactor, Seed, SpecModel, Tunable, Width
from kerasflow.spec.nodes.values import Activation, Initializer, Rate
from kerasflow.spec.registry import LayerNode, register_layer


class Regularizer(SpecModel):
    """L1/L2 weight penalty added to the loss."""

    l1: Tunable[NonNegativeFactor] = Field(0.0, description="L1 factor.")
    l2: Tunable[NonNegativeFactor] = Field(0.0, description="L2 factor.")

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

    units: Tunable[Width] = Field(description="Dimensionality of the output space.")
    activation: Tunable[Activation | None] = Field(None, description="Activation name, e.g. relu, softmax.")
    use_bias: bool = Field(True, description="Add a bias vector.")
    kernel_initializer: Initializer = Field("glorot_uniform", description="Initializer of the kernel.")
    kernel_regularizer: Choosable(Regularizer, "Regularizer") | None = Field(None, description="Penalty on the kernel, e.g. {l2: 1e-4}.")


@register_layer("dropout", "Dropout")
class Dropout(KerasLayer):
    """Randomly sets input units to 0 with frequency `rate` during training."""

    rate: Tunable[Rate] = Field(description="Fraction of the input units to drop.")
    seed: Seed | None = Field(None, description="Seed of the dropout mask (default: from the spec seed).")


@register_layer("spatial_dropout1d", "SpatialDropout1D")
class SpatialDropout1D(KerasLayer):
    """Dropout of whole 1D feature maps (channels) of a (batch, steps, channels) input."""

    rate: Tunable[Rate] = Field(description="Fraction of the channels to drop.")
    seed: Seed | None = Field(None, description="Seed of the dropout mask.")


@register_layer("gaussian_noise", "GaussianNoise")
class GaussianNoise(KerasLayer):
    """Adds zero-centered Gaussian noise during training (a regularizer)."""

    stddev: Tunable[NonNegativeFactor] = Field(description="Standard deviation of the noise.")
    seed: Seed | None = Field(None, description="Seed of the noise.")


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

    n: Count = Field(description="Number of repetitions.")


@register_layer("embedding", "Embedding")
class Embedding(KerasLayer):
    """Turns integer ids in [0, input_dim) into dense vectors of size output_dim."""

    input_dim: Count = Field(description="Vocabulary size (largest id + 1).")
    output_dim: Tunable[Width] = Field(description="Embedding size.")
    mask_zero: bool = Field(False, description="Treat id 0 as padding and mask it downstream.")
    embeddings_initializer: Initializer = Field("random_uniform", description="Initializer of the table.")
