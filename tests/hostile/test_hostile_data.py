"""Hostile data: every problem in the data is found while it is prepared,
before the first training step, and names the data file and the row; `predict`
checks its input rows the same way, on a model with numeric, category and text
inputs and two outputs (a category and a number)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kerasflow.cli import cli

N = 60
SPEC = """\
kerasflow: 1
name: mixed
seed: 1
data:
  source: {{type: {kind}, path: {path}}}
  features:
    x: {{type: numeric, normalize: true}}
    colour: {{type: category}}
    note: {{type: text, max_tokens: 20, sequence_length: 4}}
  target: [{{name: species, type: category}}, {{name: size, type: numeric}}]
  split: {{validation: 0.2, test: 0.2}}
  batch_size: 16
model:
  inputs: [x, colour, note]
  nodes:
    emb: {{layer: embedding, input: note, input_dim: 22, output_dim: 4}}
    pool: {{layer: global_average_pooling1d, input: emb}}
    merged: {{layer: concatenate, input: [x, colour, pool]}}
    h: {{layer: dense, input: merged, units: 8, activation: relu}}
    species_out: {{layer: dense, input: h, units: 3, activation: softmax}}
    size_out: {{layer: dense, input: h, units: 1}}
  outputs: {{species: species_out, size: size_out}}
training:
  loss: {{species: sparse_categorical_crossentropy, size: mse}}
  stages: [{{name: main, epochs: 2}}]
tracking: {{enabled: false}}
"""


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "blue", "green"], N)
    k = rng.integers(0, 3, N)
    return pd.DataFrame({
        "id": np.arange(N), "x": rng.normal(size=N).round(3), "colour": colour,
        "note": np.array(["good fine", "bad awful", "ok meh"])[k],
        "species": np.where(colour == "red", "a", np.where(k == 1, "b", "c")), "size": rng.normal(size=N).round(3),
    })


def csv_lines() -> list[str]:
    return frame().to_csv(index=False).splitlines(keepends=True)


def with_cell(row: int, column: str, value) -> pd.DataFrame:
    f = frame().astype(object)
    f.loc[row, column] = value
    return f


# (id, writer(path), file suffix, fragments the message must hold)
DataCase = tuple

ROWS = (0, 29, N - 1)


def data_cases() -> list[DataCase]:
    cases: list[DataCase] = []

    def lines_writer(transform):
        return lambda path: path.write_text("".join(transform(csv_lines())))

    cases.append(("header-only", lines_writer(lambda ls: ls[:1]), ".csv", ["data.csv has no data rows"]))
    cases.append(("empty-file", lines_writer(lambda ls: []), ".csv", ["cannot parse data.csv as CSV"]))
    for row in ROWS:
        line = row + 2
        cases.append((f"extra-field-row{row}", lines_writer(lambda ls, r=row: ls[:r + 1] + [ls[r + 1].rstrip("\n") +
                                                                                       ",EXTRA\n"] + ls[r + 2:]),
                      ".csv", [f"data.csv line {line} has more fields than the header", "expected: 6 fields"]))
        cases.append((f"fewer-fields-row{row}", lines_writer(lambda ls, r=row: ls[:r + 1] + [
            ",".join(ls[r + 1].split(",")[:3]) + "\n"] + ls[r + 2:]), ".csv",
            [f"data.csv line {line} has fewer fields than the header"]))
        for word in ("abc", "--", "1e", "0x1F", "twelve", "1,5"):
            cases.append((f"words-{word}-row{row}", lambda p, r=row, w=word: with_cell(r, "x", w).to_csv(p, index=False),
                          ".csv", [f"non-numeric value in column `x` at row {row} (data.csv line {line})",
                                   "expected: a number"]))
        for word in ("n/a", "NaN", "NULL"):  # pandas' own missing-value words
            cases.append((f"na-word-{word}-row{row}", lambda p, r=row, w=word: with_cell(r, "x", w).to_csv(
                p, index=False), ".csv", [f"missing value in column `x` at row {row} (data.csv line {line})"]))
        for value, label in ((None, "empty"), ("inf", "inf"), ("-inf", "minus-inf"), ("1e999", "overflow")):
            want = "missing value" if value is None else "infinite value"
            cases.append((f"numeric-{label}-row{row}", lambda p, r=row, v=value: with_cell(r, "x", v).to_csv(
                p, index=False), ".csv", [f"{want} in column `x` at row {row} (data.csv line {line})"]))
        cases.append((f"empty-category-row{row}", lambda p, r=row: with_cell(r, "colour", None).to_csv(p, index=False),
                      ".csv", [f"empty value in column `colour` at row {row} (data.csv line {line})"]))
        cases.append((f"empty-label-row{row}", lambda p, r=row: with_cell(r, "species", None).to_csv(p, index=False),
                      ".csv", [f"missing label in column `species` at row {row} (data.csv line {line})"]))
        cases.append((f"empty-numeric-target-row{row}", lambda p, r=row: with_cell(r, "size", None).to_csv(
            p, index=False), ".csv", [f"missing value in column `size` at row {row} (data.csv line {line})"]))
    cases.append(("parquet-garbage", lambda p: p.write_text("not parquet at all"), ".parquet",
                  ["cannot read data.parquet as Parquet"]))
    cases.append(("parquet-header-only", lambda p: frame().iloc[:0].to_parquet(p), ".parquet",
                  ["data.parquet has no data rows"]))
    cases.append(("parquet-words", lambda p: with_cell(7, "x", "abc").astype(str).to_parquet(p), ".parquet",
                  ["non-numeric value in column `x` at row 7 of data.parquet"]))
    return cases


CASES = data_cases()


def _write_spec(tmp_path, data_path, kind) -> str:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(kind=kind, path=data_path.name))
    return str(spec)


def refused(result, expect) -> str:
    out = result.output
    assert result.exit_code not in (0, None), f"accepted:\n{out}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out and "internal error" not in out, out
    for want in expect:
        assert (want.search(out) if isinstance(want, re.Pattern) else want in out), f"{want!r} not in:\n{out}"
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_data_stops_before_training_naming_file_and_row(case, tmp_path, monkeypatch):
    cid, write, suffix, expect = case
    monkeypatch.chdir(tmp_path)
    data = tmp_path / f"data{suffix}"
    write(data)
    spec = _write_spec(tmp_path, data, "parquet" if suffix == ".parquet" else "csv")
    result = CliRunner().invoke(cli, ["train", spec, "--run-dir", str(tmp_path / "run"), "--quiet"])
    refused(result, expect)
    assert not (tmp_path / "run").exists()  # nothing written, and no empty run directory left behind


@pytest.mark.parametrize("error", ["data", "spec"])
def test_a_failed_train_leaves_no_empty_run_directory_and_keeps_the_users(error, tmp_path, monkeypatch):
    """A spec error found after the run directory is chosen (an unresolved `tune:` marker) or
    a data error removes the directories train made for the run; never a directory the user had."""
    monkeypatch.chdir(tmp_path)
    lines = csv_lines()
    (tmp_path / "data.csv").write_text("".join(lines[:1] if error == "data" else lines))
    spec = _write_spec(tmp_path, tmp_path / "data.csv", "csv")
    if error == "spec":
        text = Path(spec).read_text()
        Path(spec).write_text(text.replace("units: 8,", "units: {tune: int, min: 4, max: 8},"))
    expect = ["data.csv has no data rows"] if error == "data" else ["unresolved `tune:` marker"]
    refused(CliRunner().invoke(cli, ["train", spec, "--quiet"]), expect)
    assert not (tmp_path / "runs").exists()  # runs/mixed/<run id>/ and the parents train made
    refused(CliRunner().invoke(cli, ["train", spec, "--run-dir", "out/a/b", "--quiet"]), expect)
    assert not (tmp_path / "out").exists()
    mine, empty = tmp_path / "mine", tmp_path / "empty"
    mine.mkdir()
    empty.mkdir()
    (mine / "notes.txt").write_text("keep")
    for directory in (mine, empty):
        refused(CliRunner().invoke(cli, ["train", spec, "--run-dir", str(directory), "--quiet"]), expect)
    assert (mine / "notes.txt").read_text() == "keep" and empty.is_dir()


def _png(path, payload: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)


IMAGE_SPEC = """\
kerasflow: 1
name: images
data:
  source: {type: image_dir, path: imgs}
  features: {image: {type: image, height: 8, width: 8, channels: 1}}
  target: {name: label, type: category}
  split: {validation: 0.0, test: 0.0}
model: {sequential: [{layer: flatten, input: image}, {layer: dense, units: 2, activation: softmax}]}
training: {loss: sparse_categorical_crossentropy, stages: [{name: main, epochs: 1}]}
tracking: {enabled: false}
"""


def good_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, format="PNG")
    return buf.getvalue()


BAD_IMAGES = {"text-as-png": ("b/bad.png", b"this is not an image"), "empty-png": ("b/empty.png", b""),
              "html-as-jpg": ("a/page.jpg", b"<html></html>"), "zip-as-gif": ("b/x.gif", b"PK\x03\x04zipzip")}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_a_file_that_is_not_an_image_is_named_before_training(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(4):
        _png(tmp_path / "imgs" / "a" / f"{i}.png", good_png())
        _png(tmp_path / "imgs" / "b" / f"{i}.png", good_png())
    rel, payload = BAD_IMAGES[name]
    _png(tmp_path / "imgs" / rel, payload)
    (tmp_path / "spec.yaml").write_text(IMAGE_SPEC)
    result = CliRunner().invoke(cli, ["train", "spec.yaml", "--run-dir", "run", "--quiet"])
    refused(result, [f"{tmp_path / 'imgs' / rel} is not an image", "expected: PNG, JPEG, GIF or BMP data"])


# ---------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A model with numeric, category and text inputs and two heads, trained through the CLI."""
    tmp = tmp_path_factory.mktemp("mixed")
    frame().to_csv(tmp / "data.csv", index=False)
    spec = _write_spec(tmp, tmp / "data.csv", "csv")
    result = CliRunner().invoke(cli, ["train", spec, "--run-dir", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp / "run"


FORMATS = {".csv": lambda f, p: f.to_csv(p, index=False), ".jsonl": lambda f, p: f.to_json(p, orient="records",
                                                                                           lines=True),
           ".parquet": lambda f, p: f.to_parquet(p, index=False)}


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_predict_string_inputs_and_two_heads(mixed_run, tmp_path, suffix):
    rows = frame().drop(columns=["species", "size"]).iloc[:7]
    FORMATS[suffix](rows, tmp_path / f"in{suffix}")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(mixed_run), "--input", str(tmp_path / f"in{suffix}"),
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == list(range(7))
    assert all(r["species"] in ("a", "b", "c") and 0 < r["species_probability"] <= 1 for r in records)
    assert all(np.isfinite(r["size"]) for r in records)


def _predict_input(column, value, row=2):
    f = frame().drop(columns=["species", "size"]).iloc[:5].astype(object)
    f.loc[row, column] = value
    return f


PREDICT_CASES = []
for _suffix, _line in ((".csv", 4), (".jsonl", 3), (".parquet", None)):
    _where = f"row 2 (in{_suffix} line {_line})" if _line else f"row 2 of in{_suffix}"
    PREDICT_CASES += [
        (f"empty-number{_suffix}", _suffix, "x", None, [f"missing value in column `x` at {_where}"]),
        (f"words-in-number{_suffix}", _suffix, "x", "lots", [f"non-numeric value in column `x` at {_where}",
                                                              "received: 'lots'"]),
        (f"inf-number{_suffix}", _suffix, "x", "inf", [f"infinite value in column `x` at {_where}"]),
        (f"empty-category{_suffix}", _suffix, "colour", None, [f"empty value in column `colour` at {_where}"]),
    ]
PREDICT_CASES += [
    ("vector-in-scalar.csv", ".csv", "x", "[1, 2]", ["column `x` at row 2 (in.csv line 4) holds 2 value(s)"]),
    ("broken-json.csv", ".csv", "x", "[1, 2", ["column `x` at row 2 (in.csv line 4) is not a JSON list"]),
    ("missing-column.csv", ".csv", "colour", "DROP", ["no input column for feature `colour`"]),
]


@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_predict_names_the_bad_cell(mixed_run, tmp_path, case):
    cid, suffix, column, value, expect = case
    f = _predict_input(column, value)
    if value == "DROP":
        f = f.drop(columns=[column])
    if suffix == ".parquet":
        f = f.astype({c: str for c in f.columns if c != "id" and f[c].dtype == object and c != column})
        f[column] = f[column].map(lambda v: None if v is None else str(v))
    path = tmp_path / f"in{suffix}"
    FORMATS[suffix](f, path)
    result = CliRunner().invoke(cli, ["predict", str(mixed_run), "--input", str(path), "--output",
                                      str(tmp_path / "out.csv")])
    refused(result, ["--input" if value != "DROP" else "data.features.colour", *expect])
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("name,content,want", [
    ("in.csv", "", "cannot read in.csv as csv"),
    ("in.csv", "id,x,colour,note\n", "in.csv has no rows to predict"),
    ("in.jsonl", "{not json\n", "cannot read in.jsonl as jsonl"),
    ("in.parquet", "garbage", "cannot read in.parquet as parquet"),
    ("in.txt", "a,b\n", "unsupported file type `.txt`"),
])
def test_predict_unreadable_input(mixed_run, tmp_path, name, content, want):
    (tmp_path / name).write_text(content)
    result = CliRunner().invoke(cli, ["predict", str(mixed_run), "--input", str(tmp_path / name), "--output",
                                      str(tmp_path / "out.csv")])
    refused(result, ["--input", want])


def test_predict_refuses_an_unknown_output_type_before_any_work(mixed_run, tmp_path):
    frame().iloc[:3].to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", str(mixed_run), "--input", str(tmp_path / "in.csv"), "--output",
                                      str(tmp_path / "out.xlsx")])
    refused(result, ["--output", "unsupported file type `.xlsx`"])


def test_corpus_size():
    ids = [c[0] for c in CASES] + [c[0] for c in PREDICT_CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    assert len(CASES) + len(BAD_IMAGES) + len(PREDICT_CASES) >= 75
