"""Hyperparameter search over a spec's `tune:` markers with KerasTuner.

`from kerasflow.tune import tune` imports KerasTuner (and so TensorFlow) only
when `tune` is first looked up, keeping `import kerasflow.tune` cheap.
"""

from __future__ import annotations

__all__ = ["tune", "TuneResult", "SpecHyperModel"]


def __getattr__(name: str):
    if name in ("tune", "TuneResult"):
        from kerasflow.tune import tuners

        return getattr(tuners, name)
    if name == "SpecHyperModel":
        from kerasflow.tune.hypermodel import SpecHyperModel

        return SpecHyperModel
    raise AttributeError(f"module 'kerasflow.tune' has no attribute {name!r}")
