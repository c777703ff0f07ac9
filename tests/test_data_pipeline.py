"""The tf.data side: shuffling, determinism, augmentation only in training,
streamed CSV, several targets, preprocessing built from stats, fingerprints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets

from kerasflow.data import fingerprint as fingerprint_module
from kerasflow.data import stream
from kerasflow.data.features import build_inputs, raw_input_specs
from kerasflow.data.fingerprint import data_fingerprint
from kerasflow.data.pipeline import prepare_data
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec_dict


def make_spec(data: dict, seed: int = 42):
    targets = data["target"] if isinstance(data["target"], list) else [data["target"]]
    first = next(iter(data["features"]))
    model = {"nodes": {f"out_{i}": {"layer": "dense", "input": first, "units": 3} for i in range(len(targets))},
             "outputs": {t["name"]: f"out_{i}" for i, t in enumerate(targets)}}
    raw = {"kerasflow": 1, "name": "t", "seed": seed, "data": data, "model": model,
           "training": {"loss": "mse", "stages": [{"name": "main", "epochs": 1}]}}
    return load_spec_dict(raw).spec


DIGITS = {"source": {"type": "sklearn", "name": "digits"},
          "features": {"pixels": {"type": "numeric", "shape": [64], "normalize": True}},
          "target": {"name": "label", "type": "category"}, "batch_size": 100}


def epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(f["pixels"].numpy(), t["label"].numpy()) for f, t in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_training_batches_are_reshuffled_each_epoch_and_reproducible():
    prepared = prepare_data(make_spec(DIGITS))
    first, second = epoch(prepared.train), epoch(prepared.train)
    again = epoch(prepare_data(make_spec(DIGITS)).train)
    x_train, _ = prepared.arrays("train")
    assert not np.array_equal(first[0], second[0])  # a new order each epoch
    assert np.array_equal(first[0], again[0])  # the same orders on every run
    rows = lambda x: sorted(map(bytes, x))  # noqa: E731
    assert rows(first[0]) == rows(x_train["pixels"])  # every training row once per epoch
    validation = epoch(prepared.validation)
    assert np.array_equal(validation[0], prepared.arrays("validation")[0]["pixels"])  # in order


def test_large_data_is_shuffled_into_the_same_batches_as_small_data(monkeypatch):
    """Data above the whole-epoch size is gathered chunk by chunk (no second copy
    of it per epoch); a run's batches must not depend on which way they were cut."""
    from kerasflow.data import pipeline

    small = prepare_data(make_spec({**DIGITS, "batch_size": 7}))
    monkeypatch.setattr(pipeline, "_GATHER_BATCHES", 4)
    monkeypatch.setattr(pipeline, "_WHOLE_EPOCH_BYTES", 0)
    large = prepare_data(make_spec({**DIGITS, "batch_size": 7}))
    for _ in range(2):  # two epochs: both reshuffle the same way
        a = [(f["pixels"].numpy(), t["label"].numpy()) for f, t in small.train]
        b = [(f["pixels"].numpy(), t["label"].numpy()) for f, t in large.train]
        assert len(a) == len(b) == int(large.train.cardinality())
        assert all(np.array_equal(x, y) and np.array_equal(u, v) for (x, u), (y, v) in zip(a, b))


def test_nondeterministic_pipeline_yields_the_same_rows():
    prepared = prepare_data(make_spec({**DIGITS, "deterministic": False, "cache": False}))
    x, y = epoch(prepared.train)
    x_train, y_train = prepared.arrays("train")
    assert len(x) == len(x_train["pixels"])
    assert np.bincount(y).tolist() == np.bincount(y_train["label"]).tolist()


def test_augmentation_happens_in_the_training_pipeline_only():
    import keras

    data = {"source": {"type": "sklearn", "name": "digits"},
            "features": {"image": {"type": "image", "height": 8, "width": 8, "channels": 1, "column": "images",
                                   "augment": {"flip": "horizontal"}}},
            "target": {"name": "label", "type": "category"}, "batch_size": 256}
    spec = make_spec(data)
    prepared = prepare_data(spec)
    originals = {bytes(img) for img in prepared.arrays("train")[0]["image"]}
    trained = np.concatenate([f["image"].numpy() for f, _ in prepared.train])
    flipped = sum(bytes(img) not in originals for img in trained)
    assert flipped > len(trained) // 4  # about half are mirrored
    validation = np.concatenate([f["image"].numpy() for f, _ in prepared.validation])
    assert np.array_equal(validation, prepared.arrays("validation")[0]["image"])
    inputs, outputs = build_inputs(spec.data, prepared.stats)
    model = keras.Model(inputs, outputs)
    assert not [layer for layer in model.layers if type(layer).__name__.startswith("Random")]


def test_stream_csv_matches_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK_ROWS", 64)  # several chunks from a small file
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500) * 3 + 1,
                          "colour": rng.choice(["red", "green", "blue"], size=500, p=[0.5, 0.3, 0.2]),
                          "kind": rng.choice(["cat", "dog"], size=500)})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    data = {"source": {"type": "csv", "path": str(path), "stream": True},
            "features": {"ab": {"type": "numeric", "shape": [2], "column": ["a", "b"], "normalize": True},
                         "colour": {"type": "category"}},
            "target": {"name": "kind", "type": "binary"}, "split": {"validation": 0.2, "test": 0.1},
            "batch_size": 50}
    prepared = prepare_data(make_spec(data))
    assert sum(prepared.sizes.values()) == 500 and 60 < prepared.sizes["validation"] < 140
    features, targets = prepared.arrays("train")
    assert len(features["ab"]) == prepared.sizes["train"]
    # Every training row is a row of the file, with its label.
    by_value = {np.float32(a): kind for a, kind in zip(frame["a"], frame["kind"])}
    assert [by_value[a] for a in features["ab"][:, 0]] == \
        [["cat", "dog"][int(k)] for k in targets["kind"][:, 0]]
    assert np.allclose(prepared.stats["ab"]["mean"], features["ab"].mean(axis=0), atol=1e-4)
    assert prepared.stats["colour"]["vocabulary"] == ["red", "green", "blue"]  # by frequency
    assert prepared.targets["kind"]["class_names"] == ["cat", "dog"]
    batch, _ = next(iter(prepared.train))
    assert batch["ab"].shape == (50, 2) and batch["colour"].dtype == "string"
    # Keras is told the steps per epoch (it warns "Your input ran out of data" when it is not)
    assert int(prepared.train.cardinality()) == -(-prepared.sizes["train"] // 50) == len(list(prepared.train))
    test_a = set(prepared.arrays("test")[0]["ab"][:, 0].tolist())
    assert test_a and not test_a & set(features["ab"][:, 0].tolist())  # splits are disjoint

    frame["b"] = frame["b"].astype(object)
    frame.loc[300, "b"] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(SpecError, match=r"row 300 \(big.csv line 302\)"):
        prepare_data(make_spec(data))


@pytest.mark.slow
@pytest.mark.parametrize("stream", ["true", "false"])
def test_a_column_range_feature_trains_and_predicts_with_no_tensorflow_noise(tmp_path, stream):
    """`kerasflow train` then `predict` on a CSV whose feature is a column range:
    streamed, the user sees the run's result, not one TensorFlow ERROR line per
    batch; `predict` reads the range's columns by their training names, and keeps
    the file's own label column beside the prediction."""
    from conftest import kerasflow_cli

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4))
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"]).assign(label=(x.sum(axis=1) > 0).astype(int))
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.yaml").write_text("""kerasflow: 1
name: streamed
data:
  source: {type: csv, path: d.csv, stream: %s}
  features:
    x: {type: numeric, shape: [4], columns: {start: 0, stop: 4}, normalize: true}
  target: {name: label, type: category, num_classes: 2}
  split: {validation: 0.2, test: 0.2}
  batch_size: 64
model:
  sequential:
    - {layer: dense, name: out, units: 2, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
  stages: [{name: main, epochs: 4, optimizer: {type: adam, learning_rate: 0.05}}]
tracking: {enabled: false}
""" % stream)
    result = kerasflow_cli("train", "s.yaml", "--run-dir", "run", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "RefCount" not in output and "ran out of data" not in output, output[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_accuracy"] > 0.9

    frame[["label", "f3", "f2", "f1", "f0"]].to_csv(tmp_path / "new.csv", index=False)  # other order, by name
    result = kerasflow_cli("predict", "run", "--input", "new.csv", "--output", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["label", "label_predicted", "label_probability"]
    assert (out["label"] == frame["label"]).all() and (out["label_predicted"] == out["label"]).mean() > 0.9


def test_stream_refuses_features_it_cannot_read(tmp_path):
    pd.DataFrame({"t": ["a b", "c"], "y": [1.0, 2.0]}).to_csv(tmp_path / "d.csv", index=False)
    spec = make_spec({"source": {"type": "csv", "path": str(tmp_path / "d.csv"), "stream": True},
                      "features": {"t": {"type": "text"}}, "target": {"name": "y", "type": "numeric"}})
    with pytest.raises(SpecError, match="numeric and category features only") as err:
        prepare_data(spec)
    assert err.value.problems[0].path == "data.features.t.type"


def test_several_targets_and_lookup_outputs(tmp_path):
    import keras
    import tensorflow as tf

    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = bunch.target_names[bunch.target]
    frame["bucket"] = (frame["sepal_width"] * 2).round().astype(int)
    frame.to_csv(tmp_path / "iris.csv", index=False)
    spec = make_spec({"source": {"type": "csv", "path": str(tmp_path / "iris.csv")},
                      "features": {"petal_length": {"type": "numeric", "normalize": True},
                                   "bucket": {"type": "category", "dtype": "int64", "output": "embedding",
                                              "embedding_dim": 3},
                                   "species_in": {"type": "category", "column": "species", "output": "index"}},
                      "target": [{"name": "species", "type": "category"},
                                 {"name": "sepal_length", "type": "numeric"}]})
    prepared = prepare_data(spec)
    assert set(prepared.targets) == {"species", "sepal_length"}
    assert prepared.targets["sepal_length"] == {"type": "numeric", "shape": [1]}
    _, targets = prepared.arrays("test")
    assert targets["species"].shape == (15,) and targets["sepal_length"].shape == (15, 1)
    assert all(isinstance(v, int) for v in prepared.stats["bucket"]["vocabulary"])
    inputs, outputs = build_inputs(spec.data, prepared.stats)
    model = keras.Model(inputs, outputs)
    sample = prepared.sample_inputs(5, "test")
    result = model({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in sample.items()})
    assert result["bucket"].shape == (5, 3)
    vocab = prepared.stats["species_in"]["vocabulary"]
    assert [vocab[i - 1] for i in result["species_in"].numpy()[:, 0]] == sample["species_in"][:, 0].tolist()


def test_plan_mode_builds_the_same_signature_without_data():
    import keras

    spec = make_spec({**DIGITS, "features": {"pixels": {"type": "numeric", "shape": [64], "normalize": True},
                                             "city": {"type": "category", "max_tokens": 6},
                                             "note": {"type": "text", "max_tokens": 100, "sequence_length": 12}}})
    inputs, outputs = build_inputs(spec.data, None)
    assert {k: (tuple(v.shape[1:]), v.dtype) for k, v in inputs.items()} == \
        {k: (shape, dtype) for k, (shape, dtype) in raw_input_specs(spec.data).items()}
    assert outputs["city"].shape == (None, 6) and outputs["note"].shape == (None, 12)
    model = keras.Model(inputs, outputs)
    assert not [layer for layer in model.layers if "normalize" in layer.name]


def test_fingerprint_follows_content_not_key_order(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv(path, index=False)
    data = {"source": {"type": "csv", "path": str(path)}, "features": {"x": {"type": "numeric"}},
            "target": {"name": "y", "type": "category"}}
    reordered = {"target": data["target"], "features": data["features"], "source": data["source"]}
    first = data_fingerprint(make_spec(data).data, seed=1)
    assert data_fingerprint(make_spec(reordered).data, seed=1) == first
    assert data_fingerprint(make_spec(data).data, seed=2) != first
    pd.DataFrame({"x": [1.0, 2.0, 4.0], "y": [0, 1, 0]}).to_csv(path, index=False)
    changed = data_fingerprint(make_spec(data).data, seed=1)
    assert changed != first
    monkeypatch.setattr(fingerprint_module, "HASH_LIMIT", 4)  # "huge" file: size + mtime only
    huge = data_fingerprint(make_spec(data).data, seed=1)
    assert huge not in (first, changed) and data_fingerprint(make_spec(data).data, seed=1) == huge


def test_label_codes_map_to_class_indices(tmp_path):
    pd.DataFrame({"x": range(40), "grade": [3, 5, 7, 5] * 10, "sick": [1, 2] * 20}).to_csv(tmp_path / "d.csv",
                                                                                           index=False)
    source = {"type": "csv", "path": str(tmp_path / "d.csv")}
    spec = make_spec({"source": source, "features": {"x": {"type": "numeric"}},
                      "target": [{"name": "grade", "type": "category", "class_names": ["7", "5", "3"]},
                                 {"name": "sick", "type": "binary"}], "split": {"shuffle": False}})
    prepared = prepare_data(spec)
    _, targets = prepared.arrays("train")
    assert targets["grade"][:4].tolist() == [2, 1, 0, 1]  # codes spelled as the declared names
    assert targets["sick"][:2, 0].tolist() == [0.0, 1.0]  # codes 1/2 -> 0/1 in sorted order
    assert prepared.targets["sick"]["class_names"] == ["1", "2"]
