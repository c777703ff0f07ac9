"""Seeded training on bundled real data reaches the figures the project
promises, and a trained run evaluates and predicts from its directory alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import DIGITS_MLP, REPO
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

pytestmark = pytest.mark.slow

# The digits CNN: the digits MLP spec's data as 8x8x1 images (the MLP itself is tests/specs/digits_mlp.yaml).
DIGITS = """\
kerasflow: 1
name: {name}
extends: [{models}/{model}.yaml]
seed: 42
data:
  source: {{type: sklearn, name: digits}}
  features:
    {feature}
  target: {{name: label, type: category, num_classes: 10}}
  split: {{validation: 0.1, test: 0.1, stratify: true}}
  batch_size: 32
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  stages:
    - name: main
      epochs: {epochs}
      optimizer: {{type: adam, learning_rate: 0.001}}
tracking: {{enabled: false}}
"""
MODELS = REPO / "specs" / "models"


def _train(tmp_path: Path, text: str, *overrides: str):
    from kerasflow.train.stages import train

    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return train(load_spec(path, overrides), run_dir=tmp_path / "run", quiet=True)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from kerasflow.train.stages import train

    return train(load_spec(DIGITS_MLP), run_dir=tmp_path_factory.mktemp("mlp") / "run", quiet=True)


def test_seed_mlp_on_digits_reaches_097(mlp_run):
    run = mlp_run.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"test_accuracy", "test_loss"}
    assert metrics["test_accuracy"] >= 0.97, metrics
    assert mlp_run.history["epoch"] == list(range(30))
    for name in ("spec.resolved.yaml", "stats.json", "targets.json", "history.csv", "model.keras", "state.json"):
        assert (run / name).is_file(), name
    for png in ("learning_curves.png", "confusion_matrix_label.png"):
        assert (run / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (run / "model_summary.txt").read_text()
    assert "Param #" in summary and "Total params" in summary, summary  # not cropped at 80 columns


def test_learning_curves_put_at_most_three_panels_a_row_and_label_stages(tmp_path):
    from PIL import Image

    from kerasflow.train.figures import draw_learning_curves

    rows = [{"epoch": e, "stage": "head" if e < 3 else "tune", "loss": 1 / (e + 1), "val_loss": 1.1 / (e + 1),
             "accuracy": e / 6, "auc": e / 6, "precision": 0.5, "recall": 0.5, "learning_rate": 1e-3}
            for e in range(6)]
    width, height = Image.open(draw_learning_curves(rows, tmp_path / "curves.png")).size
    assert width <= 3 * 430 and height >= 2 * 300, (width, height)  # 6 panels: two rows of three


def test_evaluate_reports_the_same_accuracy_and_per_class_scores(mlp_run):
    from kerasflow.train.evaluate import evaluate_run

    result = evaluate_run(mlp_run.run_dir)
    n = mlp_run.data.sizes["test"]
    assert result["examples"] == n and not result["data_changed"]
    assert result["metrics"]["accuracy"] == pytest.approx(mlp_run.metrics["test_accuracy"], abs=1e-6)
    report = result["per_class"]["label"]
    assert [c["class"] for c in report["classes"]] == [str(i) for i in range(10)]
    assert sum(c["support"] for c in report["classes"]) == n
    assert report["macro"]["f1"] >= 0.96
    assert json.loads((mlp_run.run_dir / "evaluation_test.json").read_text())["metrics"] == result["metrics"]


def test_predict_from_csv_and_jsonl_matches_the_model(mlp_run, tmp_path):
    import pandas as pd

    from kerasflow.train.evaluate import predict_run

    features, targets = mlp_run.data.arrays("test")
    pixels, labels = features["pixels"], targets["label"].reshape(-1)
    expected = mlp_run.model.predict({"pixels": pixels}, verbose=0)["label"]

    frame = pd.DataFrame(pixels, columns=[f"pixels_{i}" for i in range(64)])
    frame.insert(0, "id", np.arange(len(frame)) + 1000)
    frame.to_csv(tmp_path / "in.csv", index=False)
    assert predict_run(mlp_run.run_dir, tmp_path / "in.csv", tmp_path / "out.csv") == len(labels)
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["id", "label", "label_probability"]
    assert (out["id"] == frame["id"]).all()
    names = np.array(mlp_run.data.targets["label"]["class_names"])
    assert (out["label"].astype(str).to_numpy() == names[expected.argmax(-1)]).all()
    assert np.mean(out["label"].astype(str).to_numpy() == names[labels]) >= 0.97
    np.testing.assert_allclose(out["label_probability"], expected.max(-1), rtol=1e-5)

    pd.DataFrame({"pixels": list(pixels)}).to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    assert predict_run(mlp_run.run_dir, tmp_path / "in.jsonl", tmp_path / "out.parquet") == len(labels)
    assert (pd.read_parquet(tmp_path / "out.parquet")["label"].to_numpy() == names[expected.argmax(-1)]).all()

    frame[["id"]].to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(SpecError, match="no input column for feature `pixels`"):
        predict_run(mlp_run.run_dir, tmp_path / "ids.csv", tmp_path / "never.csv")
    frame.drop(columns="pixels_63").to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(SpecError, match="input `pixels` has the wrong size"):
        predict_run(mlp_run.run_dir, tmp_path / "short.csv", tmp_path / "never.csv")
    assert not (tmp_path / "never.csv").exists()


def test_cnn_on_digit_images_reaches_0985(tmp_path):
    text = DIGITS.format(name="digits-cnn", models=MODELS, model="digits_cnn", epochs=20,
                         feature="images: {type: image, height: 8, width: 8, channels: 1, rescale: 0.0625}")
    result = _train(tmp_path, text)
    assert result.metrics["test_accuracy"] >= 0.985, result.metrics


SUNSPOTS = f"""\
kerasflow: 1
name: sunspots-lstm
extends: [{MODELS}/sunspots_lstm.yaml]
seed: 42
data:
  source: {{type: statsmodels, name: sunspots}}
  features:
    activity: {{type: timeseries, input_width: 12, normalize: true, column: SUNACTIVITY}}
  target: {{name: next, type: numeric, column: SUNACTIVITY}}
  split: {{validation: 0.15, test: 0.2}}
  batch_size: 16
training:
  loss: mae
  metrics: [mae]
  stages:
    - name: main
      epochs: 60
      optimizer: {{type: adam, learning_rate: 0.01}}
      callbacks:
        early_stopping: {{monitor: val_loss, patience: 15}}
tracking: {{enabled: false}}
"""


def test_lstm_on_sunspots_beats_persistence_by_15_percent(tmp_path):
    result = _train(tmp_path, SUNSPOTS)
    features, targets = result.data.arrays("test")
    last_seen = features["activity"][:, -1, 0]  # persistence: next year = this year
    actual = targets["next"].reshape(-1)
    persistence_mae = float(np.mean(np.abs(last_seen - actual)))
    predicted = result.model.predict(features, verbose=0)["next"].reshape(-1)
    assert float(np.mean(np.abs(predicted - actual))) == pytest.approx(result.metrics["test_mae"], rel=1e-4)
    assert result.metrics["test_mae"] <= 0.85 * persistence_mae, (result.metrics, persistence_mae)
    assert (result.run_dir / "plots" / "predicted_vs_actual_next.png").is_file()


REVERSE = f"""\
kerasflow: 1
name: reverse-transformer
extends: [{MODELS}/sequence_transformer.yaml, {REPO}/specs/training/adamw_cosine.yaml]
seed: 42
data:
  source: {{type: generated, task: reverse, length: 8, samples: 4000}}
  features:
    source: {{type: sequence, length: 8, vocab_size: 10}}
  target: {{name: target, type: sequence, num_classes: 10}}
  split: {{validation: 0.1, test: 0.1}}
  batch_size: 64
training:
  stages:
    - name: main
      epochs: 3
      optimizer:
        type: adamw
        global_clipnorm: 1.0
        learning_rate: {{type: cosine, initial: 0.003, decay_steps: 2, alpha: 0.05, warmup_steps: 1, unit: epoch}}
tracking: {{enabled: false}}
"""


def test_transformer_reverses_8_digits(tmp_path):
    result = _train(tmp_path, REVERSE)
    assert result.metrics["test_accuracy"] >= 0.99, result.metrics  # token accuracy over (batch, 8) positions


def test_confusion_matrix_names_classes_the_data_never_showed(tmp_path):
    from PIL import Image

    from kerasflow.train.figures import draw_confusion_matrix

    # 3 output units, 2 classes seen: predicted index 2 gets its own column.
    path = draw_confusion_matrix(np.array([0, 1, 1]), np.array([0, 2, 1]), ["a", "b"], tmp_path / "cm.png", title="t")
    assert Image.open(path).size[0] > 0
