"""The fine-tuning gallery pipeline trains its two declared stages: the frozen
backbone first (only the head learns), then the backbone's top 20 layers with
BatchNormalization still frozen. Offline: `weights: null` (same architecture)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

keras = pytest.importorskip("keras")


def _trainable(layers) -> int:
    return sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)


@pytest.mark.slow
def test_finetune_pipeline_unfreezes_the_declared_top_layers(tmp_path, monkeypatch):
    from kerasflow.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    overrides = ["model.nodes.backbone.weights=null", "tracking.enabled=false", "stages=[validate, train]",
                 "training.stages.0.epochs=1", "training.stages.1.epochs=1",
                 "training.stages.0.steps_per_epoch=4", "training.stages.1.steps_per_epoch=4"]
    result = run_pipeline(REPO / "pipelines" / "digits_finetune.yaml", overrides=overrides, echo=lambda s: None)
    run_dir = Path(result.outputs("train")["run_dir"])
    stages = json.loads((run_dir / "state.json").read_text())["stages"]

    # What the spec declares, counted on a fresh application: head only, then head + top 20 non-BN layers.
    app = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3),
                                              pooling="avg")
    head = app.output.shape[-1] * 10 + 10
    top = [layer for layer in app.layers[-20:] if not isinstance(layer, keras.layers.BatchNormalization)]
    assert _trainable(top) > 0 and any(isinstance(layer, keras.layers.BatchNormalization) for layer in app.layers[-20:])
    assert stages["head"]["trainable_params"] == head
    assert stages["finetune"]["trainable_params"] == head + _trainable(top)
    assert np.isfinite(result.outputs("train")["metrics"]["test_loss"])
