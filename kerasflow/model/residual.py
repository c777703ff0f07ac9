"""Build function of the `residual` block: a chain of nodes plus a skip
connection (a `shortcut` chain, or projected when only the widths differ).
Imports Keras."""

from __future__ import annotations

import keras


def _chain(items, x, prefix: str, trainable: bool):
    from kerasflow.model.builder import build_node  # the chain items are ordinary nodes

    for i, item in enumerate(items):
        kind = getattr(item, "layer", None) or item.block
        if not trainable:
            item = item.model_copy(update={"trainable": False})
        x = build_node(item, [x], f"{prefix}.{item.name or f'{i}_{kind}'}")
    return x


def build_residual(node, inputs, name):
    x = _chain(node.layers, inputs[0], name, node.trainable)
    skip = inputs[0] if node.shortcut is None else _chain(node.shortcut, inputs[0], f"{name}.shortcut", node.trainable)
    kw = {"trainable": node.trainable}
    if node.shortcut is None and node.project and skip.shape[-1] != x.shape[-1]:
        width = x.shape[-1]
        project = keras.layers.Conv2D(width, 1, name=f"{name}.projection", **kw) if len(skip.shape) == 4 \
            else keras.layers.Dense(width, name=f"{name}.projection", **kw)
        skip = project(skip)
    if tuple(skip.shape[1:]) != tuple(x.shape[1:]):  # Add would broadcast size-1 axes silently
        what = "the shortcut gives" if node.shortcut is not None else "the skip is"
        raise ValueError(f"the chain gives shape {tuple(x.shape)} but {what} {tuple(skip.shape)}; a residual adds "
                         "equal shapes" + ("" if node.shortcut is not None else
                                           ": add a `shortcut` (e.g. a 1x1 conv with the chain's strides)"))
    x = keras.layers.Add(name=f"{name}.add", **kw)([x, skip])  # Keras' examples add [x, residual]
    if node.norm == "layer":
        x = keras.layers.LayerNormalization(name=f"{name}.norm", **kw)(x)
    elif node.norm == "batch":
        x = keras.layers.BatchNormalization(momentum=node.batch_norm_momentum, name=f"{name}.norm", **kw)(x)
    if node.activation:
        x = keras.layers.Activation(node.activation, name=f"{name}.activation", **kw)(x)
    return x
