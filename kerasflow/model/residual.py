"""Build function of the `residual` block: a chain of nodes plus a skip
connection (projected when the widths differ). Imports Keras."""

from __future__ import annotations

import keras


def build_residual(node, inputs, name):
    from kerasflow.model.builder import build_node  # the chain items are ordinary nodes

    skip = x = inputs[0]
    for i, item in enumerate(node.layers):
        kind = getattr(item, "layer", None) or item.block
        if not node.trainable:
            item = item.model_copy(update={"trainable": False})
        x = build_node(item, [x], f"{name}.{item.name or f'{i}_{kind}'}")
    kw = {"trainable": node.trainable}
    if node.project and skip.shape[-1] != x.shape[-1]:
        width = x.shape[-1]
        project = keras.layers.Conv2D(width, 1, name=f"{name}.projection", **kw) if len(skip.shape) == 4 \
            else keras.layers.Dense(width, name=f"{name}.projection", **kw)
        skip = project(skip)
    if tuple(skip.shape[1:]) != tuple(x.shape[1:]):  # Add would broadcast size-1 axes silently
        raise ValueError(f"the chain maps shape {tuple(skip.shape)} to {tuple(x.shape)}; a residual needs the same "
                         "shape back" + (" (only the last axis is projected)" if node.project else ""))
    x = keras.layers.Add(name=f"{name}.add", **kw)([skip, x])
    if node.norm == "layer":
        x = keras.layers.LayerNormalization(name=f"{name}.norm", **kw)(x)
    elif node.norm == "batch":
        x = keras.layers.BatchNormalization(momentum=node.batch_norm_momentum, name=f"{name}.norm", **kw)(x)
    if node.activation:
        x = keras.layers.Activation(node.activation, name=f"{name}.activation", **kw)(x)
    return x
