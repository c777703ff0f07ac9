"""KerasHub text backbones (`block: hub_backbone`, the optional `[hub]` extra).

Validation stays TF-free and needs no keras_hub; a named preset fails offline
at validate (declared offline) and at plan time (unreachable host) with one
message; a local preset directory and a config (no download) build the same
architecture; the layer round-trips through model.keras. The text gallery
pipeline trains its two declared stages and its export answers raw strings
over REST and gRPC with the class the trained model gives in-process. Tests
that build a backbone are skipped, with the reason, without keras-hub."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

needs_hub = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None,
                               reason="KerasHub is an optional extra: pip install 'kerasflow[hub]'")

CONFIG = ("{vocabulary_size: 51, num_layers: 1, num_heads: 2, hidden_dim: 16, intermediate_dim: 32, "
          "max_sequence_length: 9}")
MODEL_NAME = "reviews"


def write_spec(tmp_path: Path, source: str = f"config: {CONFIG}") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "kerasflow: 1\nname: hub\ndata:\n  source: {type: generated, task: reviews, samples: 200}\n"
        "  features:\n    text: {type: text, max_tokens: 50, sequence_length: 8}\n"
        "  target: {name: label, type: category, num_classes: 2}\n"
        "model:\n  nodes:\n"
        f"    encoder: {{block: hub_backbone, input: text, backbone: BertBackbone, {source}}}\n"
        "    head: {layer: dense, input: encoder, units: 2, activation: softmax}\n"
        "training:\n  loss: sparse_categorical_crossentropy\n  stages: [{name: main, epochs: 1}]\n")
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A machine declared offline with an empty kagglehub cache."""
    monkeypatch.setenv("KERASFLOW_OFFLINE", "1")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))


# --- the spec side: no keras_hub, no TensorFlow ---------------------------------------------------

@pytest.mark.parametrize("source, match", [
    ("backbone_x: 1", "exactly one of `preset`"),
    (f"preset: bert_tiny_en_uncased, config: {CONFIG}", "received both"),
    ("preset: ./no/such/preset", "preset directory './no/such/preset' not found"),
    ("config: {vocabulary_size: 51, dtype: {module: os, class_name: system}}", r"model\.nodes\.encoder\.config\.dtype"),
])
def test_invalid_hub_backbones_are_spec_errors(tmp_path, source, match):
    spec = write_spec(tmp_path, source.replace("backbone_x: 1", "output: pooled"))
    with pytest.raises(SpecError, match=match):
        load_spec(spec)


def test_offline_preset_fails_at_validate_without_importing_keras_hub(offline, tmp_path):
    spec = write_spec(tmp_path, "preset: bert_tiny_en_uncased")
    code = ("import sys\nfrom kerasflow.cli import cli\ntry:\n    cli(['validate', sys.argv[1]])\n"
            "except SystemExit as exc:\n    code = exc.code\n"
            "heavy = [m for m in ('keras_hub', 'tensorflow', 'keras') if m in sys.modules]\n"
            "print('IMPORTED', heavy)\nsys.exit(code)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model.nodes.encoder" in proc.stderr + proc.stdout
    assert "offline: the KerasHub preset 'bert_tiny_en_uncased' of BertBackbone needs a download from " \
           "https://www.kaggle.com/models/keras" in " ".join((proc.stderr + proc.stdout).split())
    assert "Traceback" not in proc.stderr and "IMPORTED []" in proc.stdout


def test_offline_hub_handle_names_its_host(offline, tmp_path):
    with pytest.raises(SpecError, match=r"'hf://google/bert' of BertBackbone needs a download from https://huggingface\.co"):
        load_spec(write_spec(tmp_path, "preset: hf://google/bert"))


# --- building: needs keras_hub ---------------------------------------------------------------------

@needs_hub
def test_unreachable_preset_host_fails_at_plan_time_with_the_offline_message(monkeypatch, tmp_path):
    from kerasflow.model import hub
    from kerasflow.model.builder import build_model

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setattr(hub, "reachable", lambda host: False)  # what an offline probe answers
    loaded = load_spec(write_spec(tmp_path, "preset: bert_tiny_en_uncased"))
    with pytest.raises(SpecError) as info:
        build_model(loaded)
    message = " ".join(str(info.value).split())
    assert "model.nodes.encoder" in message and "offline: the KerasHub preset 'bert_tiny_en_uncased'" in message
    assert "give `config:` (random init, no download)" in message


@needs_hub
def test_sizes_that_do_not_fit_the_text_feature_fail_at_plan_time(tmp_path):
    from kerasflow.model.builder import build_model

    for old, new, match in [("vocabulary_size: 51", "vocabulary_size: 50", "give vocabulary_size: 51"),
                            ("max_sequence_length: 9", "max_sequence_length: 8", "max_sequence_length 8 is shorter")]:
        with pytest.raises(SpecError, match=match) as info:
            build_model(load_spec(write_spec(tmp_path, f"config: {CONFIG}".replace(old, new))))
        assert "model.nodes.encoder" in str(info.value)


@needs_hub
def test_local_preset_directory_loads_the_saved_weights(tmp_path):
    import keras
    import keras_hub

    from kerasflow.model.builder import build_model

    keras.utils.set_random_seed(3)
    source = keras_hub.models.BertBackbone(vocabulary_size=51, num_layers=1, num_heads=2, hidden_dim=16,
                                           intermediate_dim=32, max_sequence_length=9)
    source.save_to_preset(str(tmp_path / "preset"))
    model = build_model(load_spec(write_spec(tmp_path, f"preset: {tmp_path / 'preset'}")))
    loaded = model.get_layer("encoder").backbone.get_weights()
    assert len(loaded) == len(source.get_weights())
    for got, saved in zip(loaded, source.get_weights()):
        np.testing.assert_array_equal(got, saved)
    # the config form builds the same architecture, randomly initialized
    fresh = build_model(load_spec(write_spec(tmp_path)))
    assert fresh.count_params() == model.count_params()


@needs_hub
def test_hub_backbone_model_round_trips_through_model_keras(tmp_path):
    import keras

    from kerasflow.model.builder import build_model

    model = build_model(load_spec(write_spec(tmp_path)))
    layer = model.get_layer("encoder")
    assert [sub.name for sub in layer.layers][-2:] == ["transformer_layer_0", "pooled_dense"]
    ids = np.array([[5, 7, 9, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0, 0, 0]], dtype="int64")
    before = np.asarray(layer(ids))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(reloaded.get_layer("encoder")(ids)), before, rtol=1e-5, atol=1e-6)
    assert reloaded.get_layer("encoder").get_config()["config"] == layer.get_config()["config"]


@needs_hub
@pytest.mark.slow
@pytest.mark.integration  # starts the embedded REST + gRPC server
def test_text_finetune_pipeline_trains_two_stages_and_serves_raw_strings(tmp_path):
    import grpc
    import keras
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kerasflow.pipeline import run_pipeline
    from kerasflow.runs import MODEL_FILE
    from kerasflow.serve import EmbeddedServer

    overrides = ["tracking.enabled=false", "stages=[validate, train, export]", f"export.base_path={tmp_path / 'models'}",
                 "training.stages.0.epochs=1", "training.stages.1.epochs=3"]
    result = run_pipeline(REPO / "pipelines" / "reviews_bert_finetune.yaml", overrides=overrides,
                          run_dir=tmp_path / "pipeline", quiet=True, echo=lambda s: None)
    run_dir = Path(result.outputs("train")["run_dir"])
    stages = json.loads((run_dir / "state.json").read_text())["stages"]
    model = keras.saving.load_model(run_dir / MODEL_FILE)

    # head only, then head + the encoder's top 3 layers (two transformer layers, the pooler)
    head = sum(int(np.prod(w.shape)) for w in model.get_layer("head").weights)
    top = sum(int(np.prod(w.shape)) for sub in model.get_layer("encoder").layers[-3:] for w in sub.weights)
    assert stages["head"]["trainable_params"] == head
    assert stages["finetune"]["trainable_params"] == head + top
    assert result.outputs("train")["metrics"]["test_accuracy"] > 0.6  # learned: chance is 0.5

    texts = ["the movie was really good", "the plot was not boring, we had popcorn", "the acting was awful",
             "this film was not very clever", "it came out last year, the cast was superb", "the ending was dull"]
    want = model.predict({"text": tf.constant(texts)[:, None]}, verbose=0)
    want = np.asarray(want["label"] if isinstance(want, dict) else want)
    with EmbeddedServer(result.outputs("export")["base_path"], model_name=MODEL_NAME, rest_port=0, grpc_port=0,
                        poll_seconds=0.5) as server:
        body = {"instances": [{"text": [t]} for t in texts]}
        response = requests.post(f"{server.rest_url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [int(p["class_id"]) for p in predictions] == want.argmax(axis=1).tolist()
        assert [p["class_name"] for p in predictions][:1] in (["negative"], ["positive"])
        np.testing.assert_allclose([p["probabilities"] for p in predictions], want, atol=1e-5)

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL_NAME
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([[t.encode()] for t in texts], dtype=tf.string))
            outputs = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60).outputs
        assert tf.make_ndarray(outputs["class_id"]).tolist() == want.argmax(axis=1).tolist()
