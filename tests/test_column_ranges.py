"""Many scalar columns as one feature (`columns: {start, stop}` by position),
headerless files named by position, and `length: variable` sequences: what
`validate` accepts and the errors it gives (TF-free)."""

from __future__ import annotations

import numpy as np
import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec

SPEC = """\
kerasflow: 1
name: ranges
data:
  source: {{type: csv, path: series.tsv, delimiter: "\\t", header: false}}
  features:
    signal: {feature}
  target: {{name: label, type: category, column: "0", class_names: [-1, 1]}}
model:
  sequential:
    - {{layer: dense, name: out, units: 2, activation: softmax}}
training:
  loss: sparse_categorical_crossentropy
  stages: [{{name: main, epochs: 1}}]
"""


def _spec(tmp_path, feature: str):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(feature=feature))
    return path


@pytest.mark.parametrize("feature, message", [
    ("{type: numeric, shape: [3], columns: {start: 4, stop: 2}}", "`stop` (2) must be greater than `start` (4)"),
    ("{type: numeric, shape: [3], columns: {start: -1, stop: 2}}", "greater than or equal to 0"),
    ("{type: numeric, shape: [3], column: a, columns: {start: 1, stop: 4}}", "`column` and `columns` both"),
    ("{type: sequence, vocab_size: 9}", "or `length: variable`"),
])
def test_bad_ranges_and_lengths_are_named(tmp_path, feature, message):
    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, feature))
    assert message in str(info.value) and "data.features.signal" in str(info.value)


@pytest.mark.parametrize("length", ["null", "variable"])
def test_variable_length_is_written_as_null_or_variable(tmp_path, length):
    feature = load_spec(_spec(tmp_path, f"{{type: sequence, length: {length}, vocab_size: 9}}")).spec.data.features
    assert feature["signal"].variable_length and feature["signal"].length == "variable"


def test_headerless_columns_by_position(tmp_path):
    from kerasflow.data.columns import type_columns
    from kerasflow.data.sources import load_source

    rows = np.arange(12, dtype=float).reshape(3, 4)
    rows[:, 0] = [-1, 1, -1]
    (tmp_path / "series.tsv").write_text("".join("\t".join(f"{v:g}" for v in r) + "\n" for r in rows))
    spec = load_spec(_spec(tmp_path, "{type: numeric, shape: [3], columns: {start: 1, stop: 4}}")).spec
    typed = type_columns(load_source(spec.data, base_dir=tmp_path, seed=0), spec.data)
    np.testing.assert_array_equal(typed.features["all"]["signal"], rows[:, 1:])
    assert typed.target_info["label"]["class_names"] == ["-1", "1"]

    spec = load_spec(_spec(tmp_path, "{type: numeric, shape: [5], columns: {start: 1, stop: 6}}")).spec
    with pytest.raises(SpecError, match=r"the source has 4 columns") as info:
        type_columns(load_source(spec.data, base_dir=tmp_path, seed=0), spec.data)
    assert "data.features.signal.columns.stop" in str(info.value)
