"""`normalize: true` on a numeric target: learned in standardized units, served in raw ones."""

from __future__ import annotations

import numpy as np
import pytest

from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec_dict

SPEC = {
    "kerasflow": 1, "name": "diabetes", "seed": 3,
    "data": {
        "source": {"type": "sklearn", "name": "diabetes"},
        "features": {"x": {"type": "numeric", "shape": [10], "normalize": True, "column": "data"}},
        "target": {"name": "progression", "type": "numeric", "column": "target", "normalize": True},
        "split": {"validation": 0.15, "test": 0.15},
        "batch_size": 32,
    },
    "model": {"sequential": [{"layer": "dense", "units": 16, "activation": "relu"}, {"layer": "dense", "units": 1}]},
    "training": {"loss": "mae", "metrics": ["mae"], "stages": [{"name": "main", "epochs": 1}]},
    "tracking": {"enabled": False},
}


def test_normalized_target_trains_in_raw_units():
    import keras

    from kerasflow.data.pipeline import prepare_data
    from kerasflow.model.builder import build_model

    loaded = load_spec_dict(SPEC)
    data = prepare_data(loaded.spec)
    moments = data.stats["__targets__"]["progression"]
    _, y = data.arrays("train")
    assert moments["mean"][0] == pytest.approx(float(np.mean(y["progression"])))
    model = build_model(loaded, data.stats)
    denormalize = model.get_layer("progression.denormalize")  # standardized units -> raw units
    np.testing.assert_allclose(np.asarray(denormalize(np.array([[0.0], [1.0]], "float32"))).reshape(-1),
                               [moments["mean"][0], moments["mean"][0] + moments["std"][0]], rtol=1e-5)
    model.compile(keras.optimizers.Adam(0.01), loss={"progression": "mae"})
    model.fit(data.train, epochs=30, verbose=0)
    x_test, y_test = data.arrays("test")
    pred = model.predict(x_test, verbose=0)["progression"].reshape(-1)
    truth = y_test["progression"].reshape(-1)
    mean_baseline = float(np.mean(np.abs(truth - moments["mean"][0])))
    assert float(np.mean(np.abs(pred - truth))) < 0.85 * mean_baseline  # raw units, better than the mean


def test_normalize_is_only_for_numeric_targets():
    bad = {**SPEC, "data": {**SPEC["data"], "target": {"name": "y", "type": "category", "normalize": True}}}
    with pytest.raises(SpecError, match="normalize applies to numeric targets"):
        load_spec_dict(bad)
