"""The `hub_backbone` block: a KerasHub text backbone (BERT family) behind a
serializable kerasflow layer, on the token ids of a `text` feature.

The text feature's `TextVectorization` (its vocabulary adapted on the
training data) is the tokenizer: it is part of the model, so the exported
SavedModel takes raw strings and runs on core TensorFlow ops only (stock TF
Serving and the embedded server load it without tensorflow-text). The layer
adds BERT's [CLS] token and the padding mask and calls the backbone.

`keras_hub` is imported only when such a layer is built or loaded, so
`import kerasflow` and every model without one stay as fast as before.
"""

from __future__ import annotations

import keras

from kerasflow.model.backbones import WeightsUnavailable, reachable
from kerasflow.spec.nodes.backbones import declared_offline
from kerasflow.spec.nodes.hub import (INSTALL_HINT, is_local_preset, offline_preset_message, preset_cached,
                                      preset_host)

OUTPUTS = ("pooled", "sequence")


def keras_hub_module():
    """`keras_hub`, or a ValueError naming the extra to install."""
    try:
        import keras_hub
    except ImportError as exc:
        raise ValueError(f"the hub_backbone block needs KerasHub, which is not installed ({exc}): "
                         f"{INSTALL_HINT}") from None
    return keras_hub


def backbone_class(name: str):
    """The `keras_hub.models` backbone class called `name` (a ValueError with close names otherwise)."""
    models = keras_hub_module().models
    cls = getattr(models, name, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, keras.Model)):
        from kerasflow.spec.errors import did_you_mean

        known = [n for n in dir(models) if n.endswith("Backbone")]
        raise ValueError(f"unknown KerasHub backbone {name!r}{did_you_mean(name, known)}")
    return cls


@keras.saving.register_keras_serializable(package="kerasflow")
class HubTextBackbone(keras.layers.Layer):
    """A KerasHub text backbone called on token ids.

    Args:
        backbone: A `keras_hub.models` backbone class name, e.g. `"BertBackbone"`.
        config: The backbone's config (its `get_config()`, or constructor arguments).
        cls_token: Prepend the id `vocabulary_size - 1` as a [CLS] token.
        output: `"pooled"` (one vector per text) or `"sequence"` (per token).
        **kwargs: Base layer arguments (`name`, `dtype`).

    Id 0 is padding (masked), as `TextVectorization` pads. The inner model is
    `self.backbone`; `layers` lists its layers, so a stage can unfreeze its
    top N (`unfreeze: [{node: ..., top: N}]`).
    """

    def __init__(self, backbone: str, config: dict, cls_token: bool = True, output: str = "pooled", **kwargs):
        super().__init__(**kwargs)
        if output not in OUTPUTS:
            raise ValueError(f"Received an invalid value for output, expected one of {OUTPUTS}. Received: "
                             f"output={output!r}")
        if not isinstance(config, dict):
            raise ValueError(f"Received an invalid value for config, expected a dict. Received: config={config!r}")
        self.backbone_name = backbone
        self.cls_token = bool(cls_token)
        self.output_kind = output
        self.backbone = backbone_class(backbone).from_config(dict(config))
        self.vocabulary_size = int(self.backbone.get_config().get("vocabulary_size", 0))

    @property
    def layers(self):
        return self.backbone.layers

    def call(self, inputs, training=None):
        ids = keras.ops.cast(inputs, "int32")
        if self.cls_token:
            cls = keras.ops.full((keras.ops.shape(ids)[0], 1), self.vocabulary_size - 1, dtype="int32")
            ids = keras.ops.concatenate([cls, ids], axis=1)
        names = set(self.backbone.input) if isinstance(self.backbone.input, dict) else {"token_ids"}
        features = {"token_ids": ids, "padding_mask": keras.ops.not_equal(ids, 0)}
        if "segment_ids" in names:
            features["segment_ids"] = keras.ops.zeros_like(ids)
        out = self.backbone({k: v for k, v in features.items() if k in names}, training=training)
        sequence = out["sequence_output"] if isinstance(out, dict) else out
        if self.output_kind == "sequence":
            return sequence
        return out["pooled_output"] if isinstance(out, dict) and "pooled_output" in out else sequence[:, 0, :]

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone_name, "config": self.backbone.get_config(),
                "cls_token": self.cls_token, "output": self.output_kind}


def build_hub_backbone(node, inputs, name):
    x = inputs[0]
    if len(x.shape) != 2:
        raise ValueError(f"expected the token ids of a `text` feature (output_mode: int), a rank-2 input "
                         f"(batch, tokens); got shape {tuple(x.shape)}")
    if node.preset is not None:
        pretrained = _from_preset(node.backbone, node.preset)
        layer = HubTextBackbone(node.backbone, pretrained.get_config(), node.cls_token, node.output, name=name)
        layer.backbone.set_weights(pretrained.get_weights())
    else:
        layer = HubTextBackbone(node.backbone, node.config, node.cls_token, node.output, name=name)
    limit = layer.backbone.get_config().get("max_sequence_length")
    length = x.shape[1] + int(node.cls_token) if x.shape[1] is not None else None
    if limit and length and length > limit:
        raise ValueError(f"the backbone's max_sequence_length {limit} is shorter than the {length} token ids it gets "
                         f"(the text feature's sequence_length{' + 1 for [CLS]' if node.cls_token else ''})")
    _check_vocabulary(x, layer)
    layer.trainable = node.trainable
    return layer(x)


def _check_vocabulary(ids, layer) -> None:
    """Token ids past the embedding table fail at run time deep inside TensorFlow: catch them when the ids come
    straight from a text feature's TextVectorization, whose vocabulary size is known when the model is built."""
    producer = getattr(getattr(ids, "_keras_history", None), "operation", None)
    size = getattr(producer, "vocabulary_size", None)
    if not callable(size) or not layer.vocabulary_size:
        return
    needed = size() + int(layer.cls_token)
    if needed > layer.vocabulary_size:
        raise ValueError(f"the backbone's vocabulary_size {layer.vocabulary_size} is smaller than the {needed} ids it "
                         f"gets (the text feature's vocabulary of {size()}{' + 1 for [CLS]' if layer.cls_token else ''}"
                         f"): give vocabulary_size: {needed} or lower the feature's max_tokens")


def _from_preset(backbone: str, preset: str):
    """The preset's backbone with its weights: from a local directory or the kagglehub cache, or downloaded
    when the host answers; otherwise `WeightsUnavailable` with the one offline message."""
    cls = backbone_class(backbone)
    if not is_local_preset(preset) and not preset_cached(preset) and (declared_offline() or not reachable(preset_host(preset))):
        raise WeightsUnavailable(offline_preset_message(backbone, preset))
    return cls.from_preset(preset)
