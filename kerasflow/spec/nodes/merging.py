"""Parameter schemas of attention and of the layers merging several inputs (TF-free)."""

from typing import Any, ClassVar

from pydantic import Field

from kerasflow.spec.base import Tunable, Width
from kerasflow.spec.nodes.layers import KerasLayer
from kerasflow.spec.nodes.values import Rate
from kerasflow.spec.registry import register_layer


@register_layer("multi_head_attention", "MultiHeadAttention")
class MultiHeadAttention(KerasLayer):
    """Multi-head attention: `input` is the query; `value` and `key` default to it (self-attention)."""

    value: str | None = Field(None, description="Node or feature attended to (default: the query).")
    key: str | None = Field(None, description="Node or feature giving the keys (default: `value`).")
    num_heads: Tunable[Width] = Field(description="Number of attention heads.")
    key_dim: Tunable[Width] = Field(description="Size of each head for query and key.")
    value_dim: Width | None = Field(None, description="Size of each head for value (default: key_dim).")
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
