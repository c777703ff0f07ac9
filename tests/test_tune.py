"""KerasTuner searches over the digits MLP driven by `tune:` markers: the real
tuners, real training, a real MLflow sqlite store. Trials are 1-3 epochs on
scikit-learn's digits so the whole file stays within a couple of minutes."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import yaml

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec
from kerasflow.spec.search_space import has_markers

BASE = Path(__file__).resolve().parent / "specs" / "valid_mlp.yaml"
LR = "training.stages[0].optimizer.learning_rate"
UNITS = "model.nodes.h2.units"

pytestmark = pytest.mark.slow


def write_spec(tmp_path: Path, name: str, *, lr, epochs: int = 1, tuning: dict, nodes: dict | None = None,
               tracking: dict | None = None) -> Path:
    """tests/specs/valid_mlp.yaml made small enough for quick trials: `nodes` feed the
    10-way softmax `out` through the node named `h2`."""
    spec = yaml.safe_load(BASE.read_text())
    nodes = nodes or {"h1": {"layer": "dense", "input": "pixels", "units": 32, "activation": "relu"},
                      "h2": {"layer": "dense", "input": "h1", "units": 16, "activation": "relu"}}
    spec["name"] = name
    spec["model"]["nodes"] = {**nodes, "out": {"layer": "dense", "input": "h2", "units": 10, "activation": "softmax"}}
    spec["training"].update(jit_compile=False, stages=[
        {"name": "main", "epochs": epochs, "optimizer": {"type": "adam", "learning_rate": lr}}])
    spec["tuning"] = tuning
    spec["tracking"] = tracking or {"enabled": False}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(path: Path, run_dir: Path, **kwargs):
    from kerasflow.tune import tune

    return tune(load_spec(path), run_dir=run_dir, quiet=True, **kwargs)


def by_lr(result) -> dict:
    return {row["values"][LR]: row for row in result.trials}


def test_random_search_beats_the_bad_default_and_tracks_trials_in_mlflow(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bad_default = {"tune": "choice", "values": [1e-6, 1e-2]}  # the first value is the default
    path = write_spec(tmp_path, "random", lr=bad_default, epochs=2,
                      tuning={"tuner": "random", "objective": "val_accuracy", "max_trials": 2},
                      tracking={"uri": uri, "experiment": "tune-test"})
    result = run(path, tmp_path / "run")

    rows = by_lr(result)
    assert set(rows) == {1e-6, 1e-2}  # random search never repeats a configuration
    assert result.best_values == {LR: 1e-2}
    assert result.best_score == rows[1e-2]["score"] > rows[1e-6]["score"] + 0.3
    assert result.objective == ("val_accuracy", "max")  # direction inferred from the name

    # best.yaml is the spec with the best value and no marker left; it trains as is.
    best = load_spec(result.best_spec_path)
    assert best.spec.training.stages[0].optimizer.learning_rate == 1e-2
    assert not has_markers(best.raw)
    assert (tmp_path / "run" / "tuning.png").stat().st_size > 1000

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(result.best_score)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"best.yaml", "tuning.png"}
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["kerasflow.trial_status"] == "COMPLETED"
        lr = float(child.data.params[LR.replace("[", "_").replace("]", "_")])
        assert child.data.metrics["score"] == pytest.approx(rows[lr]["score"])
        epochs = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert sorted(m.step for m in epochs) == [0, 1]  # every epoch logged

    # `kerasflow train best.yaml`: the same model and data give the tuned accuracy again.
    from kerasflow.train.stages import train

    trained = train(best, run_dir=tmp_path / "train", quiet=True)
    assert trained.history["val_accuracy"][-1] == pytest.approx(rows[1e-2]["score"], abs=0.05)


def test_bayesian_search_beats_the_bad_default(tmp_path):
    lr = {"tune": "float", "min": 1e-6, "max": 0.1, "sampling": "log", "default": 1e-6}
    tuning = {"tuner": "bayesian", "objective": {"name": "val_loss", "direction": "min"}, "max_trials": 3,
              "num_initial_points": 1, "seed": 7}
    bayes = run(write_spec(tmp_path, "bayes", lr=lr, tuning=tuning), tmp_path / "bayes")
    # A one-trial grid search trains exactly the defaults: the baseline to beat.
    default = run(write_spec(tmp_path, "default", lr=lr,
                             tuning={"tuner": "grid", "objective": "val_loss", "max_trials": 1}), tmp_path / "default")
    assert default.best_values == {LR: 1e-6}
    assert len(bayes.trials) == 3 and all(r["status"] == "COMPLETED" for r in bayes.trials)
    assert bayes.objective == ("val_loss", "min")
    assert bayes.best_score < default.best_score - 0.5
    assert bayes.best_values[LR] > 1e-4


def test_hyperband_trains_each_trial_for_the_epochs_it_injects(tmp_path):
    nodes = {"h1": {"layer": "dense", "input": "pixels", "units": {"tune": "int", "min": 16, "max": 64, "step": 16},
                    "activation": "relu"},
             "h2": {"layer": "dense", "input": "h1", "units": 16, "activation": "relu"}}
    path = write_spec(tmp_path, "hyperband", lr={"tune": "choice", "values": [1e-2, 3e-3]}, epochs=3, nodes=nodes,
                      tuning={"tuner": "hyperband", "objective": "val_accuracy", "max_epochs": 3, "factor": 3})
    result = run(path, tmp_path / "run")
    assert len(result.trials) == 6  # hyperband's own schedule for max_epochs=3, factor=3
    project = tmp_path / "run" / "keras_tuner"
    budgets = set()
    for row in result.trials:
        assert row["status"] == "COMPLETED"
        start, end = row["values"]["tuner/initial_epoch"], row["values"]["tuner/epochs"]
        budgets.add(end)
        with open(project / f"trial_{row['trial_id']}" / "history.csv") as fh:
            epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
        assert epochs == list(range(start, end))  # trained exactly the epochs hyperband asked for
    assert budgets == {1, 3}  # a short round, then the survivors continue to max_epochs
    assert "tuner/epochs" not in result.best_values
    assert load_spec(result.best_spec_path).spec.training.stages[0].epochs == 3


def test_grid_enumerates_a_conditional_space_once_and_inactive_params_stay_unset(tmp_path):
    schedule = {"type": "exponential", "initial": {"tune": "choice", "values": [1e-2, 3e-3]},
                "decay_steps": 100, "decay_rate": 0.9}
    lr = {"tune": "choice", "values": [schedule, 1e-2]}
    nodes = {"h1": {"layer": "dense", "input": "pixels", "units": 32,
                    "activation": {"tune": "choice", "values": ["relu", "tanh"]}},
             "h2": {"layer": "dense", "input": "h1", "units": 16, "activation": "relu"}}
    path = write_spec(tmp_path, "grid", lr=lr, nodes=nodes, tuning={"tuner": "grid", "objective": "val_accuracy",
                                                                     "max_trials": 20})
    result = run(path, tmp_path / "run")
    initial = LR + ".values[0].initial"
    seen = []
    for row in result.trials:
        values = row["values"]
        assert row["status"] == "COMPLETED"
        assert (initial in values) == (values[LR] == "exponential")  # only active in its branch
        seen.append((values["model.nodes.h1.activation"], values[LR], values.get(initial)))
    expected = list(itertools.product(["relu", "tanh"], [("exponential", 1e-2), ("exponential", 3e-3), ("0.01", None)]))
    assert sorted(seen) == sorted((a, lr, init) for a, (lr, init) in expected)  # every combination, once

    best = load_spec(result.best_spec_path).spec.training.stages[0].optimizer.learning_rate
    assert best == 1e-2 or (best.type == "exponential" and best.initial in (1e-2, 3e-3))


def test_failing_trials_are_marked_failed_and_the_search_completes(tmp_path):
    # kernel_size 9 does not fit an 8-step sequence (a shape error); `exponential` of activations scaled
    # by 100 overflows to inf and makes the loss NaN (the schema keeps learning rates <= 10, so a huge
    # rate can no longer do it).
    act = "model.nodes.h2.activation"
    nodes = {
        "grid": {"layer": "reshape", "input": "pixels", "target_shape": [8, 8]},
        "conv": {"layer": "conv1d", "input": "grid", "filters": 8, "activation": "relu",
                 "kernel_size": {"tune": "choice", "values": [3, 9]}},
        "flat": {"layer": "flatten", "input": "conv"},
        "boost": {"layer": "rescaling", "input": "flat", "scale": 100.0},
        "h2": {"layer": "activation", "input": "boost", "activation": {"tune": "choice", "values": ["relu", "exponential"]}},
    }
    path = write_spec(tmp_path, "failing", lr=1e-2, nodes=nodes,
                      tuning={"tuner": "grid", "objective": "val_accuracy", "max_consecutive_failed_trials": 4})
    result = run(path, tmp_path / "run")
    rows = {(r["values"]["model.nodes.conv.kernel_size"], r["values"][act]): r for r in result.trials}
    assert set(rows) == {(3, "relu"), (3, "exponential"), (9, "relu"), (9, "exponential")}
    assert rows[(3, "relu")]["status"] == "COMPLETED"
    for key in [(9, "relu"), (9, "exponential")]:
        assert rows[key]["status"] == "FAILED" and "conv" in rows[key]["message"]
    assert rows[(3, "exponential")]["status"] == "FAILED" and "nan" in rows[(3, "exponential")]["message"].lower()
    trials = json.loads((tmp_path / "run" / "keras_tuner" / "oracle.json").read_text())["end_order"]
    assert len(trials) == 4  # the search went on after each failure
    assert result.best_values == {"model.nodes.conv.kernel_size": 3, act: "relu"}

    # The project belongs to this search space: another space cannot resume it.
    changed = write_spec(tmp_path, "failing", lr={"tune": "choice", "values": [1e-2, 1e-3]}, nodes=nodes,
                         tuning={"tuner": "grid", "objective": "val_accuracy"})
    with pytest.raises(SpecError, match="started for another search space"):
        run(changed, tmp_path / "run")


def test_a_tuned_batch_size_rebatches_the_prepared_data_and_executions_get_their_own_seed(tmp_path):
    import keras
    import keras_tuner as kt
    import numpy as np

    from kerasflow.tune import SpecHyperModel

    path = write_spec(tmp_path, "batch", lr=1e-2, tuning={"tuner": "random", "objective": "val_accuracy"})
    text = path.read_text().replace("batch_size: 64", "batch_size: {tune: choice, values: [64, 32]}")
    path.write_text(text)
    hypermodel = SpecHyperModel(load_spec(path))
    data = hypermodel.data
    assert data.batch_size == 64  # prepared once, with the default batch size

    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values["data.batch_size"] = 32
    hypermodel.begin_trial(tmp_path / "trial")
    first, second = hypermodel.build(hp), hypermodel.build(hp)  # two executions of one trial

    class Batches(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1

    batches = Batches()
    history = hypermodel.fit(hp, second, callbacks=[batches])
    assert batches.count == -(-data.sizes["train"] // 32)  # rebatched to the trial's batch size
    assert history.history["val_accuracy"][-1] > 0.5
    assert hypermodel.data is data  # not prepared again
    assert not np.allclose(first.get_weights()[0], second.get_weights()[0])  # each execution has its own seed
