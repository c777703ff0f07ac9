"""Losses and metrics with constructor arguments: the TF-free tables match
the installed Keras, `validate` names each bad argument, and `compile` builds
the Keras class with exactly the arguments written."""

import inspect

import numpy as np
import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.keras_arguments import (
    LOSS_ARGUMENTS, LOSS_CLASSES, METRIC_ARGUMENTS, METRIC_CLASSES, METRIC_REQUIRED,
)
from kerasflow.spec.keras_names import LOSSES, METRICS
from kerasflow.spec.loader import load_spec
from strict_cases import apply_case


def _arguments(cls) -> tuple:
    skip = ("self", "args", "kwargs", "dtype")
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p not in skip)


def test_tables_match_installed_keras():
    import keras

    assert set(LOSS_CLASSES) == set(LOSSES)
    # keras_names.METRICS lists what a bare name can build; the rest need arguments.
    needs_arguments = {alias for alias, cls in METRIC_CLASSES.items() if cls in METRIC_REQUIRED}
    assert set(METRIC_CLASSES) - needs_arguments == set(METRICS)
    for cls, args in LOSS_ARGUMENTS.items():
        assert _arguments(getattr(keras.losses, cls)) == args, cls
    for cls, args in METRIC_ARGUMENTS.items():
        assert _arguments(getattr(keras.metrics, cls)) == args, cls
    for alias, cls in LOSS_CLASSES.items():  # the alias stands for that class's function
        resolved = keras.losses.get(alias)  # a function, or an instance of the class
        assert getattr(keras.losses, cls)().fn is getattr(resolved, "fn", resolved), alias
    for alias, cls in METRIC_CLASSES.items():
        if cls in ("IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "PrecisionAtRecall", "RecallAtPrecision",
                   "SensitivityAtSpecificity", "SpecificityAtSensitivity"):
            continue  # need arguments to exist at all
        assert type(keras.metrics.get(alias)).__name__ == cls, alias


def _load(tmp_path, changes):
    path = tmp_path / "spec.yaml"
    path.write_text(apply_case(changes))
    return load_spec(path).spec


BINARY = {"data.source": {"type": "sklearn", "name": "breast_cancer"},
          "data.features": {"x": {"type": "numeric", "shape": [30], "normalize": True}},
          "data.target": {"name": "label", "type": "binary"},
          "model.nodes.h1.input": "x", "model.nodes.out.units": 1, "model.nodes.out.activation": None,
          "tuning.objective": "val_auc"}


def test_loss_and_metric_arguments_validate(tmp_path):
    spec = _load(tmp_path, {**BINARY, "training.loss": {"type": "binary_crossentropy", "from_logits": True,
                                                        "label_smoothing": 0.1},
                            "training.metrics": [{"type": "auc", "from_logits": True, "num_thresholds": 500},
                                                 {"type": "precision_at_recall", "recall": 0.9},
                                                 {"type": "binary_accuracy", "threshold": 0.0, "name": "acc0"}]})
    assert spec.training.loss.arguments() == {"from_logits": True, "label_smoothing": 0.1}
    assert {"val_auc", "acc0", "val_acc0", "loss"} <= spec.training.metric_names()


@pytest.mark.parametrize("changes,path,fragment", [
    ({"training.loss": {"type": "binary_crossentropy", "from_logit": True}}, "training.loss.from_logit",
     "did you mean `from_logits`"),
    ({"training.loss": {"type": "binary_crossentropy", "label_smoothing": 2}}, "training.loss.label_smoothing",
     "a number in [0, 1]"),
    ({"training.loss": {"type": "binary_focal_crossentropy", "gamma": -1}}, "training.loss.gamma", ">= 0"),
    ({"training.loss": {"type": "binary_crossentropy", "reduction": "avg"}}, "training.loss.reduction",
     "sum_over_batch_size"),
    ({"training.loss": {"type": "binary_crosentropy"}}, "training.loss.type", "did you mean `binary_crossentropy`"),
    ({"training.metrics": [{"type": "auc", "num_thresholds": 1}]}, "training.metrics[0].num_thresholds", "> 1"),
    ({"training.metrics": [{"type": "accuracy", "threshold": 0.3}]}, "training.metrics[0].type", "binary_accuracy"),
    ({"training.metrics": [{"type": "precision_at_recall"}]}, "training.metrics[0]", "needs `recall`"),
    ({"training.metrics": ["precision_at_recall"]}, "training.metrics[0]", "{type: precision_at_recall, recall: ...}"),
    ({"training.loss": {"type": "binary_crossentropy", "from_logits": True}, "model.nodes.out.activation": "sigmoid"},
     "model.nodes.out.activation", "reads logits"),
])
def test_bad_arguments_are_named(tmp_path, changes, path, fragment):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, {**BINARY, "training.metrics": ["auc"], **changes})
    matching = [p for p in info.value.problems if p.path == path]
    assert matching and any(fragment in p.format() for p in matching), str(info.value)


def test_categorical_crossentropy_on_class_indices_fails_validate(tmp_path):
    with pytest.raises(SpecError, match="sparse_categorical_crossentropy"):
        _load(tmp_path, {"training.loss": {"type": "categorical_crossentropy", "label_smoothing": 0.1}})


def test_compile_builds_the_keras_classes(tmp_path):
    import keras

    from kerasflow.train.compile import compile_model, make_metric

    spec = _load(tmp_path, {**BINARY, "training.loss": {"type": "binary_focal_crossentropy", "gamma": 3.0,
                                                        "from_logits": True, "reduction": "sum"},
                            "training.metrics": [{"type": "auc", "from_logits": True, "num_thresholds": 50}, "accuracy",
                                                 {"type": "binary_accuracy", "threshold": 0.0, "name": "acc0"}]})
    inputs = keras.Input((30,), name="x")
    model = keras.Model(inputs, {"label": keras.layers.Dense(1, name="out")(inputs)})
    compile_model(model, spec, stage=0, steps_per_epoch=1, targets={"label": {"type": "binary"}})
    loss = model.loss["label"]
    assert isinstance(loss, keras.losses.BinaryFocalCrossentropy)
    assert (loss.gamma, loss.from_logits, loss.reduction) == (3.0, True, "sum")
    x = np.random.default_rng(0).normal(size=(16, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    history = model.fit(x, {"label": y}, epochs=1, verbose=0, validation_data=(x, {"label": y}))
    assert {"auc", "accuracy", "acc0", "val_auc", "val_acc0"} <= set(history.history)
    auc = make_metric(spec.training.metrics[0])
    assert isinstance(auc, keras.metrics.AUC) and (auc.num_thresholds, auc.name) == (50, "auc")
