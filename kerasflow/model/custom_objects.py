"""Every Keras object kerasflow puts in a model (layers, learning-rate
schedules), registered with Keras under the `kerasflow>` package so that
`keras.saving.load_model` of any run's model.keras works after `import
kerasflow`. Imports Keras: `kerasflow/__init__.py` calls `register()` only
once Keras is imported anyway."""

import importlib

# The modules whose classes carry `@keras.saving.register_keras_serializable`.
MODULES = ("kerasflow.model.backbones", "kerasflow.model.embeddings", "kerasflow.model.hub", "kerasflow.model.schedules")


def register() -> None:
    """Import (and so register) every module of kerasflow's Keras objects."""
    for module in MODULES:
        importlib.import_module(module)
