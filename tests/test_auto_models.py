"""`model: {auto: ...}` (or no model): an encoder per feature type, concat, an
MLP and a head per target; `render --explicit` ejects a graph that builds the
same model; on the bundled data the auto models match the hand-written gallery
pipelines and their ejected specs train to the same result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

keras = pytest.importorskip("keras")

MIXED = """kerasflow: 1
name: mixed
data:
  source: {type: npz, path: x.npz}
  features:
    size: {type: numeric, shape: [3]}
    scaled: {type: numeric, shape: [2], normalize: true}
    colour: {type: category, vocabulary: [red, green, blue]}
    review: {type: text, max_tokens: 50, sequence_length: 6}
    photo: {type: image, height: 8, width: 8, channels: 1}
    tokens: {type: sequence, length: 5, vocab_size: 12}
    series: {type: timeseries, input_width: 4}
  target: {name: kind, type: category, num_classes: 3}
training: {loss: sparse_categorical_crossentropy, stages: [{name: main, epochs: 1}]}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def render(path: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "kerasflow.cli", "render", str(path), *args], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_omitted_model_is_auto_with_an_encoder_per_feature_type(tmp_path):
    from kerasflow.model.builder import build_model

    loaded = load_spec(write(tmp_path, MIXED))
    nodes = loaded.spec.model.nodes
    kinds = {name: getattr(node, "layer", None) or node.block for name, node in nodes.items()}
    assert kinds == {
        "size_norm": "batch_normalization",  # not normalized by the data section
        "colour_embed": "dense", "review_embed": "embedding", "review_pool": "global_average_pooling1d",
        "photo_conv": "conv_stack", "photo_pool": "global_average_pooling2d",
        "tokens_embed": "embedding", "tokens_rnn": "rnn_stack", "series_rnn": "rnn_stack",
        "combined": "concatenate", "body": "mlp", "output": "dense",
    }
    assert nodes["colour_embed"].units == 3  # 1.6 * (3 colours + 1 OOV) ** 0.56 ~ 3
    assert nodes["review_embed"].input_dim == 50
    assert nodes["combined"].input_names() == ["size_norm", "scaled", "colour_embed", "review_pool", "photo_pool",
                                               "tokens_rnn", "series_rnn"]
    model = build_model(loaded)
    assert model.output["kind"].shape == (None, 3)


def test_explicit_render_plans_to_the_same_parameter_count(tmp_path):
    from kerasflow.model.builder import build_model

    auto = write(tmp_path, MIXED.replace("training:", "model: {auto: {units: [16], image_encoder: conv}}\ntraining:"))
    explicit = write(tmp_path, render(auto, "--explicit"), "explicit.yaml")
    assert "auto:" not in explicit.read_text() and "nodes:" in explicit.read_text()
    assert render(auto).count("auto:") == 1  # without --explicit the choices stay choices
    a, b = build_model(load_spec(auto)), build_model(load_spec(explicit))
    assert a.count_params() == b.count_params() > 0
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]


def test_auto_choices_are_tunable(tmp_path):
    from kerasflow.model.builder import build_model
    from kerasflow.spec import search_space
    from kerasflow.spec.loader import load_spec_dict

    spec = MIXED.replace("training:", "model: {auto: {units: {tune: choice, values: [[8], [16, 8]]}, "
                                      "sequence_encoder: {tune: choice, values: [conv, lstm]}}}\ntraining:")
    loaded = load_spec(write(tmp_path, spec))
    assert {"model.auto.units", "model.auto.sequence_encoder"} <= set(search_space.defaults(loaded.raw))
    with pytest.raises(SpecError, match=r"model\.auto\.units: unresolved `tune:` marker"):
        build_model(loaded)
    chosen = load_spec_dict(search_space.substitute(loaded.raw, {"model.auto.sequence_encoder": "lstm"}))
    nodes = chosen.spec.model.nodes
    assert nodes["body"].units == [8] and nodes["tokens_rnn"].cell == "lstm"
    build_model(chosen)


def test_transformer_combiner_attends_across_one_token_per_feature(tmp_path):
    from kerasflow.model.builder import build_model

    spec = MIXED.replace("training:", "model: {auto: {combiner: transformer, combiner_dim: 16, units: [8]}}\ntraining:")
    loaded = load_spec(write(tmp_path, spec))
    nodes = loaded.spec.model.nodes
    features = ["size", "scaled", "colour", "review", "photo", "tokens", "series"]
    assert [n for n in nodes if n.endswith("_token")] == [f"{f}_token" for f in features]
    assert nodes["combiner_tokens"].axis == 1 and nodes["combiner"].block == "transformer_encoder"
    model = build_model(loaded)
    assert tuple(model.get_layer("combiner_tokens").output.shape) == (None, len(features), 16)
    assert tuple(model.get_layer("combined").output.shape) == (None, 16)
    # ejected, it is the same model
    explicit = write(tmp_path, render(tmp_path / "spec.yaml", "--explicit"), "explicit.yaml")
    assert build_model(load_spec(explicit)).count_params() == model.count_params()
    # a tunable choice like the others
    tuned = MIXED.replace("training:", "model: {auto: {combiner: {tune: choice, values: [concat, transformer]}}}\n"
                                       "training:")
    from kerasflow.spec import search_space

    assert "model.auto.combiner" in search_space.defaults(load_spec(write(tmp_path, tuned, "t.yaml")).raw)


@pytest.mark.parametrize("change, match", [
    ("target: {name: kind, type: category, num_classes: 3}", r"target `kind` needs `num_classes`"),
    ("training:", r"model: expected exactly one of `nodes`, `sequential` or `auto`, received `nodes` and `auto`"),
])
def test_auto_errors_name_the_fix(tmp_path, change, match):
    if change == "training:":
        spec = MIXED.replace(change, "model: {auto: {}, nodes: {out: {layer: dense, input: size, units: 3}}}\n"
                                     "training:")
    else:
        spec = MIXED.replace(change, "target: {name: kind, type: category}")
    with pytest.raises(SpecError, match=match):
        load_spec(write(tmp_path, spec))


def _test_metrics(path: Path) -> dict:
    from kerasflow import api

    result = api.train(path, ["tracking.enabled=false"], quiet=True)
    return {k: float(v) for k, v in result.metrics.items() if k.startswith("test_")}


@pytest.mark.slow
@pytest.mark.parametrize("auto, hand", [("breast_cancer_auto.yaml", "breast_cancer_tabular.yaml"),
                                        ("digits_auto.yaml", "quickstart.yaml")])
def test_auto_matches_the_gallery_and_its_ejected_spec_trains_the_same(tmp_path, monkeypatch, auto, hand):
    monkeypatch.chdir(tmp_path)
    pipelines = REPO / "pipelines"
    explicit = write(tmp_path, render(pipelines / auto, "--explicit"), "explicit.yaml")  # resolved: no relative paths
    auto_metrics = _test_metrics(pipelines / auto)
    explicit_metrics = _test_metrics(explicit)
    hand_metrics = _test_metrics(pipelines / hand)
    assert auto_metrics["test_accuracy"] >= hand_metrics["test_accuracy"], (auto_metrics, hand_metrics)
    assert auto_metrics == pytest.approx(explicit_metrics, abs=1e-6)
    assert np.isfinite(auto_metrics["test_loss"])


def test_auto_image_backbone_scales_rescaled_pixels_back_to_0_255(tmp_path):
    from kerasflow.model.builder import build_model

    spec = MIXED.replace("photo: {type: image, height: 8, width: 8, channels: 1}",
                         "photo: {type: image, height: 32, width: 32, channels: 3}")
    spec = spec.replace("training:", "model: {inputs: [photo], auto: {image_encoder: backbone, "
                                     "image_backbone: MobileNetV3Small, image_backbone_weights: null}}\ntraining:")
    loaded = load_spec(write(tmp_path, spec))
    node = loaded.spec.model.nodes["photo_backbone"]
    assert (node.application, node.weights, node.input_scale) == ("MobileNetV3Small", None, 255.0)
    assert build_model(loaded).get_layer("photo_backbone.mobilenetv3small").count_params() > 0
