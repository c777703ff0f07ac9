"""Parameter schemas of the recurrent layers and their `bidirectional` wrapper (TF-free)."""

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, model_validator

from kerasflow.spec.base import Tunable, Width
from kerasflow.spec.nodes.layers import KerasLayer
from kerasflow.spec.nodes.values import Activation, Rate
from kerasflow.spec.registry import register_layer


class _Recurrent(KerasLayer):
    units: Tunable[Width] = Field(description="Size of the hidden state.")
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
