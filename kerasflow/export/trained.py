"""Export a trained run directory as the next TF Serving version, and attach
the version to the run's MLflow run."""

from __future__ import annotations

import os
from pathlib import Path


def export_run(run_dir: str | os.PathLike, *, base_path: str | os.PathLike | None = None, version: int | None = None,
               keep: int | None = None, tfserving_config: str | os.PathLike | None = None, data=None, settings=None):
    """Export a trained run as the next TF Serving version; returns an `ExportResult`.

    Args:
        run_dir: a finished run directory.
        base_path, version, keep: override the spec's `export:` values.
        tfserving_config: also write a TF Serving model config file there.
        data: a `PreparedData` to take sample rows from (default: prepared from the run's spec).
        settings: an `ExportSpec` replacing the run's own `export:` section, for a
            pipeline whose training was cached but whose export settings changed.
    """
    from kerasflow.data.pipeline import prepare_data
    from kerasflow.export.names import base_path as default_base
    from kerasflow.export.names import served_name
    from kerasflow.export.saved_model import export_version, write_tfserving_config
    from kerasflow.runs import RunDir

    run = RunDir(run_dir)
    files = run.read(need_model=True)
    spec = files.spec
    cfg = settings or spec.export
    model = run.load_model(files)
    data = data or prepare_data(spec)
    base = Path(base_path) if base_path else default_base(spec, cfg)
    name = served_name(spec, cfg)
    state = run.state()
    metadata = {
        "spec": files.loaded.raw,
        "spec_hash": files.loaded.hash,
        "data_fingerprint": data.fingerprint,
        "targets": files.targets,
        "metrics": run.metrics(),
        "mlflow_run_id": state.get("mlflow_run_id"),
        "run_dir": str(run.path.resolve()),
    }
    split = "validation" if data.validation is not None else "test"
    result = export_version(
        model, base, version=version or cfg.version, sample_inputs=data.sample_inputs(max(cfg.warmup_requests, 16), split),
        target_info=files.targets, metadata=metadata, warmup_requests=cfg.warmup_requests,
        keep=keep or cfg.keep, atol=cfg.atol, model_name=name,
        image_features={n: (f.height, f.width, f.channels) for n, f in spec.data.features.items() if f.type == "image"},
    )
    if tfserving_config:
        write_tfserving_config(base, name, tfserving_config)
    _log_export(spec, state.get("mlflow_run_id"), result.path)
    return result


def _log_export(spec, mlflow_run_id: str | None, version_dir: Path) -> None:
    """Attach the exported version to the training run in MLflow, if it was tracked."""
    if not (spec.tracking.enabled and mlflow_run_id):
        return
    from kerasflow.track.mlflow import RunTracker

    tracker = RunTracker({**spec.tracking.model_dump(), "required": False}, spec_dict={}, run_dir=version_dir,
                         kind="export")
    tracker.start(resume_run_id=mlflow_run_id)
    try:
        tracker.log_artifacts(version_dir, f"saved_model/{version_dir.name}")
        tracker.set_tags({"kerasflow.export_path": str(version_dir.resolve())})
    finally:
        tracker.end("FINISHED")
