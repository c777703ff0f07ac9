"""Training building blocks: optimizers and schedules, spec checks, class
weights, strategies, run directories, history and the epoch backup."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec_dict
from kerasflow.spec.training_schema import OPTIMIZER_OPTIONS, OPTIMIZERS, Optimizer

BASE = {
    "kerasflow": 1,
    "name": "unit",
    "data": {
        "source": {"type": "sklearn", "name": "digits"},
        "features": {"pixels": {"type": "numeric", "shape": [64]}},
        "target": {"name": "label", "type": "category", "num_classes": 10},
    },
    "model": {"sequential": [{"layer": "dense", "units": 10, "activation": "softmax"}]},
    "training": {"loss": "sparse_categorical_crossentropy", "stages": [{"name": "main", "epochs": 1}]},
    "tracking": {"enabled": False},
}


def _spec(**stage):
    raw = {**BASE, "training": {**BASE["training"], "stages": [{"name": "main", "epochs": 1, **stage}]}}
    return load_spec_dict(raw)


def test_optimizer_options_table_matches_installed_keras():
    import keras

    from kerasflow.train.compile import _OPTIMIZERS

    assert set(_OPTIMIZERS) == set(OPTIMIZERS)
    for kind, cls_name in _OPTIMIZERS.items():
        accepted = inspect.signature(getattr(keras.optimizers, cls_name).__init__).parameters
        for option, kinds in OPTIMIZER_OPTIONS.items():
            assert (kind in kinds) == (option in accepted), f"{kind}.{option}"


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_every_optimizer_builds_with_clipping_and_decay(kind):
    import keras

    from kerasflow.train.compile import _OPTIMIZERS, make_optimizer

    opt = make_optimizer(Optimizer(type=kind, learning_rate=0.01, global_clipnorm=1.0, weight_decay=1e-4),
                         steps_per_epoch=10)
    assert type(opt) is getattr(keras.optimizers, _OPTIMIZERS[kind])
    assert opt.global_clipnorm == 1.0 and opt.weight_decay == pytest.approx(1e-4)
    assert float(opt.learning_rate) == pytest.approx(0.01)


def _rates(lr: dict, steps: list[int], steps_per_epoch: int = 10) -> list[float]:
    import keras

    from kerasflow.train.compile import make_learning_rate

    schedule = make_learning_rate(Optimizer(learning_rate=lr).learning_rate, steps_per_epoch=steps_per_epoch)
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_cosine_with_warmup_in_epochs():
    # 1 warmup epoch (10 steps) ramping to 0.1, then cosine over 4 epochs (40 steps) to alpha * 0.1.
    lr = {"type": "cosine", "initial": 0.1, "decay_steps": 4, "alpha": 0.1, "warmup_steps": 1, "unit": "epoch"}
    got = _rates(lr, [0, 4, 9, 10, 30, 50, 80])
    cosine = lambda t: 0.1 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * min(t, 40) / 40)) + 0.1)  # noqa: E731
    assert got == pytest.approx([0.01, 0.05, 0.1, cosine(0), cosine(20), cosine(40), cosine(70)], rel=1e-5)


@pytest.mark.parametrize("lr, steps, expected", [
    ({"type": "constant", "value": 0.2, "warmup_steps": 4}, [0, 3, 4, 100], [0.05, 0.2, 0.2, 0.2]),
    ({"type": "piecewise", "boundaries": [1, 2], "values": [1.0, 0.5, 0.1], "unit": "epoch"},
     [0, 10, 11, 20, 21], [1.0, 1.0, 0.5, 0.5, 0.1]),
    ({"type": "exponential", "initial": 1.0, "decay_steps": 10, "decay_rate": 0.5}, [0, 10, 20], [1.0, 0.5, 0.25]),
    ({"type": "exponential", "initial": 1.0, "decay_steps": 10, "decay_rate": 0.5, "staircase": True},
     [9, 10], [1.0, 0.5]),
    ({"type": "polynomial", "initial": 1.0, "decay_steps": 10, "end": 0.0, "power": 1.0}, [0, 5, 10, 20],
     [1.0, 0.5, 0.0, 0.0]),
    ({"type": "inverse_time", "initial": 1.0, "decay_steps": 10, "decay_rate": 1.0}, [0, 10, 30], [1.0, 0.5, 0.25]),
    ({"type": "cosine_restarts", "initial": 1.0, "decay_steps": 10, "t_mul": 1.0}, [0, 5, 10], [1.0, 0.5, 1.0]),
])
def test_schedules(lr, steps, expected):
    assert _rates(lr, steps) == pytest.approx(expected, abs=1e-6)


def test_warmup_schedule_survives_model_save_and_load(tmp_path):
    import keras

    from kerasflow.train.compile import LinearWarmup, make_optimizer

    opt = make_optimizer(Optimizer(type="adamw", learning_rate={"type": "cosine", "initial": 0.01, "decay_steps": 100,
                                                                  "warmup_steps": 10}), steps_per_epoch=5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(opt, "mse")
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, LinearWarmup) and schedule.warmup_steps == 10
    for step in (0, 5, 10, 60):
        assert float(schedule(step)) == pytest.approx(float(opt._learning_rate(step)))


@pytest.mark.parametrize("stage, path, message", [
    ({"optimizer": {"type": "adam", "momentum": 0.9}}, "training.stages[0].optimizer",
     "`momentum` is not an option of adam"),
    ({"optimizer": {"clipnorm": 1.0, "clipvalue": 0.5}}, "training.stages[0].optimizer",
     "at most one of clipnorm, clipvalue and global_clipnorm"),
    ({"optimizer": {"learning_rate": {"type": "cosine", "initial": 0.1, "decay_steps": 10}},
      "callbacks": {"reduce_lr_on_plateau": {}}}, "training.stages[0]", "reduce_lr_on_plateau sets the learning rate"),
])
def test_contradictory_training_settings_are_spec_errors(stage, path, message):
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        _spec(**stage)
    assert err.value.problems[0].path == path


def test_balanced_class_weights_match_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    from kerasflow.train.compile import class_weights

    raw = {**BASE, "training": {**BASE["training"], "class_weight": "balanced"}}
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    targets = {"label": {"type": "category", "num_classes": 3, "class_names": ["a", "b", "c"]}}
    got = class_weights(load_spec_dict(raw).spec, targets, {"label": labels})
    assert got["label"] == pytest.approx(list(compute_class_weight("balanced", classes=np.arange(3), y=labels)))

    raw["training"]["class_weight"] = {"c": 4.0, "1": 2.0}
    assert class_weights(load_spec_dict(raw).spec, targets, {"label": labels}) == {"label": [1.0, 2.0, 4.0]}
    raw["training"]["class_weight"] = {"d": 4.0}
    with pytest.raises(SpecError, match="`d` is not a class of `label`"):
        class_weights(load_spec_dict(raw).spec, targets, {"label": labels})


def test_multi_worker_is_refused_clearly():
    from kerasflow.train.strategy import make_strategy

    raw = {**BASE, "training": {**BASE["training"], "distribution": "multi_worker"}}
    with pytest.raises(SpecError, match="not supported yet, see issue 10") as err:
        make_strategy(load_spec_dict(raw).spec.training)
    assert err.value.problems[0].path == "training.distribution"


def test_one_device_and_mirrored_strategies_build():
    import tensorflow as tf

    from kerasflow.train.strategy import make_strategy

    devices = len(tf.config.list_logical_devices("GPU")) or 1  # CPU only: one replica on the CPU
    for kind, cls, replicas in (("one_device", tf.distribute.OneDeviceStrategy, 1),
                                ("mirrored", tf.distribute.MirroredStrategy, devices)):
        raw = {**BASE, "training": {**BASE["training"], "distribution": kind}}
        strategy = make_strategy(load_spec_dict(raw).spec.training)
        assert isinstance(strategy, cls) and strategy.num_replicas_in_sync == replicas


def test_training_markers_must_be_resolved_before_training(tmp_path):
    from kerasflow.train.stages import train

    raw = {**BASE, "training": {**BASE["training"], "stages": [
        {"name": "main", "epochs": 1, "optimizer": {"learning_rate": {"tune": "float", "min": 1e-4, "max": 1e-2}}}]}}
    with pytest.raises(SpecError, match="unresolved `tune:` marker") as err:
        train(load_spec_dict(raw), run_dir=tmp_path / "run")
    assert err.value.problems[0].path == "training.stages[0].optimizer.learning_rate"


def test_new_run_dirs_are_unique_and_sortable(tmp_path, monkeypatch):
    from kerasflow.runs import RunDir

    monkeypatch.chdir(tmp_path)
    a, b = RunDir.new("digits").path, RunDir.new("digits").path
    assert a != b and a.parent == b.parent == Path("runs") / "digits" and a.is_dir()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", a.name)


def test_reading_a_directory_that_is_no_run_names_what_is_missing(tmp_path):
    from kerasflow.train.evaluate import evaluate_run

    with pytest.raises(SpecError, match="not a kerasflow run directory: missing spec.resolved.yaml"):
        evaluate_run(tmp_path)


def test_history_keeps_one_row_per_epoch_when_a_resume_repeats_epochs(tmp_path):
    from kerasflow.train.callbacks import HistoryWriter, read_history

    path = tmp_path / "history.csv"
    first = HistoryWriter(path, "main")
    first.on_train_begin()
    for epoch in range(3):
        first.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "learning_rate": 0.1})
    # Killed after the row of epoch 2 but before its backup: the resumed fit repeats epoch 2.
    again = HistoryWriter(path, "main")
    again.on_train_begin()
    again.on_epoch_end(2, {"loss": 0.3, "learning_rate": 0.1, "val_loss": 0.4})
    rows = read_history(path)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[1]["loss"] == 0.5 and rows[2]["loss"] == 0.3 and rows[2]["val_loss"] == 0.4
    assert math.isnan(rows[0].get("val_loss", math.nan))


def test_epoch_backup_restores_weights_optimizer_and_epoch(tmp_path):
    import keras

    from kerasflow.train.callbacks import EpochBackup

    def model():
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        m.compile(keras.optimizers.Adam(0.01), "mse")
        return m

    x, y = np.random.default_rng(0).random((32, 4)), np.zeros((32, 3))
    trained = model()
    trained.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[EpochBackup(tmp_path)])
    fresh = model()
    assert EpochBackup.saved_epoch(tmp_path) == 3
    assert EpochBackup(tmp_path).restore(fresh) == 3  # the epoch the next fit starts at
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations) == 12
    for a, b in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)

    backup = EpochBackup(tmp_path / "nan")
    backup.set_model(trained)
    backup.on_epoch_end(0, {"loss": float("nan")})
    assert not backup.file.exists()  # a diverged epoch is never what a resume restores
