"""The `backbone` block: every keras.applications model is a spec value; with
`weights: null` a spec plans to the application's own parameter count plus its
head; a local weights file loads; the preprocessing layer round-trips; and a
spec that needs a download fails offline with one clear message, never a
traceback from inside Keras. No test touches the network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec
from kerasflow.spec.nodes.applications import APPLICATIONS

keras = pytest.importorskip("keras")

SIZE = 32  # the smallest input most applications accept: keeps these tests fast


def write_spec(tmp_path: Path, backbone: str, classes: int = 4, channels: int = 3, stages: str = "") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "kerasflow: 1\nname: bb\ndata:\n  source: {type: npz, path: x.npz}\n"
        f"  features:\n    image: {{type: image, height: {SIZE}, width: {SIZE}, channels: {channels}, rescale: null}}\n"
        f"  target: {{name: label, type: category, num_classes: {classes}}}\n"
        "model:\n  nodes:\n"
        f"    backbone: {{block: backbone, input: image, {backbone}}}\n"
        f"    head: {{layer: dense, input: backbone, units: {classes}, activation: softmax}}\n"
        "training:\n  loss: sparse_categorical_crossentropy\n"
        + (stages or "  stages: [{name: main, epochs: 1}]\n"))
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A machine declared offline with an empty Keras cache."""
    monkeypatch.setenv("KERASFLOW_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


def test_table_lists_every_keras_application():
    from kerasflow.model.applications import application_modules

    assert application_modules() == {name: entry["module"] for name, entry in APPLICATIONS.items()}, \
        "keras.applications changed: regenerate with `python -m kerasflow.model.applications`"
    assert {"MobileNetV3Small", "EfficientNetB0", "ResNet50", "ConvNeXtTiny"} <= set(APPLICATIONS)
    assert all(e["origin"].startswith("https://storage.googleapis.com/") for e in APPLICATIONS.values())


@pytest.mark.parametrize("application", ["MobileNetV3Small", "EfficientNetB0", "MobileNetV2", "DenseNet121", "VGG16"])
def test_null_weights_plan_to_the_applications_parameter_count_plus_head(tmp_path, application):
    from kerasflow.model.builder import build_model

    model = build_model(load_spec(write_spec(tmp_path, f"application: {application}, weights: null")))
    reference = getattr(keras.applications, application)(
        weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), pooling="avg")
    features = reference.output.shape[-1]
    assert model.count_params() == reference.count_params() + features * 4 + 4
    assert model.get_layer(f"backbone.{application.lower()}").count_params() == reference.count_params()
    assert model.output["label"].shape == (None, 4)


def test_preprocessing_is_the_applications_own_and_round_trips(tmp_path):
    from kerasflow.model.backbones import ApplicationPreprocessing

    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, SIZE, SIZE, 3)).astype("float32")
    layer = ApplicationPreprocessing("ResNet50", name="pre")
    expected = keras.applications.resnet.preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(layer(pixels)), expected, rtol=1e-6)
    # Inputs scaled to [0, 1] are brought back to 0-255 first.
    scaled = ApplicationPreprocessing("MobileNetV2", scale=255.0)
    np.testing.assert_allclose(np.asarray(scaled(pixels / 255.0)),
                               keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), atol=1e-5)

    clone = ApplicationPreprocessing.from_config(scaled.get_config())
    assert (clone.application, clone.scale) == ("MobileNetV2", 255.0)
    assert keras.saving.get_registered_name(ApplicationPreprocessing) == "kerasflow>ApplicationPreprocessing"
    with pytest.raises(ValueError, match="Received: application='ResNet5'"):
        ApplicationPreprocessing("ResNet5")


def test_backbone_model_saves_and_reloads_with_identical_outputs(tmp_path):
    from kerasflow.model.builder import build_model

    model = build_model(load_spec(write_spec(tmp_path, "application: MobileNetV3Small, weights: null", channels=1)))
    batch = {"image": np.random.default_rng(1).uniform(0, 255, size=(2, SIZE, SIZE, 1)).astype("float32")}
    before = np.asarray(model(batch)["label"])
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(reloaded(batch)["label"]), before, rtol=1e-5, atol=1e-6)


def test_local_weights_file_is_loaded(tmp_path):
    from kerasflow.model.builder import build_model

    keras.utils.set_random_seed(7)
    source = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3),
                                                 pooling="avg")
    weights = tmp_path / "mobilenet.weights.h5"
    source.save_weights(weights)
    model = build_model(load_spec(write_spec(tmp_path, f"application: MobileNetV3Small, weights: {weights}")))
    loaded = model.get_layer("backbone.mobilenetv3small").get_weights()
    assert len(loaded) == len(source.get_weights())
    for got, saved in zip(loaded, source.get_weights()):
        np.testing.assert_array_equal(got, saved)


def test_offline_imagenet_weights_fail_at_validate_with_the_download_url(offline, tmp_path):
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, "application: EfficientNetB0"))
    text = str(err.value)
    assert "model.nodes.backbone" in text
    assert ("offline: the ImageNet weights of EfficientNetB0 need a download from "
            "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5") in text
    assert "`weights: null`" in text and "a local path" in text


def test_cached_imagenet_weights_validate_offline(offline, tmp_path):
    offline.mkdir(parents=True)
    (offline / APPLICATIONS["EfficientNetB0"]["fname"]).write_bytes(b"")
    load_spec(write_spec(tmp_path, "application: EfficientNetB0"))


def test_unreachable_download_fails_at_plan_time_without_a_keras_traceback(monkeypatch, tmp_path):
    from kerasflow.model import backbones
    from kerasflow.model.builder import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(backbones, "reachable", lambda host: False)  # what an offline probe answers
    loaded = load_spec(write_spec(tmp_path, "application: MobileNetV3Small"))  # not declared offline: validates
    with pytest.raises(SpecError, match=r"model\.nodes\.backbone: backbone: offline: the ImageNet weights of "
                                        r"MobileNetV3Small need a download from https://storage\.googleapis\.com/"):
        build_model(loaded)


def test_cli_reports_offline_weights_without_traceback(offline, tmp_path):
    spec = write_spec(tmp_path, "application: ResNet50")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "kerasflow.cli", "validate", str(spec)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2
    assert "offline: the ImageNet weights of ResNet50 need a download from https://" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("fields, match", [
    ("application: MobileNetV3small, weights: null", r"model\.nodes\.backbone\.application: invalid value(.*\n)*.*"
                                                     r"did you mean `MobileNetV3Small`"),
    ("application: ResNet50, weights: missing.weights.h5", r"weights file 'missing\.weights\.h5' not found"),
    ("application: ResNet50, weights: imagenet21k", r"expected `imagenet`, null or a weights file path"),
    ("application: ResNet50, include_top: true", r"model\.nodes\.backbone\.include_top: invalid value"),
])
def test_invalid_backbones_are_spec_errors(tmp_path, fields, match):
    with pytest.raises(SpecError, match=match):
        load_spec(write_spec(tmp_path, fields))


def test_unfreezing_by_layer_glob_keeps_batch_norm_frozen():
    from kerasflow.model.backbones import set_top_trainable

    app = keras.applications.MobileNetV3Small(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    app.trainable = False
    count = set_top_trainable(app, pattern="expanded_conv_10*")
    chosen = [layer for layer in app.layers if layer.name.startswith("expanded_conv_10")]
    assert {layer.name for layer in app.layers if layer.trainable} == \
        {layer.name for layer in chosen if not isinstance(layer, keras.layers.BatchNormalization)}
    assert count == len([layer for layer in chosen if not isinstance(layer, keras.layers.BatchNormalization)]) > 0


def test_unfreeze_mapping_needs_top_or_layers_and_a_node(tmp_path):
    def problems(unfreeze: str) -> str:
        stages = f"  stages:\n    - {{name: a, epochs: 1, freeze: [backbone]}}\n    - {{name: b, epochs: 1, unfreeze: {unfreeze}}}\n"
        with pytest.raises(SpecError) as err:
            load_spec(write_spec(tmp_path, "application: MobileNetV3Small, weights: null", stages=stages))
        return str(err.value)

    assert "training.stages[1].unfreeze[0]: expected `top: N` or `layers: <glob>`" in problems("[{node: backbone}]")
    assert "training.stages[1].unfreeze[0]: `backbon` matches no node" in problems("[{node: backbon, top: 3}]")


def test_render_keeps_weights_null(tmp_path):
    from kerasflow import api

    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(api.render(write_spec(tmp_path, "application: MobileNetV3Small, weights: null")))
    assert load_spec(rendered).spec.model.nodes["backbone"].weights is None
