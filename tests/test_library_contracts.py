"""What kerasflow relies on in its libraries beyond their documented API.
Each test fails loudly when an upgrade changes it (setup.cfg pins the upper bound)."""

from __future__ import annotations

import inspect

import numpy as np


def test_keras_tuner_still_declares_the_space_through_populate_initial_space():
    """The tuner overrides KerasTuner's `_populate_initial_space` (no public hook):
    the spec states the whole conditional space, so KerasTuner need not build a
    model per branch. It must still be a method that `__init__` calls when a
    project is new."""
    import keras_tuner as kt

    from kerasflow.tune.tuners import _CLASSES

    source = inspect.getsource(kt.engine.base_tuner.BaseTuner.__init__)
    assert "self._populate_initial_space()" in source
    assert all("_populate_initial_space" in vars(cls.__mro__[1]) for cls in _CLASSES.values())
    assert kt.__version__.startswith("1.4."), "re-check this contract, then raise the bound in setup.cfg"


def test_tf_idf_weights_computed_publicly_are_the_ones_keras_adapts():
    import keras
    import tensorflow as tf

    from kerasflow.data.stats import compute_stats
    from kerasflow.spec.loader import load_spec_dict

    docs = np.array(["the cat sat", "the dog sat down", "a cat and a dog", "the end", "cat cat cat", "down"])
    raw = {"kerasflow": 1, "name": "t", "data": {
        "source": {"type": "sklearn", "name": "digits"},
        "features": {"text": {"type": "text", "output_mode": "tf_idf", "max_tokens": 50}},
        "target": {"name": "label", "type": "category", "num_classes": 10}},
        "model": {"sequential": [{"layer": "dense", "units": 10, "activation": "softmax"}]},
        "training": {"loss": "sparse_categorical_crossentropy", "stages": [{"name": "main", "epochs": 1}]}}
    stats = compute_stats(load_spec_dict(raw).spec.data, {"text": docs})["text"]

    adapted = keras.layers.TextVectorization(max_tokens=50, output_mode="tf_idf")
    adapted.adapt(tf.data.Dataset.from_tensor_slices(docs).batch(2))
    rebuilt = keras.layers.TextVectorization(output_mode="tf_idf", vocabulary=stats["vocabulary"],
                                             idf_weights=stats["idf_weights"])
    assert stats["vocabulary"] == adapted.get_vocabulary(include_special_tokens=False)
    # Same TF-IDF vectors from the public rebuild as from Keras' own adapted layer (OOV column aside).
    np.testing.assert_allclose(np.asarray(rebuilt(docs))[:, 1:], np.asarray(adapted(docs))[:, 1:], rtol=1e-5)
