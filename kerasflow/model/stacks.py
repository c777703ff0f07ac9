"""Build functions of the stacking blocks `mlp`, `conv_stack` and `rnn_stack`:
plain Keras layers named `<node>.<part>`. Imports Keras."""

from __future__ import annotations

import keras


def build_mlp(node, inputs, name):
    x = inputs[0]
    regularizer = node.kernel_regularizer.keras_config() if node.kernel_regularizer else None
    for i, units in enumerate(node.units):
        kw = {"trainable": node.trainable}
        # With batch norm the activation goes after the normalization.
        x = keras.layers.Dense(units, use_bias=node.use_bias, kernel_regularizer=regularizer,
                               activation=None if node.batch_norm else node.activation,
                               name=f"{name}.dense_{i}", **kw)(x)
        if node.batch_norm:
            x = keras.layers.BatchNormalization(momentum=node.batch_norm_momentum, name=f"{name}.norm_{i}", **kw)(x)
            x = keras.layers.Activation(node.activation, name=f"{name}.act_{i}", **kw)(x)
        if node.dropout:
            x = keras.layers.Dropout(node.dropout, name=f"{name}.dropout_{i}", **kw)(x)
    return x


def build_conv_stack(node, inputs, name):
    x = inputs[0]
    rank = len(x.shape)
    if rank not in (3, 4):
        raise ValueError(f"expected input rank 3 (steps, channels) or 4 (height, width, channels), got {tuple(x.shape)}")
    conv, pool = (keras.layers.Conv1D, {"max": keras.layers.MaxPooling1D, "average": keras.layers.AveragePooling1D}) \
        if rank == 3 else (keras.layers.Conv2D, {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D})
    kernel, pool_size = node.kernel_size, node.pool_size
    if rank == 3 and (isinstance(kernel, list) or isinstance(pool_size, list)):
        raise ValueError("1D convolutions take an int kernel_size and pool_size, not [height, width]")
    kw = {"trainable": node.trainable}
    for i, filters in enumerate(node.filters):
        for j in range(node.convs_per_level):
            part = f"{i}" if node.convs_per_level == 1 else f"{i}_{j}"
            x = conv(filters, kernel, padding=node.padding, use_bias=node.use_bias,
                     activation=None if node.batch_norm else node.activation, name=f"{name}.conv_{part}", **kw)(x)
            if node.batch_norm:
                x = keras.layers.BatchNormalization(momentum=node.batch_norm_momentum,
                                                    name=f"{name}.norm_{part}", **kw)(x)
                x = keras.layers.Activation(node.activation, name=f"{name}.act_{part}", **kw)(x)
        if node.pool:
            x = pool[node.pool](pool_size, padding=node.pool_padding, name=f"{name}.pool_{i}", **kw)(x)
        if node.dropout:
            x = keras.layers.Dropout(node.dropout, name=f"{name}.dropout_{i}", **kw)(x)
    return x


def build_rnn_stack(node, inputs, name):
    x = inputs[0]
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[node.cell]
    last = len(node.units) - 1
    for i, units in enumerate(node.units):
        sequences = node.return_sequences or i < last
        layer = cell(units, return_sequences=sequences, dropout=node.dropout,
                     recurrent_dropout=node.recurrent_dropout, name=f"{name}.{node.cell}_{i}", trainable=node.trainable)
        if node.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}.bidirectional_{i}", trainable=node.trainable)
        x = layer(x)
    return x


def build_repeat(node, inputs, name):
    """A `repeat` inside another block's chain (a graph-level repeat is expanded
    into ordinary nodes before building): layers named `<name>.<i>.<part>`."""
    from kerasflow.model.builder import build_node  # the repetitions are ordinary nodes

    x = inputs[0]
    for i, item in enumerate(node.repetitions()):
        x = build_node(item, [x], f"{name}.{i}")
    return x
