"""Position encodings: the `PositionalEmbedding` layer and the
`positional_embedding` / `token_and_position_embedding` blocks. Imports Keras."""

from __future__ import annotations

import keras
from keras import ops

MODES = ("learned", "sinusoidal")


@keras.saving.register_keras_serializable(package="kerasflow")
class PositionalEmbedding(keras.layers.Layer):
    """Adds a position encoding to a (batch, steps, features) input.

    Args:
        mode: `"learned"` (a trainable table of `max_length` x features) or
            `"sinusoidal"` (fixed sines/cosines of Vaswani et al., no weights).
        max_length: Longest sequence. Required for `"learned"` when the
            input length is not fixed; defaults to the input length.
        **kwargs: Base layer arguments (`name`, `trainable`, `dtype`).

    The input's padding mask, if any, passes through unchanged.
    """

    def __init__(self, mode: str = "learned", max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"Received an invalid value for mode, expected one of {MODES}. Received: mode={mode!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError("Received an invalid value for max_length, expected a positive integer. "
                             f"Received: max_length={max_length!r}")
        self.mode = mode
        self.max_length = max_length
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"PositionalEmbedding expects a (batch, steps, features) input, received shape {input_shape}")
        steps, features = input_shape[1], input_shape[2]
        if self.max_length is None:
            if steps is None and self.mode == "learned":
                raise ValueError("a learned position table needs `max_length` when the sequence length is not fixed")
            self.max_length = steps
        elif steps is not None and steps > self.max_length:
            raise ValueError(f"sequence length {steps} exceeds max_length={self.max_length}")
        if self.mode == "learned":
            self.table = self.add_weight(name="positions", shape=(self.max_length, features),
                                         initializer="random_uniform", trainable=True)

    def call(self, inputs):
        steps = ops.shape(inputs)[1]
        if self.mode == "learned":
            return inputs + ops.cast(self.table[:steps], inputs.dtype)[None]
        return inputs + ops.cast(sinusoids(steps, ops.shape(inputs)[2]), inputs.dtype)[None]

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "max_length": self.max_length}


def sinusoids(steps, features):
    """(steps, features) encoding: sin on even feature indexes, cos on odd ones."""
    positions = ops.cast(ops.arange(steps), "float32")[:, None]
    index = ops.arange(features)[None, :]
    rates = ops.power(10000.0, -ops.cast(2 * (index // 2), "float32") / ops.cast(features, "float32"))
    angles = positions * rates
    return ops.where(index % 2 == 0, ops.sin(angles), ops.cos(angles))


def build_positional_embedding(node, inputs, name):
    layer = PositionalEmbedding(node.mode, node.max_length, name=name, trainable=node.trainable)
    return layer(inputs[0])


def build_token_and_position_embedding(node, inputs, name):
    tokens = keras.layers.Embedding(node.vocab_size, node.embed_dim, mask_zero=node.mask_zero,
                                    name=f"{name}.token", trainable=node.trainable)(inputs[0])
    layer = PositionalEmbedding(node.mode, node.max_length, name=f"{name}.position", trainable=node.trainable)
    return layer(tokens)
