"""Logging a saved `.keras` file as an MLflow Keras-flavor model, without Keras.

`mlflow.keras.log_model` takes a model object and saves it again (a second,
slow save of a model already on disk), imports Keras (TensorFlow: seconds)
and cannot describe string inputs. Here the file `train` saved is copied into
the same layout `mlflow.keras.save_model` writes (`MLmodel` with the `keras`
and `python_function` flavors, `data/model.keras`, environment files), so
`mlflow.keras.load_model` reads it as usual; `mlflow.pyfunc.load_model` goes
through `kerasflow.track.pyfunc`, which takes string inputs.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

_REQUIREMENTS = ("kerasflow", "keras", "tensorflow")  # kerasflow: the pyfunc loader and its layers


def example_arrays(values) -> Any:
    """Inputs or outputs of a model as numpy (dicts and lists kept), strings as
    object arrays of `str`: what Keras' `predict` (and so MLflow's pyfunc) takes
    for a string input; it refuses numpy's fixed-width `<U` arrays."""
    if isinstance(values, Mapping):
        return {str(k): example_arrays(v) for k, v in values.items()}
    if isinstance(values, (list, tuple)):
        return [example_arrays(v) for v in values]
    array = np.asarray(values.numpy() if hasattr(values, "numpy") else values)
    if array.dtype.kind in "SU" or (array.dtype == object and array.size and isinstance(array.flat[0], bytes)):
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(array)
    return array


def example_outputs(keras_model, inputs):
    """The model's outputs on a few example rows, as numpy: one eager call (no
    predict function to trace), strings fed as tensors (Keras refuses numpy strings)."""
    import tensorflow as tf

    def tensor(array):
        return tf.constant(array.astype(str)) if array.dtype == object else tf.constant(array)

    return example_arrays(keras_model(tf.nest.map_structure(tensor, inputs), training=False))


def signature(inputs, outputs):
    """The MLflow signature of a model from example inputs and its outputs.

    Dict inputs and outputs become named tensors (multi-input, multi-output
    heads); a list of outputs is named `output_0`, `output_1`, ... as Keras'
    export names them. Strings are `object` tensors (see `example_arrays`).
    """
    from mlflow.models import infer_signature

    if isinstance(outputs, (list, tuple)):
        outputs = {f"output_{i}": v for i, v in enumerate(outputs)}
    return infer_signature(inputs, outputs)


class KerasFile:
    """A flavor for `mlflow.models.Model.log` that copies a saved `.keras` file.

    Args:
        path: the `.keras` file to log.
    """

    __name__ = "mlflow.keras"  # the flavor name MLflow records on the logged model

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def save_model(self, path: str, mlflow_model, signature=None, **_) -> None:
        import yaml
        from mlflow import pyfunc
        from mlflow.models.model import MLMODEL_FILE_NAME
        from mlflow.utils.environment import _mlflow_conda_env

        root = Path(path)
        data = root / "data"
        data.mkdir(parents=True)
        shutil.copyfile(self.path, data / "model.keras")
        (data / "keras_module.txt").write_text("keras")
        if signature is not None:
            mlflow_model.signature = signature
        mlflow_model.add_flavor("keras", data="data", keras_version=_version("keras"), keras_backend="tensorflow",
                                save_exported_model=False)
        # kerasflow's loader: MLflow's Keras wrapper cannot feed string inputs.
        pyfunc.add_to_model(mlflow_model, loader_module="kerasflow.track.pyfunc", data="data", conda_env="conda.yaml",
                            python_env="python_env.yaml")
        mlflow_model.model_size_bytes = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        mlflow_model.save(str(root / MLMODEL_FILE_NAME))
        # Pinned explicitly: MLflow would infer them by loading the model in a
        # subprocess that imports TensorFlow (seconds per logged model).
        requirements = [f"{d}=={_version(d)}" for d in _REQUIREMENTS if _version(d)]
        (root / "requirements.txt").write_text("\n".join([f"mlflow=={_version('mlflow')}", *requirements]))
        with (root / "conda.yaml").open("w") as f:
            yaml.safe_dump(_mlflow_conda_env(additional_pip_deps=requirements), f, default_flow_style=False)
        python = ".".join(map(str, sys.version_info[:3]))
        (root / "python_env.yaml").write_text(
            f"python: {python}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n")


def log_keras_file(client, uri: str, experiment_id: str, run_id: str, model_file: str | Path, *, inputs=None,
                   outputs=None, name: str = "model") -> str:
    """Log `model_file` as a logged model of run `run_id`; returns its `models:/` URI."""
    from mlflow.models import Model

    from kerasflow.track.transport import global_uri

    sig = signature(inputs, outputs) if inputs is not None and outputs is not None else None
    # Created here so it lands in this run's experiment (Model.log would use
    # the default one); Model.log finds the store through the global URI.
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id)
    with global_uri(uri):
        info = Model.log(artifact_path=None, name=name, flavor=KerasFile(model_file), run_id=run_id,
                         model_id=logged.model_id, signature=sig)
    return info.model_uri


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""
