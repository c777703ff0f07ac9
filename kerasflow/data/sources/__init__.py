"""Sources: one small adapter per `data.source.type`, all behind `load_source`.

An adapter turns its source spec into a `Loaded`: named columns (numpy arrays
with one row per example, or one row per time step for a series) for all rows,
or for predefined train/validation/test parts (separate files, keras splits).
Typing the columns into features and targets happens in `kerasflow.data.columns`.
"""

from __future__ import annotations

from typing import Callable

from kerasflow.data.sources.table import PARTS, Loaded, Table, require_file, resolve_path, wanted_columns

__all__ = ["PARTS", "Loaded", "Table", "load_source", "require_file", "resolve_path", "wanted_columns"]


def load_source(data_spec, *, base_dir=None, seed: int = 42) -> Loaded:
    """Read `data_spec.source` with its adapter."""
    return _adapters()[data_spec.source.type](data_spec, base_dir, seed)


def _adapters() -> dict[str, Callable]:
    from kerasflow.data.sources import bundled, files, folders, remote

    return {
        "csv": files.load_csv, "parquet": files.load_parquet, "npz": files.load_npz, "tfrecord": files.load_tfrecord,
        "image_dir": folders.load_image_dir, "text": folders.load_text,
        "sklearn": bundled.load_sklearn, "statsmodels": bundled.load_statsmodels, "generated": bundled.load_generated,
        "keras": remote.load_keras, "tfds": remote.load_tfds,
    }
