"""Spec loading and validation. Imports neither TensorFlow, Keras nor MLflow."""

from kerasflow.spec.errors import Problem, SpecError

__all__ = ["Problem", "SpecError"]
