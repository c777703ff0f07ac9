"""Every source type on real data: bundled sets, files written by the test
(CSV, Parquet, npz, TFRecord, an image folder of digits, text), generated
tasks, and the offline error of the download sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import datasets

from kerasflow.data.pipeline import prepare_data
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec_dict


def make_spec(data: dict, seed: int = 42):
    """A complete spec around a data section (the model is a placeholder: tests build their own)."""
    target = data["target"][0] if isinstance(data["target"], list) else data["target"]
    raw = {
        "kerasflow": 1, "name": "t", "seed": seed, "data": data,
        "model": {"nodes": {"out": {"layer": "dense", "input": next(iter(data["features"])), "units": 1}},
                  "outputs": {target["name"]: "out"}},
        "training": {"loss": "mse", "stages": [{"name": "main", "epochs": 1}]},
    }
    return load_spec_dict(raw).spec


def fit_accuracy(prepared, spec, hidden=32, epochs=5, output=None):
    """Train a small model on the prepared data; accuracy on the test split."""
    import keras

    from kerasflow.data.features import build_inputs

    keras.utils.set_random_seed(0)
    inputs, pre = build_inputs(spec.data, prepared.stats)
    flat = [keras.layers.Flatten()(x) if len(x.shape) > 2 else x for x in pre.values()]
    x = flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    (name, info), = prepared.targets.items()
    binary = info["type"] == "binary"
    out = keras.layers.Dense(1 if binary else info["num_classes"], activation="sigmoid" if binary else "softmax",
                             name=name)(x)
    model = keras.Model(inputs, {name: out})
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  metrics={name: ["accuracy"]})
    model.fit(prepared.train, epochs=epochs, verbose=0)
    return model.evaluate(prepared.test, return_dict=True, verbose=0)["accuracy"], model


# ---------------------------------------------------------------- bundled


def test_digits_normalized_stratified_and_learnable():
    spec = make_spec({"source": {"type": "sklearn", "name": "digits"},
                      "features": {"pixels": {"type": "numeric", "shape": [64], "normalize": True}},
                      "target": {"name": "label", "type": "category", "num_classes": 10},
                      "split": {"validation": 0.1, "test": 0.2, "stratify": True}, "batch_size": 64})
    prepared = prepare_data(spec)
    assert sum(prepared.sizes.values()) == 1797
    x_train, y_train = prepared.arrays("train")
    # Statistics come from the training split only.
    assert np.allclose(prepared.stats["pixels"]["mean"], x_train["pixels"].mean(axis=0))
    x_test, y_test = prepared.arrays("test")
    assert not np.allclose(prepared.stats["pixels"]["mean"], x_test["pixels"].mean(axis=0))
    # Stratified: every class keeps its share (digits has ~180 per class).
    counts = np.bincount(y_test["label"], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38, counts
    assert prepared.targets["label"]["class_names"] == [str(i) for i in range(10)]
    assert prepared.steps("train") == -(-prepared.sizes["train"] // 64)
    accuracy, _ = fit_accuracy(prepared, spec, epochs=4)
    assert accuracy > 0.9


def test_digits_as_images():
    spec = make_spec({"source": {"type": "sklearn", "name": "digits"},
                      "features": {"image": {"type": "image", "height": 8, "width": 8, "channels": 1,
                                             "rescale": 0.0625, "column": "images"}},
                      "target": {"name": "digit", "type": "category", "column": "target"}})
    prepared = prepare_data(spec)
    features, _ = next(iter(prepared.train))
    assert features["image"].shape[1:] == (8, 8, 1)
    bunch = datasets.load_digits()
    assert prepared.sample_inputs(4)["image"].shape == (4, 8, 8, 1)
    assert features["image"].numpy().max() == bunch.images.max() == 16.0  # raw pixels: rescaling is in the model


def test_iris_class_names_and_determinism():
    data = {"source": {"type": "sklearn", "name": "iris"},
            "features": {"measurements": {"type": "numeric", "shape": [4], "normalize": True}},
            "target": {"name": "species", "type": "category"},
            "split": {"validation": 0.2, "test": 0.2, "stratify": True}}
    first = prepare_data(make_spec(data))
    again = prepare_data(make_spec(data))
    other = prepare_data(make_spec(data, seed=7))
    assert first.targets["species"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert first.targets["species"]["num_classes"] == 3
    a, b, c = (p.arrays("test")[0]["measurements"] for p in (first, again, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert first.fingerprint == again.fingerprint != other.fingerprint
    for split in ("train", "validation", "test"):
        assert set(first.arrays(split)[1]["species"].tolist()) == {0, 1, 2}


def test_breast_cancer_binary_by_column_names():
    bunch = datasets.load_breast_cancer()
    spec = make_spec({"source": {"type": "sklearn", "name": "breast_cancer"},
                      "features": {"radius": {"type": "numeric", "column": "mean radius", "normalize": True},
                                   "rest": {"type": "numeric", "shape": [3], "normalize": True,
                                            "column": ["mean texture", "worst area", "worst concavity"]}},
                      "target": {"name": "malignant", "type": "binary", "column": "target"},
                      "split": {"validation": 0.1, "test": 0.3, "stratify": True}})
    prepared = prepare_data(spec)
    assert prepared.targets["malignant"] == {"type": "binary", "num_classes": 2,
                                             "class_names": list(bunch.target_names)}
    features, targets = prepared.arrays("train")
    assert features["rest"].shape[1:] == (3,) and targets["malignant"].shape[1:] == (1,)
    assert set(np.unique(targets["malignant"])) == {0.0, 1.0}
    accuracy, _ = fit_accuracy(prepared, spec, epochs=5)
    assert accuracy > 0.85


def test_sunspots_windows_do_not_cross_the_split_boundary():
    spec = make_spec({"source": {"type": "statsmodels", "name": "sunspots"},
                      "features": {"activity": {"type": "timeseries", "input_width": 12, "label_width": 2,
                                                "shift": 3, "normalize": True}},
                      "target": {"name": "future", "type": "numeric"},
                      "split": {"validation": 0.15, "test": 0.15}, "batch_size": 16})
    prepared = prepare_data(spec)
    from statsmodels.datasets import sunspots

    series = sunspots.load_pandas().data["SUNACTIVITY"].to_numpy().astype(np.float32)
    n = len(series)
    n_test, n_val = round(n * 0.15), round(n * 0.15)
    bounds = {"train": (0, n - n_val - n_test), "validation": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    for split, (lo, hi) in bounds.items():
        features, targets = prepared.arrays(split)
        windows, labels = features["activity"], targets["future"]
        assert windows.shape[1:] == (12, 1) and labels.shape[1:] == (2,)
        # Window k of a part starts at lo + k: its inputs and labels lie inside [lo, hi).
        assert len(windows) == (hi - lo) - 15 + 1
        assert np.array_equal(windows[:, :, 0], np.stack([series[lo + k: lo + k + 12] for k in range(len(windows))]))
        assert np.array_equal(labels, np.stack([series[lo + k + 13: lo + k + 15] for k in range(len(windows))]))
    assert prepared.targets["future"]["shape"] == [2]
    train_part = series[: bounds["train"][1]]
    assert abs(prepared.stats["activity"]["mean"][0] - train_part.mean()) < 5  # windows weight ends less


@pytest.mark.parametrize("name", ["co2", "nile", "elnino"])
def test_other_statsmodels_series(name):
    spec = make_spec({"source": {"type": "statsmodels", "name": name},
                      "features": {"series": {"type": "timeseries", "input_width": 8}},
                      "target": {"name": "next", "type": "numeric"}})
    prepared = prepare_data(spec)
    features, targets = prepared.arrays("train")
    assert np.isfinite(features["series"]).all() and features["series"].shape[1:] == (8, 1)
    assert np.array_equal(features["series"][1:, -1, 0], targets["next"][:-1, 0])  # next step is the label


@pytest.mark.parametrize("name,kind", [("wine", "category"), ("diabetes", "numeric")])
def test_wine_and_diabetes(name, kind):
    spec = make_spec({"source": {"type": "sklearn", "name": name},
                      "features": {"x": {"type": "numeric", "shape": [13 if name == "wine" else 10]}},
                      "target": {"name": "y", "type": kind}})
    prepared = prepare_data(spec)
    _, targets = prepared.arrays("train")
    if kind == "category":
        assert prepared.targets["y"]["class_names"] == ["class_0", "class_1", "class_2"]
    else:
        assert targets["y"].dtype == np.float32 and targets["y"].shape[1:] == (1,) and targets["y"].max() > 300


# ---------------------------------------------------------------- files


def iris_frame() -> pd.DataFrame:
    bunch = datasets.load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = bunch.target_names[bunch.target]
    frame["size"] = np.where(frame["petal_length"] > 4, "large", "small")
    return frame.drop(columns="target")


IRIS_FILE_DATA = {
    "features": {"sepal_length": {"type": "numeric", "normalize": True},
                 "petal": {"type": "numeric", "shape": [2], "normalize": True,
                           "column": ["petal_length", "petal_width"]},
                 "size": {"type": "category"}},
    "target": {"name": "species", "type": "category"},
    "split": {"validation": 0.2, "test": 0.2, "stratify": True},
}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_round_trip(tmp_path, fmt):
    frame = iris_frame()
    path = tmp_path / f"iris.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    spec = make_spec({"source": {"type": fmt, "path": str(path)}, **IRIS_FILE_DATA})
    prepared = prepare_data(spec)
    features, targets = prepared.arrays("train")
    assert prepared.stats["size"]["vocabulary"] == sorted(prepared.stats["size"]["vocabulary"],
                                                          key=lambda v: -(features["size"] == v).sum())
    rows = frame.iloc[np.flatnonzero(np.isin(frame["sepal_length"], features["sepal_length"][:, 0]))]
    assert set(rows["size"]) == {"large", "small"}
    assert features["size"].dtype == object and features["size"][0, 0] in ("large", "small")
    assert prepared.targets["species"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert prepared.sizes == {"train": 90, "validation": 30, "test": 30}
    if fmt == "parquet":
        return  # same arrays as CSV (next test); train once
    accuracy, model = fit_accuracy(prepared, spec, epochs=30, hidden=16)
    assert accuracy > 0.8
    # The model takes raw strings: the lookup is inside it.
    import tensorflow as tf

    sample = prepared.sample_inputs(3, "test")
    probs = model({k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in sample.items()})
    assert probs["species"].shape == (3, 3)


def test_csv_and_parquet_agree_with_separate_files(tmp_path):
    frame = iris_frame().sample(frac=1.0, random_state=0)
    parts = {"train": frame[:100], "validation": frame[100:125], "test": frame[125:]}
    results = {}
    for fmt in ("csv", "parquet"):
        paths = {}
        for name, part in parts.items():
            paths[name] = tmp_path / f"{name}.{fmt}"
            part.to_csv(paths[name], index=False) if fmt == "csv" else part.to_parquet(paths[name], index=False)
        spec = make_spec({"source": {"type": fmt, "path": str(paths["train"]), "validation_path": str(paths["validation"]),
                                     "test_path": str(paths["test"])}, **IRIS_FILE_DATA})
        results[fmt] = prepare_data(spec)
    csv, parquet = results["csv"], results["parquet"]
    assert csv.sizes == parquet.sizes == {"train": 100, "validation": 25, "test": 25}
    for split in ("train", "validation", "test"):
        (fa, ta), (fb, tb) = csv.arrays(split), parquet.arrays(split)
        assert all(np.array_equal(fa[k], fb[k]) for k in fa) and np.array_equal(ta["species"], tb["species"])
    assert np.allclose(csv.arrays("test")[0]["sepal_length"][:, 0], parts["test"]["sepal_length"].to_numpy())
    assert csv.stats == parquet.stats


def test_npz_with_separate_validation_file(tmp_path):
    bunch = datasets.load_digits()
    np.savez(tmp_path / "train.npz", pixels=bunch.data[:1500], digit=bunch.target[:1500])
    np.savez(tmp_path / "val.npz", pixels=bunch.data[1500:], digit=bunch.target[1500:])
    spec = make_spec({"source": {"type": "npz", "path": str(tmp_path / "train.npz"),
                                 "validation_path": str(tmp_path / "val.npz")},
                      "features": {"pixels": {"type": "numeric", "shape": [64]}},
                      "target": {"name": "digit", "type": "category"}, "split": {"test": 0.1}})
    prepared = prepare_data(spec)
    assert prepared.sizes == {"train": 1350, "validation": 297, "test": 150}
    features, targets = prepared.arrays("validation")
    assert np.array_equal(features["pixels"], bunch.data[1500:].astype(np.float32))
    assert np.array_equal(targets["digit"], bunch.target[1500:])


def test_tfrecord_written_by_the_test(tmp_path):
    import tensorflow as tf

    bunch = datasets.load_digits()
    path = tmp_path / "digits.tfrecord"
    parity = np.where(bunch.target % 2 == 0, "even", "odd")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for pixels, label, word in zip(bunch.data, bunch.target, parity):
            example = tf.train.Example(features=tf.train.Features(feature={
                "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=pixels)),
                "parity": tf.train.Feature(bytes_list=tf.train.BytesList(value=[word.encode()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }))
            writer.write(example.SerializeToString())
    spec = make_spec({"source": {"type": "tfrecord", "path": str(tmp_path / "*.tfrecord")},
                      "features": {"pixels": {"type": "numeric", "shape": [8, 8], "normalize": True},
                                   "parity": {"type": "category"}},
                      "target": {"name": "label", "type": "category"}, "split": {"shuffle": False}})
    prepared = prepare_data(spec)
    features, targets = prepared.arrays("train")
    n = prepared.sizes["train"]
    assert np.array_equal(features["pixels"], bunch.images[:n].astype(np.float32))
    assert features["parity"][:4, 0].tolist() == parity[:4].tolist()
    assert np.array_equal(targets["label"], bunch.target[:n])
    assert sorted(prepared.stats["parity"]["vocabulary"]) == ["even", "odd"]
    assert len(prepared.stats["pixels"]["mean"]) == 8  # per last-axis entry


def test_image_dir_of_digit_pngs(tmp_path):
    import keras

    bunch = datasets.load_digits()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for i in range(300):
        folder = tmp_path / "images" / names[bunch.target[i]]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (bunch.images[i][..., None] * 15).astype("uint8")  # 0..16 -> 0..240
        keras.utils.save_img(folder / f"{i:04d}.png", pixels, scale=False)
    spec = make_spec({"source": {"type": "image_dir", "path": str(tmp_path / "images")},
                      "features": {"image": {"type": "image", "height": 8, "width": 8, "channels": 1,
                                             "augment": {"translation": 0.1}}},
                      "target": {"name": "digit", "type": "category"},
                      "split": {"validation": 0.2, "test": 0.2, "stratify": True}, "batch_size": 32,
                      "cache": str(tmp_path / "cache")})
    prepared = prepare_data(spec)
    assert prepared.targets["digit"]["class_names"] == sorted(names)
    features, targets = prepared.arrays("test")
    # PNGs are lossless: pixels read back equal the digit of their class folder.
    index = {tuple((img * 15).astype(int).ravel()): t for img, t in zip(bunch.images[:300], bunch.target[:300])}
    decoded = [index.get(tuple(img.astype(int).ravel())) for img in features["image"]]
    assert None not in decoded
    assert [sorted(names)[k] for k in targets["digit"]] == [names[d] for d in decoded]
    batch, _ = next(iter(prepared.train))
    assert batch["image"].shape[1:] == (8, 8, 1) and batch["image"].dtype == "float32"
    assert list(tmp_path.glob("cache.train*")), "the train split is cached to the file named in the spec"
    accuracy, _ = fit_accuracy(prepared, spec, epochs=10, hidden=64)
    assert accuracy > 0.6


TEXTS = {
    "pos": ["a wonderful film, truly great", "great acting and a lovely story", "I loved it, wonderful",
            "lovely, great fun", "truly wonderful and moving", "great film, loved the music"],
    "neg": ["a dull boring film", "terrible acting, boring story", "I hated it, dull",
            "awful and boring", "truly terrible waste", "boring film, hated the music"],
}


def test_text_csv_and_class_folders(tmp_path):
    rows = [(t, label) for label, texts in TEXTS.items() for t in texts] * 5
    pd.DataFrame(rows, columns=["review", "sentiment"]).to_csv(tmp_path / "reviews.csv", index=False)
    for label, texts in TEXTS.items():
        (tmp_path / "dir" / label).mkdir(parents=True)
        for i, t in enumerate(texts * 5):
            (tmp_path / "dir" / label / f"{i}.txt").write_text(t)
    common = {"features": {"review": {"type": "text", "max_tokens": 64, "output_mode": "multi_hot"}},
              "split": {"validation": 0.2, "test": 0.2, "stratify": True}}
    from_csv = prepare_data(make_spec({"source": {"type": "text", "path": str(tmp_path / "reviews.csv"),
                                                  "column": "review"},
                                       "target": {"name": "sentiment", "type": "binary",
                                                  "class_names": ["neg", "pos"]}, **common}))
    from_dir = prepare_data(make_spec({"source": {"type": "text", "path": str(tmp_path / "dir")},
                                       "target": {"name": "sentiment", "type": "binary"}, **common}))
    for prepared in (from_csv, from_dir):
        assert prepared.targets["sentiment"]["class_names"] == ["neg", "pos"]
        vocab = prepared.stats["review"]["vocabulary"]
        assert {"great", "boring", "wonderful"} <= set(vocab) and "" not in vocab and "[UNK]" not in vocab
        assert prepared.sizes["train"] == 36
    spec = make_spec({"source": {"type": "text", "path": str(tmp_path / "dir")},
                      "target": {"name": "sentiment", "type": "binary"}, **common})
    accuracy, _ = fit_accuracy(from_dir, spec, epochs=10, hidden=16)
    assert accuracy > 0.9


def test_generated_sort_task_is_deterministic():
    data = {"source": {"type": "generated", "task": "sort", "length": 6, "vocab_size": 10, "samples": 500},
            "features": {"digits": {"type": "sequence", "length": 6, "vocab_size": 10},
                         "decoder_input": {"type": "sequence", "length": 6, "vocab_size": 11}},
            "target": {"name": "sorted", "type": "sequence", "column": "target"}}
    prepared = prepare_data(make_spec(data))
    features, targets = prepared.arrays("train")
    assert np.array_equal(np.sort(features["digits"], axis=1), targets["sorted"])
    assert np.all(features["decoder_input"][:, 0] == 10)  # start token
    assert np.array_equal(features["decoder_input"][:, 1:], targets["sorted"][:, :-1])
    assert prepared.targets["sorted"]["num_classes"] == 10
    again = prepare_data(make_spec(data))
    assert np.array_equal(again.arrays("test")[0]["digits"], prepared.arrays("test")[0]["digits"])
    assert not np.array_equal(prepare_data(make_spec(data, seed=1)).arrays("test")[0]["digits"],
                              prepared.arrays("test")[0]["digits"])


# ---------------------------------------------------------------- network sources


def test_keras_source_fails_fast_offline(tmp_path, monkeypatch):
    """This machine is offline; if it ever is not, loading must simply work."""
    import time

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached download
    spec = make_spec({"source": {"type": "keras", "name": "mnist"},
                      "features": {"image": {"type": "image", "height": 28, "width": 28, "channels": 1}},
                      "target": {"name": "label", "type": "category"}})
    start = time.monotonic()
    try:
        prepared = prepare_data(spec)
    except SpecError as exc:
        assert time.monotonic() - start < 30
        problem = exc.problems[0]
        assert problem.path == "data.source" and "not reachable" in problem.message
        assert "sklearn" in problem.hint
    else:
        assert prepared.sizes["test"] == 10000


def test_tfds_source_fails_with_a_clear_message():
    spec = make_spec({"source": {"type": "tfds", "name": "mnist"},
                      "features": {"image": {"type": "image", "height": 28, "width": 28, "channels": 1}},
                      "target": {"name": "label", "type": "category"}})
    try:
        prepared = prepare_data(spec)
    except SpecError as exc:
        assert exc.problems[0].path.startswith("data.source")
        assert "tensorflow-datasets" in str(exc) or "not reachable" in str(exc)
    else:
        assert prepared.sizes["train"] > 0


# ---------------------------------------------------------------- shipped fragments

FRAGMENTS = sorted((Path(__file__).resolve().parents[1] / "specs" / "data").glob("*.yaml"))


@pytest.mark.parametrize("path", FRAGMENTS, ids=[p.stem for p in FRAGMENTS])
def test_shipped_data_fragment_prepares(path):
    data = yaml.safe_load(path.read_text())["data"]
    spec = make_spec(data)
    try:
        prepared = prepare_data(spec)
    except SpecError as exc:  # only the download sources may fail, and only offline
        assert data["source"]["type"] in ("keras", "tfds") and exc.problems[0].path == "data.source", str(exc)
        return
    assert min(prepared.sizes.values()) > 0
    sample = prepared.sample_inputs(2)
    assert set(sample) == set(data["features"]) and all(len(v) == 2 for v in sample.values())


def test_headerless_tsv_with_declared_label_values(tmp_path):
    """The UCR archive's layout (FordA in Keras' time-series example): a TSV
    without a header, the label first, labels -1 and 1."""
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1], 60)
    rows = np.column_stack([labels, labels, rng.normal(size=(60, 2))])  # t0 repeats the label
    (tmp_path / "train.tsv").write_text("\n".join("\t".join(f"{v:g}" for v in row) for row in rows) + "\n")
    raw = yaml.safe_load("""
kerasflow: 1
name: ucr
data:
  source: {type: csv, path: train.tsv, delimiter: "\\t", header: false, names: [label, t0, t1, t2]}
  features:
    signal: {type: numeric, shape: [3], column: [t0, t1, t2]}
  target: {name: label, type: category, class_names: [-1, 1]}
  split: {validation: 0.2, test: 0.2}
model:
  sequential:
    - {layer: dense, name: out, units: 2, activation: softmax}
training:
  loss: sparse_categorical_crossentropy
  stages: [{name: main, epochs: 1}]
""")
    spec = load_spec_dict(raw).spec
    prepared = prepare_data(spec, base_dir=tmp_path)
    assert prepared.targets["label"]["class_names"] == ["-1", "1"]
    x, y = prepared.arrays("train")
    assert set(np.unique(y["label"])) == {0, 1}
    np.testing.assert_array_equal(y["label"].reshape(-1), (x["signal"][:, 0] == 1).astype(int))  # -1 -> 0, 1 -> 1
    bad = dict(raw, data={**raw["data"], "source": {**raw["data"]["source"], "names": ["label", "t0"]}})
    with pytest.raises(SpecError, match=r"data\.source\.names: train\.tsv line 1 has 4 fields, `names` lists 2"):
        prepare_data(load_spec_dict(bad).spec, base_dir=tmp_path)


@pytest.mark.parametrize("options, expected", [
    ({}, [[0, 0, 1, 2], [4, 5, 6, 7]]),  # pad_sequences' defaults: pad and cut at the start
    ({"padding": "post", "truncating": "post"}, [[1, 2, 0, 0], [3, 4, 5, 6]]),
])
def test_token_lists_are_padded_as_pad_sequences(options, expected):
    """Variable-length token lists (the keras imdb/reuters sources) become `length` ids."""
    from kerasflow.data.columns import type_columns
    from kerasflow.data.sources import Loaded, Table

    raw = yaml.safe_load("""
kerasflow: 1
name: tokens
data:
  source: {type: keras, name: imdb}
  features:
    tokens: {type: sequence, length: 4, vocab_size: 10}
  target: {name: label, type: binary}
model:
  sequential: [{layer: embedding, input_dim: 10, output_dim: 2}, {layer: flatten}, {layer: dense, units: 1, activation: sigmoid}]
training: {loss: binary_crossentropy, stages: [{name: main, epochs: 1}]}
""")
    raw["data"]["features"]["tokens"].update(options)
    spec = load_spec_dict(raw).spec
    tokens = np.empty(2, dtype=object)
    tokens[0], tokens[1] = [1, 2], [3, 4, 5, 6, 7]
    loaded = Loaded(parts={"all": Table({"tokens": tokens, "label": np.array([0, 1])})})
    typed = type_columns(loaded, spec.data)
    assert np.asarray(typed.features["all"]["tokens"]).tolist() == expected
