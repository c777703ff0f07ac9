"""Content hash of the data stage's inputs: the resolved data section, the seed
and the source bytes (size + mtime for files too large to read cheaply).

TensorFlow-free and cheap, so stage caching can ask "did the data change?"
without loading anything.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path

from kerasflow.data.sources import resolve_path

HASH_LIMIT = 64 * 1024 * 1024  # bytes of content hashed per file; larger files count by size + mtime
_CHUNK = 1024 * 1024


def data_fingerprint(data_spec, *, seed: int, base_dir=None) -> str:
    """sha256 (first 16 hex digits) of the data section, seed and source content."""
    digest = hashlib.sha256()
    section = data_spec.model_dump(mode="json")
    digest.update(json.dumps({"data": section, "seed": seed}, sort_keys=True, default=str).encode())
    digest.update(_library_version(data_spec.source.type).encode())
    for path in source_files(data_spec.source, base_dir):
        digest.update(str(path).encode())
        _file_digest(path, digest)
    return digest.hexdigest()[:16]


def source_files(source, base_dir=None) -> list[Path]:
    """Every file a source reads (directories walked, globs expanded), sorted."""
    values = []
    for key in ("path", "validation_path", "test_path"):
        value = getattr(source, key, None)
        if value:
            values += value if isinstance(value, list) else [value]
    files: set[Path] = set()
    for value in values:
        path = resolve_path(value, base_dir)
        matches = [Path(m) for m in glob.glob(str(path))] if any(c in value for c in "*?[") else [path]
        for match in matches:
            if match.is_dir():
                files.update(p for p in match.rglob("*") if p.is_file())
            elif match.is_file():
                files.add(match)
    return sorted(files)


def _file_digest(path: Path, digest) -> None:
    stat = os.stat(path)
    if stat.st_size > HASH_LIMIT:
        digest.update(f"size={stat.st_size} mtime={stat.st_mtime_ns}".encode())
        return
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def _library_version(kind: str) -> str:
    # Bundled data changes only with the library that ships it.
    from importlib import metadata

    package = {"sklearn": "scikit-learn", "statsmodels": "statsmodels", "keras": "keras",
               "tfds": "tensorflow-datasets"}.get(kind)
    if package is None:
        return ""
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package} missing"
