"""kerasflow: declarative Keras 3 pipelines.

Importing the package is cheap: TensorFlow, Keras and MLflow are imported only
inside the modules that need them. kerasflow's own Keras objects (custom
layers, learning-rate schedules) are registered with Keras as soon as Keras
is imported, by anyone, so `keras.saving.load_model("model.keras")` works
after `import kerasflow` without importing Keras here.
"""

import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"


def _register_custom_objects() -> None:
    try:
        from kerasflow.model.custom_objects import register

        register()
    except Exception as exc:  # never break the user's `import keras`
        warnings.warn(f"kerasflow could not register its Keras objects: {exc}", RuntimeWarning, stacklevel=2)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when `keras` is about to be imported, it lets the
    real finder locate it and runs the registration right after the module
    has executed."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once, and so find_spec below does not come back here
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_custom_objects()

        loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_custom_objects()
elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterKerasImport())
