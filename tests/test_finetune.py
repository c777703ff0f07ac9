"""The fine-tuning gallery pipeline trains its two declared stages: the frozen
backbone first (only the head learns), then the backbone's top 20 layers with
BatchNormalization still frozen; its export answers encoded JPEGs over REST
(`{"b64": ...}`) and gRPC (the official tensorflow-serving-api client) with
the class the trained Keras model gives in-process. Offline: `weights: null`
(same architecture, random init)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.slow
MODEL_NAME = "digits_finetune"


def _calibrated_weights(path: Path) -> Path:
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    app = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3),
                                              pooling="avg")
    # the pipeline's input: 8x8 digits (0..16) resized to 32x32, scaled to 0..255, repeated to RGB
    pixels = keras.ops.image.resize(load_digits().images[:256, :, :, None] * 15.9375, (32, 32))
    for layer in app.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # one training-mode pass sets the moving statistics to this batch's
    app(keras.ops.repeat(pixels, 3, axis=-1), training=True)
    app.save_weights(path)
    return path


def _trainable(layers) -> int:
    return sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    from kerasflow.pipeline import run_pipeline

    tmp = tmp_path_factory.mktemp("finetune")
    weights = _calibrated_weights(tmp / "backbone.weights.h5")
    overrides = [f"model.nodes.backbone.weights={weights}", "tracking.enabled=false", "stages=[validate, train, export]",
                 f"export.base_path={tmp / 'models'}",
                 "training.stages.0.epochs=1", "training.stages.1.epochs=1",
                 "training.stages.0.steps_per_epoch=3", "training.stages.1.steps_per_epoch=3"]
    return run_pipeline(REPO / "pipelines" / "digits_finetune.yaml", overrides=overrides,
                        run_dir=tmp / "pipeline", quiet=True, echo=lambda s: None)


def test_finetune_pipeline_unfreezes_the_declared_top_layers(finetuned):
    run_dir = Path(finetuned.outputs("train")["run_dir"])
    stages = json.loads((run_dir / "state.json").read_text())["stages"]

    # What the spec declares, counted on a fresh application: head only, then head + top 20 non-BN layers.
    app = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(32, 32, 3),
                                              pooling="avg")
    head = app.output.shape[-1] * 10 + 10
    top = [layer for layer in app.layers[-20:] if not isinstance(layer, keras.layers.BatchNormalization)]
    assert _trainable(top) > 0 and any(isinstance(layer, keras.layers.BatchNormalization) for layer in app.layers[-20:])
    assert stages["head"]["trainable_params"] == head
    assert stages["finetune"]["trainable_params"] == head + _trainable(top)
    assert np.isfinite(finetuned.outputs("train")["metrics"]["test_loss"])


@pytest.mark.integration  # starts the embedded REST + gRPC server
def test_exported_finetuned_model_answers_b64_jpegs_like_keras(finetuned):
    import grpc
    import requests
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kerasflow.data.images import decode_images
    from kerasflow.runs import MODEL_FILE
    from kerasflow.serve import EmbeddedServer

    # Raw 0..16 digit images as 8-bit JPEGs, as a client would send them; JPEG is lossy and the
    # served graph resizes to the feature's 32x32, so the reference is Keras on the same decoded image.
    pixels = load_digits().images[:16, :, :, None]
    blobs = [tf.io.encode_jpeg(p.astype(np.uint8), quality=95).numpy() for p in pixels]
    model = keras.saving.load_model(Path(finetuned.outputs("train")["run_dir"]) / MODEL_FILE)
    want = model.predict({"image": decode_images(tf.constant(blobs), 32, 32, 1)}, verbose=0)
    want = np.asarray(want["label"] if isinstance(want, dict) else want)
    want_class = want.argmax(axis=1).tolist()
    assert len(set(want_class)) > 1  # the answers depend on the image

    with EmbeddedServer(finetuned.outputs("export")["base_path"], model_name=MODEL_NAME, rest_port=0, grpc_port=0,
                        poll_seconds=0.5) as server:
        body = {"signature_name": "serving_bytes",
                "instances": [{"image_bytes": {"b64": base64.b64encode(b).decode()}} for b in blobs]}
        response = requests.post(f"{server.rest_url}/v1/models/{MODEL_NAME}:predict", json=body, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [int(p["class_id"]) for p in predictions] == want_class
        np.testing.assert_allclose([p["probabilities"] for p in predictions], want, atol=1e-5)

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = MODEL_NAME, "serving_bytes"
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(blobs, dtype=tf.string))
            outputs = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60).outputs
        assert tf.make_ndarray(outputs["class_id"]).tolist() == want_class
        np.testing.assert_allclose(tf.make_ndarray(outputs["probabilities"]), want, atol=1e-5)
