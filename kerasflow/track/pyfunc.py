"""MLflow's `python_function` flavor of the models kerasflow logs.

`mlflow.keras`' own wrapper calls `model.predict(numpy)`, which Keras 3 refuses
for string inputs (category and text features). This loader feeds the model
through `tf.data` instead, so `mlflow.pyfunc.load_model(uri).predict(x)` takes
the same dict of arrays as `keras_model.predict`, strings included, and
returns a dict of arrays for named outputs. `mlflow.keras.load_model` is
unaffected (the `keras` flavor is logged too).
"""

from __future__ import annotations

import os

import numpy as np

_BATCH = 256


def _load_pyfunc(path: str) -> "KerasflowModel":
    """MLflow's entry point: `path` is the model's `data` directory."""
    import keras

    import kerasflow.model  # noqa: F401  (registers kerasflow's layers before loading)

    return KerasflowModel(keras.saving.load_model(os.path.join(path, "model.keras")))


class KerasflowModel:
    """Predicts with a Keras model from numpy (or pandas) inputs, strings included.

    Args:
        model: a `keras.Model`.
    """

    def __init__(self, model):
        self.model = model

    def get_raw_model(self):
        return self.model

    def predict(self, data, params=None):
        import tensorflow as tf

        if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame: one column per input
            data = {c: np.stack(data[c].to_numpy()) for c in data.columns}
        inputs = tf.nest.map_structure(_tensor, data)
        ds = tf.data.Dataset.from_tensor_slices(inputs).batch(_BATCH)
        outputs = self.model.predict(ds, verbose=0)
        return tf.nest.map_structure(np.asarray, outputs)


def _tensor(value):
    import tensorflow as tf

    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        return tf.constant(array.astype(str))
    return tf.constant(array)
