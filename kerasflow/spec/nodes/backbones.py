"""The `backbone` block schema (TF-free): a `keras.applications` image model
without its classifier, its own `preprocess_input` baked in front.

The applications and their weight files come from the generated table in
`kerasflow.spec.nodes.applications`, so validation knows every name without
importing Keras. Validation checks what it can without TensorFlow or network:
the application name, that a local weights file exists, and, when
`KERASFLOW_OFFLINE=1`, that ImageNet weights are already in the Keras cache.
Plan and build check the download itself (`kerasflow.model.backbones`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kerasflow.spec.base import PositiveFactor, Tunable
from kerasflow.spec.nodes.applications import APPLICATIONS
from kerasflow.spec.nodes.blocks import Block
from kerasflow.spec.registry import register_block

IMAGENET = "imagenet"
OFFLINE_ENV = "KERASFLOW_OFFLINE"
WEIGHT_SUFFIXES = (".h5", ".keras")

Application = Literal[tuple(APPLICATIONS)]


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` keeps downloaded weights (`$KERAS_HOME/models`)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def declared_offline() -> bool:
    """True when the user declared the machine offline (`KERASFLOW_OFFLINE=1`)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def offline_message(application: str, origin: str, cached: Path) -> str:
    """The one wording of "these weights need a download" (validate and build)."""
    return (f"offline: the ImageNet weights of {application} need a download from {origin} (not in the Keras "
            f"cache {cached}), or give `weights: null` (random init) / a local path to a weights file")


@register_block("backbone", "kerasflow.model.backbones:build_backbone")
class Backbone(Block):
    """A `keras.applications` image model without its classifier; raw pixels in, features out."""

    application: Tunable[Application] = Field(
        description="keras.applications model name, e.g. MobileNetV3Small, EfficientNetB0, ResNet50.")
    weights: str | None = Field(
        IMAGENET, description="`imagenet` (downloaded once, then cached in ~/.keras/models), null (random "
        "init) or a path to a weights file (.weights.h5/.h5/.keras) of the same architecture.")
    include_top: Literal[False] = Field(False, description="The ImageNet classifier is never included: "
                                        "put your own head on the features.")
    pooling: Tunable[Literal["avg", "max"]] | None = Field(
        "avg", description="Global pooling of the last feature map (null: the 4D feature map).")
    input_scale: PositiveFactor = Field(
        1.0, description="Pixels are multiplied by this before the application's preprocess_input, which "
        "expects 0-255: 255 when the image feature rescales to [0, 1] (its default `rescale: 1/255`).")
    frozen_batch_norm: bool = Field(
        True, description="Run the backbone's BatchNormalization in inference mode, also when unfrozen "
        "(keeps pretrained statistics while fine-tuning); false to train them (from scratch).")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str | None) -> str | None:
        if value is None or value == IMAGENET:
            return value
        if not value.endswith(WEIGHT_SUFFIXES):
            raise ValueError(f"expected `imagenet`, null or a weights file path ending in "
                             f"{' or '.join(WEIGHT_SUFFIXES)}, received {value!r}")
        if not Path(value).expanduser().is_file():
            raise ValueError(f"weights file {value!r} not found (paths are relative to the working directory)")
        return value

    @model_validator(mode="after")
    def _cached_when_offline(self):
        # Validate checks the cache only on a machine declared offline: it never touches the network.
        app = self.application
        if self.weights == IMAGENET and isinstance(app, str) and declared_offline():
            entry = APPLICATIONS[app]
            cached = keras_cache_dir() / entry["fname"]
            if not cached.is_file():
                raise ValueError(offline_message(app, entry["origin"], cached))
        return self
