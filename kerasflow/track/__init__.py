"""MLflow tracking and model registry for kerasflow runs.

Importing this package is cheap: mlflow and keras are imported only when a run
starts or a callback is built.
"""

from kerasflow.track.mlflow import RunTracker, TrackingWarning, default_tags, launch_ui, resolve_uri
from kerasflow.track.params import flatten_params

__all__ = ["RunTracker", "TrackingWarning", "default_tags", "flatten_params", "launch_ui", "resolve_uri"]
