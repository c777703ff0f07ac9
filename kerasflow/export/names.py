"""Where a spec's model is exported and the name it is served under: the one
home of both defaults (TF-free)."""

from __future__ import annotations

from pathlib import Path

MODELS_ROOT = "models"


def served_name(spec, settings=None) -> str:
    """The model name TF Serving serves the export under: `export.model_name`, else the spec's name.

    Args:
        spec: the validated `Spec`.
        settings: an `ExportSpec` replacing `spec.export` (a pipeline's current one).
    """
    cfg = settings or spec.export
    return cfg.model_name or spec.name


def base_path(spec, settings=None) -> Path:
    """The TF Serving base path: `export.base_path`, else `models/<spec name>`."""
    cfg = settings or spec.export
    return Path(cfg.base_path) if cfg.base_path else Path(MODELS_ROOT) / spec.name
