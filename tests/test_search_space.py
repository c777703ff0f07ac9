"""The search space read from `tune:` markers (TF-free, fast)."""

import copy
import subprocess
import sys

import pytest
import yaml

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec_dict
from kerasflow.spec.search_space import defaults, find_params, has_markers, substitute

LR = "training.stages[0].optimizer.learning_rate"
SCHEDULE_INITIAL = LR + ".values[0].initial"


@pytest.fixture
def raw(valid_spec_path):
    spec = yaml.safe_load(valid_spec_path.read_text())
    spec["model"]["nodes"]["h2"]["units"] = {"tune": "int", "min": 16, "max": 128, "step": 16}
    spec["model"]["nodes"]["h2"]["activation"] = {"tune": "choice", "values": ["relu", "tanh"]}
    spec["data"]["batch_size"] = {"tune": "choice", "values": [32, 64], "default": 64}
    spec["training"]["stages"][0]["optimizer"]["learning_rate"] = {
        "tune": "choice",
        "values": [
            {"type": "exponential", "initial": {"tune": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
             "decay_steps": 100, "decay_rate": 0.9},
            0.001,
        ],
        "default": 0.001,
    }
    return spec


def test_each_marker_is_one_param_named_by_its_path(raw):
    params = {p.name: p for p in find_params(raw)}
    assert list(params) == ["data.batch_size", "model.nodes.h2.units", "model.nodes.h2.activation", LR,
                            SCHEDULE_INITIAL]
    assert params["model.nodes.h2.units"].kind == "int"
    assert params["data.batch_size"].choices == [32, 64] and params["data.batch_size"].default == 64
    assert params[LR].choices == ["exponential", "0.001"]
    assert params[SCHEDULE_INITIAL].conditions == ((LR, "exponential"),)
    assert params["model.nodes.h2.units"].conditions == ()


def test_substitute_fills_the_chosen_alternative_and_drops_the_other(raw):
    filled = substitute(raw, {LR: "exponential", SCHEDULE_INITIAL: 0.003, "model.nodes.h2.units": 48})
    lr = filled["training"]["stages"][0]["optimizer"]["learning_rate"]
    assert lr == {"type": "exponential", "initial": 0.003, "decay_steps": 100, "decay_rate": 0.9}
    assert filled["model"]["nodes"]["h2"]["units"] == 48
    assert filled["model"]["nodes"]["h2"]["activation"] == "relu"  # first value is the default
    assert filled["data"]["batch_size"] == 64
    spec = load_spec_dict(filled).spec  # a marker-free spec that validates
    assert spec.training.stages[0].optimizer.learning_rate.initial == 0.003

    plain = substitute(raw, {LR: "0.001", SCHEDULE_INITIAL: 0.003})  # inactive value is ignored
    assert plain["training"]["stages"][0]["optimizer"]["learning_rate"] == 0.001
    assert not has_markers(plain)


def test_defaults_hold_only_params_active_under_the_defaults(raw):
    values = defaults(raw)
    assert values[LR] == "0.001"
    assert SCHEDULE_INITIAL not in values  # its alternative is not the default
    assert values["model.nodes.h2.units"] == 16
    assert substitute(raw, {}) == substitute(raw, values)
    load_spec_dict(substitute(raw, {}))


def test_raw_is_not_modified(raw):
    before = copy.deepcopy(raw)
    substitute(raw, {LR: "exponential"})
    assert raw == before


def test_hyperband_bookkeeping_is_ignored_but_typos_are_errors(raw):
    substitute(raw, {"tuner/epochs": 3, "tuner/trial_id": "0001"})
    with pytest.raises(SpecError, match=r"model\.nodes\.h2\.unit: not a tunable value"):
        substitute(raw, {"model.nodes.h2.unit": 3})


@pytest.mark.parametrize("name,value,expected", [
    ("model.nodes.h2.units", 500, r"an integer in \[16, 128\]"),
    ("model.nodes.h2.units", 20.5, r"an integer"),
    ("model.nodes.h2.activation", "gelu", "one of: relu, tanh"),
    (LR, "adam", "one of: exponential, 0.001"),
])
def test_values_outside_the_space_are_rejected(raw, name, value, expected):
    with pytest.raises(SpecError, match=expected):
        substitute(raw, {name: value, LR: "exponential"} if name != LR else {name: value})


def test_markers_where_preprocessing_is_fixed_are_rejected(raw):
    raw["data"]["features"]["kind"] = {"type": "category", "output": "embedding",
                                       "embedding_dim": {"tune": "int", "min": 2, "max": 8}}
    assert "data.features.kind.embedding_dim" in {p.name for p in find_params(raw)}  # a model layer: tunable
    raw["data"]["features"]["pixels"]["normalize"] = {"tune": "bool"}
    raw["data"]["split"]["validation"] = {"tune": "float", "min": 0.1, "max": 0.2}
    with pytest.raises(SpecError) as err:
        find_params(raw)
    assert [p.path for p in err.value.problems] == ["data.features.pixels.normalize", "data.split.validation"]
    assert "this value cannot be tuned" in str(err.value)


def test_invalid_marker_inside_an_alternative_names_its_path(raw):
    # The schema does not look inside a choice's mapping values; the search space does.
    raw["training"]["stages"][0]["optimizer"]["learning_rate"]["values"][0]["initial"]["max"] = 1e-5
    with pytest.raises(SpecError) as err:
        find_params(raw)
    assert err.value.problems[0].path == SCHEDULE_INITIAL
    assert "expected min < max" in err.value.problems[0].message


def test_nested_alternatives_chain_their_conditions():
    raw = {"model": {"x": {"tune": "choice", "values": [
        {"type": "a", "y": {"tune": "choice", "values": [{"type": "b", "z": {"tune": "bool"}}, None]}},
        {"type": "c"},
    ]}}}
    params = {p.name: p for p in find_params(raw)}
    z = "model.x.values[0].y.values[0].z"
    assert params[z].conditions == (("model.x", "a"), ("model.x.values[0].y", "b"))
    assert params["model.x.values[0].y"].choices == ["b", "null"]
    assert substitute(raw, {"model.x": "a", "model.x.values[0].y": "b", z: True}) == \
        {"model": {"x": {"type": "a", "y": {"type": "b", "z": True}}}}
    assert substitute(raw, {"model.x": "c"}) == {"model": {"x": {"type": "c"}}}
    assert defaults(raw) == {"model.x": "a", "model.x.values[0].y": "b", z: False}


def test_duplicate_labels_stay_distinct():
    raw = {"model": {"r": {"tune": "choice", "values": [{"l2": 0.1}, {"l2": 0.01}, [3, 3], 3]}}}
    (param,) = find_params(raw)
    assert param.choices == ['{"l2":0.1}', '{"l2":0.01}', "[3,3]", "3"]
    assert substitute(raw, {"model.r": "[3,3]"}) == {"model": {"r": [3, 3]}}


def test_search_space_imports_no_tensorflow():
    heavy = ("tensorflow", "keras", "keras_tuner", "mlflow")
    code = f"import sys, kerasflow.spec.search_space; print(any(m in sys.modules for m in {heavy!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
