"""What every source adapter returns: named columns (`Table`) of a source
(`Loaded`), and the path rules the adapters share."""


from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from kerasflow.spec.errors import Problem, SpecError

PARTS = ("train", "validation", "test")


@dataclass
class Table:
    """Columns of equal length; `origin`/`first_line` turn a row index into a file line."""

    columns: dict[str, np.ndarray]
    origin: str | None = None
    first_line: int | None = None  # file line of row 0 (CSV: 2, after the header)
    row_offset: int = 0  # rows before this one in the file (a chunk of a streamed file)

    def where(self, row: int) -> str:
        row += self.row_offset
        if self.origin and self.first_line is not None:
            return f"row {row} ({Path(self.origin).name} line {row + self.first_line})"
        return f"row {row}" + (f" of {Path(self.origin).name}" if self.origin else "")


@dataclass
class Loaded:
    """What an adapter returns.

    Attributes:
        parts: {"all": Table} to split by fractions/column, or predefined
            {"train": ..., "validation": ..., "test": ...} (missing parts are
            carved out of train by the split fractions).
        class_names: known class names of integer-coded label columns.
        default_feature / default_target: column used by a lone feature/target
            whose name is not a column (e.g. sklearn `data` / `target`).
        ordered: rows are time steps: splits are chronological, never shuffled.
        image_files: columns holding image file paths, decoded in the pipeline.
        available: every column of the source, when only the wanted ones were read.
    """

    parts: dict[str, Table]
    class_names: dict[str, list[str]] = field(default_factory=dict)
    default_feature: str | None = None
    default_target: str | None = None
    ordered: bool = False
    image_files: frozenset[str] = frozenset()
    available: list[str] | None = None

    def column_names(self) -> list[str]:
        if self.available is not None:
            return list(self.available)
        return list(next(iter(self.parts.values())).columns)


def resolve_path(value: str, base_dir: str | os.PathLike | None) -> Path:
    """Spec paths are absolute after loading; in-memory specs resolve against base_dir."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or os.getcwd()) / path
    return path


def require_file(value: str, key: str, base_dir, *, directory: bool = False) -> Path:
    """The path named at `data.source.<key>`, or a SpecError saying it is missing."""
    path = resolve_path(value, base_dir)
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        what = "directory" if directory else "file"
        hint = None
        if path.parent.is_dir():
            near = sorted(p.name for p in path.parent.iterdir())[:8]
            hint = f"{path.parent} holds: {', '.join(near) or 'nothing'}"
        raise SpecError(Problem(path=f"data.source.{key}", message=f"{what} not found: {path}", hint=hint))
    return path


def wanted_columns(data_spec, available: list[str] = ()) -> set[str]:
    """Column names the spec reads (features, targets, split column), positional
    `columns` ranges taken from `available` (the source's columns in order)."""
    names: set[str] = set()
    entries = [(n, f.column) for n, f in data_spec.features.items() if getattr(f, "columns", None) is None]
    entries += [(t.name, t.column) for t in data_spec.targets()]
    for name, column in entries:
        names.update(column if isinstance(column, list) else [column or name])
    for feature in data_spec.features.values():
        if getattr(feature, "columns", None) is not None:
            names.update(available[feature.columns.start:feature.columns.stop])
    for extra in (data_spec.split.column, getattr(data_spec.source, "column", None)):
        if extra:
            names.add(extra)
    return names
