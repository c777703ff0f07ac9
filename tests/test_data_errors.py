"""Bad data gives one SpecError naming the spec path, the column and the row."""

from __future__ import annotations

import pandas as pd
import pytest

from kerasflow.data.pipeline import prepare_data
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec, load_spec_dict


def make_spec(data: dict):
    raw = {"kerasflow": 1, "name": "t", "data": data,
           "model": {"sequential": [{"layer": "dense", "input": next(iter(data["features"])), "units": 3}]},
           "training": {"loss": "mse", "stages": [{"name": "main", "epochs": 1}]}}
    return load_spec_dict(raw).spec


@pytest.fixture
def flowers(tmp_path):
    frame = pd.DataFrame({
        "petal_length": [1.4, 4.7, 6.0, 1.3, 4.5, 5.1] * 5,
        "colour": ["white", "blue", "blue", "white", "red", "blue"] * 5,
        "species": ["setosa", "versicolor", "virginica"] * 10,
    })
    path = tmp_path / "flowers.csv"
    frame.to_csv(path, index=False)
    return path, frame


def spec_for(path, **overrides):
    data = {"source": {"type": "csv", "path": str(path)},
            "features": {"petal_length": {"type": "numeric"}, "colour": {"type": "category"}},
            "target": {"name": "species", "type": "category"}, "split": {"validation": 0.2, "test": 0.2}}
    data.update(overrides)
    return make_spec(data)


def problem(exc_info, index=0):
    return exc_info.value.problems[index]


def test_missing_file_names_the_source_path(tmp_path):
    with pytest.raises(SpecError, match="file not found") as err:
        prepare_data(spec_for(tmp_path / "nope.csv"))
    assert problem(err).path == "data.source.path"


def test_missing_file_is_reported_relative_to_the_spec_file(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "kerasflow: 1\nname: t\ndata:\n  source: {type: csv, path: data/missing.csv}\n"
        "  features: {x: {type: numeric}}\n  target: {name: y, type: numeric}\n"
        "model: {sequential: [{layer: dense, units: 1}]}\n"
        "training: {loss: mse, stages: [{name: main, epochs: 1}]}\n")
    with pytest.raises(SpecError) as err:
        prepare_data(load_spec(tmp_path / "spec.yaml").spec)
    assert str(tmp_path / "data" / "missing.csv") in problem(err).message


def test_misspelled_column_suggests_the_right_one(flowers):
    path, _ = flowers
    spec = spec_for(path, features={"petal_lenght": {"type": "numeric"}, "color": {"type": "category",
                                                                                     "column": "color"}})
    with pytest.raises(SpecError) as err:
        prepare_data(spec)
    first, second = err.value.problems  # both reported at once
    assert first.path == "data.features.petal_lenght" and "`petal_length`" in first.hint
    assert second.path == "data.features.color.column" and "`colour`" in second.hint
    assert "petal_length, colour, species" in first.expected


def test_non_numeric_value_names_the_row_and_line(flowers):
    path, frame = flowers
    frame["petal_length"] = frame["petal_length"].astype(object)
    frame.loc[17, "petal_length"] = "n/a cm"
    frame.to_csv(path, index=False)
    with pytest.raises(SpecError, match=r"row 17 \(flowers.csv line 19\)") as err:
        prepare_data(spec_for(path))
    assert problem(err).path == "data.features.petal_length" and problem(err).received == "'n/a cm'"


def test_missing_numeric_value_is_an_error(flowers):
    path, frame = flowers
    frame.loc[3, "petal_length"] = None
    frame.to_csv(path, index=False)
    with pytest.raises(SpecError, match="missing value in column `petal_length` at row 3"):
        prepare_data(spec_for(path))


def test_label_outside_declared_classes(flowers):
    path, _ = flowers
    spec = spec_for(path, target={"name": "species", "type": "category",
                                  "class_names": ["setosa", "versicolor", "virginca"]})
    with pytest.raises(SpecError, match="outside the declared classes") as err:
        prepare_data(spec)
    assert problem(err).path == "data.target.class_names"
    assert problem(err).received == "virginica" and "`virginca`" in problem(err).hint


def test_integer_label_outside_num_classes(tmp_path):
    pd.DataFrame({"x": range(20), "y": [0, 1, 2, 3] * 5}).to_csv(tmp_path / "d.csv", index=False)
    spec = make_spec({"source": {"type": "csv", "path": str(tmp_path / "d.csv")},
                      "features": {"x": {"type": "numeric"}}, "target": {"name": "y", "type": "category",
                                                                          "num_classes": 3}})
    with pytest.raises(SpecError, match="outside the declared classes") as err:
        prepare_data(spec)
    assert problem(err).path == "data.target.num_classes" and problem(err).received == "3"


def test_split_leaving_a_class_without_training_rows(flowers):
    path, frame = flowers
    frame["part"] = ["train"] * 24 + ["test"] * 6
    frame.loc[29, "species"] = "rare"  # its only row is in the test split
    frame.to_csv(path, index=False)
    with pytest.raises(SpecError, match="leaves class\\(es\\) rare of target `species` with no training") as err:
        prepare_data(spec_for(path, split={"column": "part"}))
    assert problem(err).path == "data.split"


def test_empty_split_is_an_error(flowers):
    path, frame = flowers
    frame[:4].to_csv(path, index=False)
    with pytest.raises(SpecError, match="the validation split is empty") as err:
        prepare_data(spec_for(path, split={"validation": 0.1, "test": 0.0}))
    assert problem(err).path == "data.split.validation"


def test_split_column_with_unknown_values(flowers):
    path, frame = flowers
    frame["part"] = ["train", "valid"] * 15
    frame.to_csv(path, index=False)
    with pytest.raises(SpecError, match="not splits") as err:
        prepare_data(spec_for(path, split={"column": "part"}))
    assert problem(err).received == "valid"


def test_stratify_needs_a_class_target(tmp_path):
    pd.DataFrame({"x": range(20), "y": range(20)}).to_csv(tmp_path / "d.csv", index=False)
    spec = make_spec({"source": {"type": "csv", "path": str(tmp_path / "d.csv")},
                      "features": {"x": {"type": "numeric"}}, "target": {"name": "y", "type": "numeric"},
                      "split": {"stratify": True}})
    with pytest.raises(SpecError, match="stratify needs a category or binary target"):
        prepare_data(spec)


def test_timeseries_window_longer_than_a_split():
    spec = make_spec({"source": {"type": "statsmodels", "name": "nile"},
                      "features": {"flow": {"type": "timeseries", "input_width": 30}},
                      "target": {"name": "next", "type": "numeric"}, "split": {"validation": 0.2, "test": 0.1}})
    with pytest.raises(SpecError, match="the test split is empty \\(0 windows\\)") as err:
        prepare_data(spec)
    assert "input_width" in problem(err).hint


def test_timeseries_features_cannot_mix_with_others():
    spec = make_spec({"source": {"type": "statsmodels", "name": "sunspots"},
                      "features": {"flow": {"type": "timeseries", "input_width": 5},
                                   "year": {"type": "numeric", "column": "YEAR"}},
                      "target": {"name": "next", "type": "category"}})
    with pytest.raises(SpecError) as err:
        prepare_data(spec)
    paths = [p.path for p in err.value.problems]
    assert paths == ["data.features.year.type", "data.target.type"]


def test_shape_mismatch_names_the_shape():
    spec = make_spec({"source": {"type": "sklearn", "name": "iris"},
                      "features": {"x": {"type": "numeric", "shape": [5]}},
                      "target": {"name": "y", "type": "category"}})
    with pytest.raises(SpecError, match="has 4 value\\(s\\) per row") as err:
        prepare_data(spec)
    assert problem(err).path == "data.features.x.shape"


def test_schema_rejects_a_timeseries_without_a_window():
    with pytest.raises(SpecError, match="needs `input_width`") as err:
        make_spec({"source": {"type": "statsmodels", "name": "nile"},
                   "features": {"flow": {"type": "timeseries"}}, "target": {"name": "y", "type": "numeric"}})
    assert problem(err).path == "data.features.flow"
