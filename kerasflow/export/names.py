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


# Each exported version records the name it was exported under (and more) in
# `assets.extra/<METADATA_FILE>`, written by `kerasflow.export.saved_model`.
METADATA_FILE = "kerasflow.yaml"
_METADATA_BYTES = 8 * 1024 * 1024  # a hand-edited or foreign file is not worth reading past this


def exported_name(base_path) -> str:
    """The model name a TF Serving base path is served under.

    The `model_name` the newest version's `assets.extra/kerasflow.yaml` records (so
    `export.model_name: foo` exported to `models/bar/` is served as `foo`); the base
    path's directory name when no version records one (nothing exported yet, or an
    export not made by kerasflow).
    """
    import yaml

    base = Path(base_path).resolve()
    versions = sorted((p for p in base.iterdir() if p.name.isdigit() and p.is_dir()),
                      key=lambda p: int(p.name), reverse=True) if base.is_dir() else []
    for version in versions:
        meta = version / "assets.extra" / METADATA_FILE
        try:
            if not meta.is_file() or meta.stat().st_size > _METADATA_BYTES:
                continue
            doc = yaml.safe_load(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # unreadable metadata: the next version, or the directory name, decides
        export = doc.get("kerasflow_export") if isinstance(doc, dict) else None
        name = export.get("model_name") if isinstance(export, dict) else None
        if isinstance(name, str) and name:
            return name
    return base.name
