"""Folder adapters: class-per-folder images (`image_dir`) and texts (`text`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasflow.data.sources.table import Loaded, Table, require_file, resolve_path
from kerasflow.spec.errors import Problem, SpecError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _class_folders(root: Path, suffixes: tuple[str, ...], what: str) -> tuple[list[Path], list[int], list[str]]:
    """Files under root/<class>/ (sorted, so labels and order are deterministic)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for index, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        files += found
        labels += [index] * len(found)
    if not files:
        raise SpecError(Problem(
            path="data.source.path", message=f"no {what} found in class folders of {root}",
            expected=f"{root}/<class name>/<file>{suffixes[0]} (suffixes: {', '.join(suffixes)})",
            received=f"sub-directories: {', '.join(classes) or 'none'}",
        ))
    return files, labels, classes


# Leading bytes of each format TF's decode_image reads; checked up front so a
# stray file fails here, naming it, rather than from inside a training step.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def check_images(files: list[Path], key: str = "data.source.path") -> None:
    """A SpecError naming the first file that is not a PNG/JPEG/GIF/BMP image."""
    bad = []
    for f in files:
        try:
            with open(f, "rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            raise SpecError(Problem(path=key, message=f"cannot read image {f}: {exc.strerror}")) from None
        if not head.startswith(_IMAGE_MAGIC):
            bad.append(f)
    if bad:
        raise SpecError(Problem(path=key, message=f"{bad[0]} is not an image", expected="PNG, JPEG, GIF or BMP data",
                                received="an empty file" if bad[0].stat().st_size == 0 else "other bytes",
                                hint=f"{len(bad)} file(s) affected; remove them or fix their content"))


def load_image_dir(data_spec, base_dir, seed) -> Loaded:
    root = require_file(data_spec.source.path, "path", base_dir, directory=True)
    files, labels, classes = _class_folders(root, IMAGE_SUFFIXES, "images")
    check_images(files)
    table = Table({"image": np.array([str(f) for f in files], dtype=object), "label": np.array(labels, dtype=np.int64)},
                  origin=str(root))
    return Loaded(parts={"all": table}, class_names={"label": classes}, default_feature="image",
                  default_target="label", image_files=frozenset({"image"}))


def load_text(data_spec, base_dir, seed) -> Loaded:
    source = data_spec.source
    path = resolve_path(source.path, base_dir)
    if path.is_dir():
        files, labels, classes = _class_folders(path, (".txt",), ".txt files")
        texts = np.array([f.read_text(encoding="utf-8", errors="replace") for f in files], dtype=object)
        table = Table({"text": texts, "label": np.array(labels, dtype=np.int64)}, origin=str(path))
        return Loaded(parts={"all": table}, class_names={"label": classes}, default_feature="text",
                      default_target="label")
    require_file(source.path, "path", base_dir)
    from kerasflow.data.sources.files import load_csv

    loaded = load_csv(data_spec, base_dir, seed)
    loaded.default_feature = source.column
    if source.column and source.column not in loaded.column_names():
        from kerasflow.spec.errors import did_you_mean

        names = loaded.column_names()
        raise SpecError(Problem(path="data.source.column", message=f"no column `{source.column}` in {path.name}",
                                expected="one of: " + ", ".join(names), hint=did_you_mean(source.column, names)))
    return loaded
