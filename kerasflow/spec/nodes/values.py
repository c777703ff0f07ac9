"""Value types shared by node schemas and `model.auto` (registers no node type,
so `kerasflow.spec.auto` can use them without building every layer and block
schema class)."""

from typing import Annotated, Literal, Union

from pydantic import Field, confloat

from kerasflow.spec.base import Count, Tunable, Width

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
Size2D = Union[Count, Annotated[list[Count], Field(min_length=2, max_length=2)]]
# A list (or a `tune: choice` of lists, to search depth) of tunable sizes.
Sizes = Tunable[Annotated[list[Tunable[Width]], Field(min_length=1)]]
