"""The `hub_backbone` block schema (TF-free): a KerasHub text backbone
(`keras_hub.models.<Class>`, e.g. `BertBackbone`) from a preset or a config.

Validation never imports `keras_hub` (it is an optional extra,
`pip install kerasflow[hub]`): it checks the class name's form, that exactly
one of `preset` / `config` is given, that a local preset directory exists,
and, on a machine declared offline (`KERASFLOW_OFFLINE=1`), that a named
preset is already in the KerasHub (kagglehub) cache. Plan and build check
the download itself (`kerasflow.model.hub`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kerasflow.spec.nodes.backbones import declared_offline
from kerasflow.spec.nodes.blocks import Block
from kerasflow.spec.registry import register_block

PRESET_ORIGIN = "https://www.kaggle.com/models/keras"  # where KerasHub's named presets download from
# hosts of KerasHub's preset handles (`kaggle://owner/model/keras/variant`, `hf://owner/model`); names use Kaggle
PRESET_HOSTS = {"kaggle": "www.kaggle.com", "hf": "huggingface.co"}
INSTALL_HINT = "pip install 'kerasflow[hub]'"


def kagglehub_cache_dir() -> Path:
    """Where kagglehub (KerasHub's downloader) keeps presets (`$KAGGLEHUB_CACHE`)."""
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub").expanduser()


def preset_cached(preset: str) -> bool:
    """Whether a named KerasHub preset (`bert_tiny_en_uncased`) is in the kagglehub cache."""
    return any(kagglehub_cache_dir().glob(f"models/keras/*/keras/{preset}/*/config.json"))


def preset_host(preset: str) -> str:
    """The host a named preset or a `kaggle://` / `hf://` handle downloads from."""
    scheme = preset.partition("://")[0] if "://" in preset else "kaggle"
    return PRESET_HOSTS.get(scheme, scheme)


def is_local_preset(preset: str) -> bool:
    """A preset given as a directory path (KerasHub's `save_to_preset` layout) rather than a name or handle."""
    if "://" in preset:
        return False
    return "/" in preset or preset.startswith(".") or Path(preset).expanduser().is_dir()


def offline_preset_message(backbone: str, preset: str) -> str:
    """The one wording of "this preset needs a download" (validate and build)."""
    origin = f"https://{preset_host(preset)}" if "://" in preset else PRESET_ORIGIN
    return (f"offline: the KerasHub preset {preset!r} of {backbone} needs a download from {origin} (not in "
            f"the kagglehub cache {kagglehub_cache_dir()}), or give `config:` (random init, no download) / a "
            f"local preset directory")


@register_block("hub_backbone", "kerasflow.model.hub:build_hub_backbone")
class HubBackbone(Block):
    """A KerasHub text backbone (BERT family) on the token ids of a `text` feature; needs `kerasflow[hub]`."""

    backbone: str = Field(
        pattern=r"^[A-Z][A-Za-z0-9]*Backbone$",
        description="KerasHub backbone class in keras_hub.models, e.g. BertBackbone, DistilBertBackbone, "
        "RobertaBackbone, AlbertBackbone.")
    preset: str | None = Field(
        None, description="KerasHub preset name (downloaded once, then cached by kagglehub; e.g. "
        "bert_tiny_en_uncased), a kaggle:// or hf:// handle, or a local preset directory. Exclusive with `config`.")
    # plain values only: the mapping goes to the backbone's constructor, never to Keras deserialization
    config: dict[str, int | float | bool | str | None] | None = Field(
        None, description="The backbone's constructor arguments (random init, no download), e.g. {vocabulary_size: "
        "2001, num_layers: 2, num_heads: 2, hidden_dim: 64, intermediate_dim: 128, max_sequence_length: 65}. "
        "vocabulary_size must exceed the text feature's max_tokens (one more id for the [CLS] token).")
    cls_token: bool = Field(
        True, description="Prepend a [CLS] token (id vocabulary_size - 1) to the token ids, as BERT-style "
        "pooling expects; the sequence is then one longer than the text feature's sequence_length.")
    output: Literal["pooled", "sequence"] = Field(
        "pooled", description="`pooled`: one vector per text (the backbone's pooled_output, or the [CLS] "
        "position's features); `sequence`: the per-token features.")

    @model_validator(mode="after")
    def _source(self):
        if (self.preset is None) == (self.config is None):
            raise ValueError("expected exactly one of `preset` (a KerasHub preset name or directory) and `config` "
                             f"(constructor arguments, no download), received "
                             f"{'both' if self.preset is not None else 'neither'}")
        preset = self.preset
        if preset is not None:
            if is_local_preset(preset):
                if not (Path(preset).expanduser() / "config.json").is_file():
                    raise ValueError(f"preset directory {preset!r} not found or without config.json "
                                     "(paths are relative to the working directory)")
            elif declared_offline() and not preset_cached(preset):
                raise ValueError(offline_preset_message(self.backbone, preset))
        return self
