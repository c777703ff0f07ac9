"""Build functions of `transformer_encoder` and `transformer_decoder`: standard
Keras layers (MultiHeadAttention, Dense, Dropout, Add, LayerNormalization)
named `<node>.<i>.<part>`, so padding masks propagate and models reload
without custom code. Imports Keras."""

from __future__ import annotations

import keras


class _Sublayers:
    """Creates the layers of transformer layer `i` of a block node."""

    def __init__(self, node, name: str, i: int, width: int):
        self.node, self.prefix, self.width = node, f"{name}.{i}", width

    def kw(self, part: str) -> dict:
        return {"name": f"{self.prefix}.{part}", "trainable": self.node.trainable}

    def residual(self, x, part: str, branch):
        """x + dropout(branch(x)), with LayerNormalization before (pre) or after (post)."""
        node = self.node
        h = keras.layers.LayerNormalization(epsilon=node.epsilon, **self.kw(f"{part}_norm"))(x) \
            if node.norm == "pre" else x
        y = keras.layers.Dropout(node.dropout, **self.kw(f"{part}_dropout"))(branch(h))
        x = keras.layers.Add(**self.kw(f"{part}_add"))([x, y])
        if node.norm == "post":
            x = keras.layers.LayerNormalization(epsilon=node.epsilon, **self.kw(f"{part}_norm"))(x)
        return x

    def attention(self, part: str, causal: bool, context=None):
        layer = keras.layers.MultiHeadAttention(self.node.num_heads, self.node.key_dim,
                                                dropout=self.node.attention_dropout, **self.kw(part))

        def branch(h):
            source = h if context is None else context
            return layer(h, source, use_causal_mask=causal)

        return branch

    def feed_forward(self, h):
        h = keras.layers.Dense(self.node.ff_dim, activation=self.node.activation, **self.kw("ffn_1"))(h)
        return keras.layers.Dense(self.width, **self.kw("ffn_2"))(h)


def _width(x, role: str) -> int:
    if len(x.shape) != 3 or x.shape[-1] is None:
        raise ValueError(f"expected the {role} as (batch, steps, features) with known features, got {tuple(x.shape)}")
    return x.shape[-1]


def build_transformer_encoder(node, inputs, name):
    x = inputs[0]
    width = _width(x, "input")
    for i in range(node.num_layers):
        sub = _Sublayers(node, name, i, width)
        x = sub.residual(x, "attention", sub.attention("attention", node.causal))
        x = sub.residual(x, "ffn", sub.feed_forward)
    return x


def build_transformer_decoder(node, inputs, name):
    if len(inputs) != 2:
        raise ValueError(f"expected two inputs, `input: [target_sequence, encoder_output]`; "
                         f"received {len(inputs)}")
    x, context = inputs
    width = _width(x, "target sequence (first input)")
    _width(context, "encoder output (second input)")
    for i in range(node.num_layers):
        sub = _Sublayers(node, name, i, width)
        x = sub.residual(x, "self_attention", sub.attention("self_attention", node.causal))
        x = sub.residual(x, "cross_attention", sub.attention("cross_attention", False, context))
        x = sub.residual(x, "ffn", sub.feed_forward)
    return x
