"""Objective directions and chief/worker settings: checked before any training."""

import os

import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.sections import TuningSpec
from kerasflow.tune.distributed import environment, role_environment


@pytest.mark.parametrize("name,direction", [
    ("val_accuracy", "max"), ("val_sparse_categorical_accuracy", "max"), ("auc", "max"), ("val_recall", "max"),
    ("val_loss", "min"), ("mean_absolute_error", "min"), ("val_mae", "min"), ("val_label_loss", "min"),
])
def test_objective_direction_is_inferred_from_the_metric_name(name, direction):
    from kerasflow.tune.tuners import make_objective

    objective = make_objective(TuningSpec(objective=name))
    assert (objective.name, objective.direction) == (name, direction)


def test_an_unknown_objective_needs_an_explicit_direction():
    from kerasflow.tune.tuners import make_objective

    with pytest.raises(SpecError, match=r"tuning.objective: cannot tell whether `val_score` is better high or low"):
        make_objective(TuningSpec(objective="val_score"))
    explicit = make_objective(TuningSpec(objective={"name": "val_score", "direction": "max"}))
    assert explicit.direction == "max"


def test_roles_set_keras_tuner_variables_and_reject_bad_addresses():
    assert role_environment("chief", None, 8000, None) == {
        "KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "0.0.0.0", "KERASTUNER_ORACLE_PORT": "8000"}
    worker = role_environment("worker", "10.0.0.5:8000", None, "gpu0")
    assert worker == {"KERASTUNER_TUNER_ID": "gpu0", "KERASTUNER_ORACLE_IP": "10.0.0.5",
                      "KERASTUNER_ORACLE_PORT": "8000"}
    assert role_environment("worker", "h:1", None, None)["KERASTUNER_TUNER_ID"].startswith("worker-")
    with pytest.raises(SpecError, match="--port: a chief needs a port"):
        role_environment("chief", None, None, None)
    with pytest.raises(SpecError, match="--chief-address: a worker needs the chief's address"):
        role_environment("worker", "chief-host", None, "w1")
    with pytest.raises(SpecError, match="--worker-id: a worker id must not contain `chief`"):
        role_environment("worker", "h:1", None, "chief-2")


def test_a_standalone_search_ignores_stray_keras_tuner_variables(monkeypatch):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.0.0.5")
    with environment(role_environment("standalone", None, None, None)):
        assert "KERASTUNER_ORACLE_IP" not in os.environ  # KerasTuner would otherwise become a worker
    assert os.environ["KERASTUNER_ORACLE_IP"] == "10.0.0.5"


def test_tuning_accepts_what_training_accepts(valid_spec_path):
    import yaml

    from kerasflow.spec.loader import load_spec_dict
    from kerasflow.tune import SpecHyperModel

    raw = yaml.safe_load(valid_spec_path.read_text())
    raw["model"]["nodes"]["h2"]["units"] = {"tune": "choice", "values": [32, 64]}
    raw["training"]["class_weight"] = "balanced"
    raw["training"]["stages"][0]["freeze"] = ["h1"]
    hypermodel = SpecHyperModel(load_spec_dict(raw))
    assert hypermodel.stage_of(hypermodel.loaded.spec)[0] == len(raw["training"]["stages"]) - 1  # trials run them all
    from kerasflow.spec.sections import TuningSpec

    assert "(default: the last)" in TuningSpec.model_fields["stage"].description  # the reference says what happens


@pytest.mark.parametrize("objective, metrics, expected", [
    ("val_mape", {"test_loss": 1.0, "test_mape": 9.0}, ("test_mape", "min")),
    ("val_accuracy", {"test_loss": 1.0, "test_accuracy": 0.9}, ("test_accuracy", "max")),
    ({"name": "val_mape", "direction": "max"}, {"test_loss": 1.0, "test_mape": 0.2}, ("test_mape", "max")),
    ({"name": "val_accuracy", "direction": "min"}, {"test_accuracy": 0.2}, ("test_accuracy", "min")),
])
def test_tuner_and_registry_agree_on_the_direction_of_a_metric(objective, metrics, expected):
    """One home for metric direction: what the tuner minimizes, the registry's alias decision minimizes too."""
    from kerasflow.spec.loader import load_spec_dict
    from kerasflow.train.objective import registry_objective
    from kerasflow.tune.tuners import make_objective

    tuning = TuningSpec(objective=objective)
    raw = {"kerasflow": 1, "name": "x", "data": {"source": {"type": "sklearn", "name": "digits"},
                                                  "features": {"pixels": {"type": "numeric", "shape": [64]}},
                                                  "target": {"name": "label", "type": "category", "num_classes": 10}},
           "model": {"sequential": [{"layer": "dense", "units": 10, "activation": "softmax"}]},
           "training": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy", "mape"],
                        "stages": [{"name": "main", "epochs": 1}]},
           "tuning": tuning.model_dump(exclude_none=True)}
    spec = load_spec_dict(raw).spec
    assert registry_objective(spec, metrics) == expected
    assert make_objective(tuning).direction == expected[1]
