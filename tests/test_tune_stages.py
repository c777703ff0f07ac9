"""Tuning trials run through the training engine: every stage, freeze, class
weights and callbacks as `kerasflow train` runs them, and `best.yaml` retrains
to the trial's score."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DIGITS_MLP

from kerasflow.spec.loader import load_spec

TWO_STAGES = ("training.stages=[{name: warmup, epochs: 2, optimizer: {type: adam, learning_rate: "
              "{tune: choice, values: [0.003, 0.0001]}}}, {name: top, epochs: 2, freeze: [hidden1, hidden2], "
              "optimizer: {type: adam, learning_rate: 0.001}}]")


class _PerFit:
    """Per `fit` call (one per stage): hidden1's kernel before and after, and its trainable flag."""

    def __new__(cls):
        import keras

        class Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.fits: list[dict] = []

            def on_train_begin(self, logs=None):
                layer = self.model.get_layer("hidden1")
                self.fits.append({"trainable": layer.trainable, "before": layer.kernel.numpy().copy()})

            def on_train_end(self, logs=None):
                self.fits[-1]["after"] = self.model.get_layer("hidden1").kernel.numpy().copy()

        return Recorder()


def _trial(overrides: list[str], tmp_path):
    import keras_tuner as kt

    from kerasflow.tune import SpecHyperModel

    hypermodel = SpecHyperModel(load_spec(DIGITS_MLP, overrides))
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hypermodel.begin_trial(tmp_path / "trial")
    model = hypermodel.build(hp)
    recorder = _PerFit()
    metrics = hypermodel.fit(hp, model, callbacks=[recorder])
    return model, recorder.fits, metrics


@pytest.mark.slow
def test_a_trial_runs_every_stage_freezes_and_applies_class_weights(tmp_path):
    model, fits, metrics = _trial([TWO_STAGES], tmp_path / "plain")
    assert [f["trainable"] for f in fits] == [True, False]  # stage `top` froze hidden1
    assert not np.allclose(fits[0]["before"], fits[0]["after"])  # warmup trained it
    np.testing.assert_array_equal(fits[1]["before"], fits[1]["after"])  # top left it alone
    with open(tmp_path / "plain" / "trial" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["epoch"]), r["stage"]) for r in rows] == [(0, "warmup"), (1, "warmup"), (2, "top"), (3, "top")]
    assert metrics["val_accuracy"] > 0.8

    weighted, _, _ = _trial([TWO_STAGES, "training.class_weight={'0': 20.0}"], tmp_path / "weighted")
    # Same seed, same data: only the class weights differ, and they changed what was learned.
    assert not np.allclose(model.get_layer("output").kernel.numpy(), weighted.get_layer("output").kernel.numpy())


@pytest.mark.slow
def test_a_tuned_two_stage_balanced_spec_searches_and_best_yaml_retrains_to_the_trial_score(tmp_path):
    from kerasflow.train.stages import train
    from kerasflow.tune import tune

    overrides = [TWO_STAGES, "training.class_weight=balanced",
                 "tuning={tuner: grid, objective: val_accuracy, max_trials: 2}"]
    result = tune(load_spec(DIGITS_MLP, overrides), run_dir=tmp_path / "tune", quiet=True)

    assert len(result.trials) == 2 and all(r["status"] == "COMPLETED" for r in result.trials)
    for row in result.trials:
        with open(tmp_path / "tune" / "keras_tuner" / f"trial_{row['trial_id']}" / "history.csv") as fh:
            assert [r["stage"] for r in csv.DictReader(fh)] == ["warmup", "warmup", "top", "top"]
    best = load_spec(result.best_spec_path)
    assert best.spec.training.class_weight == "balanced"
    assert best.spec.training.stages[1].freeze == ["hidden1", "hidden2"]
    assert best.spec.training.stages[0].optimizer.learning_rate == 0.003  # clearly better in 2 epochs

    trained = train(best, run_dir=tmp_path / "train", quiet=True)
    assert trained.history["stage"] == ["warmup", "warmup", "top", "top"]
    # Same seed, same data, same stages: the trial's score again, within noise.
    assert trained.history["val_accuracy"][-1] == pytest.approx(result.best_score, abs=0.02)


@pytest.mark.slow
def test_hyperband_over_two_stages_continues_trials_in_the_last_stage_with_its_freeze(tmp_path):
    """Hyperband's budget is the last stage's epochs: a new trial trains `warmup`
    and then `top` for its round's budget; a continued trial starts from the
    earlier trial's weights and trains only the rest of `top`, still frozen."""
    from kerasflow.tune import tune

    overrides = [TWO_STAGES.replace("epochs: 2, freeze", "epochs: 3, freeze"),
                 "model.sequential.1.units={tune: int, min: 16, max: 64, step: 16}",
                 "tuning={tuner: hyperband, objective: val_accuracy, max_epochs: 3, factor: 3}"]
    result = tune(load_spec(DIGITS_MLP, overrides), run_dir=tmp_path / "tune", quiet=True)
    project = tmp_path / "tune" / "keras_tuner"

    assert len(result.trials) == 6 and all(r["status"] == "COMPLETED" for r in result.trials)
    continued = 0
    for row in result.trials:
        start, end = row["values"]["tuner/initial_epoch"], row["values"]["tuner/epochs"]
        with open(project / f"trial_{row['trial_id']}" / "history.csv") as fh:
            rows = [(int(r["epoch"]), r["stage"]) for r in csv.DictReader(fh)]
        top = [(2 + e, "top") for e in range(start, end)]  # `top` counts its epochs after warmup's 2
        if start == 0:
            assert rows == [(0, "warmup"), (1, "warmup"), *top]
        else:
            continued += 1
            assert rows == top  # warmup is not run again
            # it went on from its source trial's weights, and `top` kept hidden1/hidden2 frozen
            mine, source = _weights(project, row["trial_id"]), _weights(project, row["values"]["tuner/trial_id"])
            for layer in ("dense", "dense_1"):  # hidden1, hidden2
                np.testing.assert_array_equal(mine[layer], source[layer])
            assert not np.allclose(mine["dense_2"], source["dense_2"])  # the output layer trained on
    assert continued > 0  # hyperband's schedule continues the best of the short round
    best = load_spec(result.best_spec_path).spec
    assert [s.epochs for s in best.training.stages] == [2, 3]
    assert best.training.stages[1].freeze == ["hidden1", "hidden2"]


def _weights(project, trial_id: str) -> dict:
    """Kernels in a trial's KerasTuner checkpoint, by Keras' layer path (`dense` is hidden1)."""
    import h5py

    with h5py.File(project / f"trial_{trial_id}" / "checkpoint.weights.h5") as f:
        return {name: f[f"layers/{name}/vars/0"][()] for name in ("dense", "dense_1", "dense_2")}
