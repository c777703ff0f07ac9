"""File adapters: csv, parquet, npz/npy, tfrecord."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from kerasflow.data.sources.table import Loaded, Table, require_file, resolve_path, wanted_columns
from kerasflow.spec.errors import Problem, SpecError


def _split_files(source, base_dir) -> dict[str, Path]:
    files = {"train": require_file(source.path, "path", base_dir)}
    for part, key in (("validation", "validation_path"), ("test", "test_path")):
        value = getattr(source, key, None)
        if value:
            files[part] = require_file(value, key, base_dir)
    return files


def _frame_parts(files: dict[str, Path], read, header, data_spec, first_line: int | None) -> Loaded:
    """Read each split file, keeping only wanted columns (all names are kept for suggestions)."""
    available = header(files["train"])
    wanted = wanted_columns(data_spec, list(available))
    usecols = [c for c in available if c in wanted]
    tables = {}
    keys = {"train": "path", "validation": "validation_path", "test": "test_path"}
    for part, path in files.items():
        frame = read(path, usecols, keys[part])
        if len(frame) == 0:
            raise SpecError(Problem(path=f"data.source.{keys[part]}", message=f"{path.name} has no data rows",
                                    expected="a header line and at least one row", received="a header only",
                                    hint=str(path)))
        tables[part] = Table({c: frame[c].to_numpy() for c in usecols}, origin=str(path), first_line=first_line)
    parts = tables if len(files) > 1 else {"all": tables["train"]}
    return Loaded(parts=parts, available=list(available))


def load_csv(data_spec, base_dir, seed) -> Loaded:
    import pandas as pd

    source = data_spec.source
    files = _split_files(source, base_dir)

    names = None  # text sources always have a header; without `names`, fields are named by position "0", "1", ...
    if not getattr(source, "header", True):
        names = list(source.names or [str(i) for i in range(_field_count(files["train"], source.delimiter))])
    named = {} if names is None else {"header": None, "names": names}
    keys = {"train": "path", "validation": "validation_path", "test": "test_path"}
    for part, path in files.items():
        if names is not None:  # every line is data; `names` names the fields
            _check_names(path, source.delimiter, names, keys[part])

    def header(path):
        if names is not None:
            return names
        return list(_read_csv(pd, path, source.delimiter, nrows=0, key="path").columns)

    def read(path, usecols, key):
        return _read_csv(pd, path, source.delimiter, usecols=usecols, key=key, **named)

    return _frame_parts(files, read, header, data_spec, first_line=2 if names is None else 1)


def _field_count(path: Path, delimiter: str) -> int:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return len(next(csv.reader(fh, delimiter=delimiter), []))


def _check_names(path: Path, delimiter: str, names: list[str], key: str) -> None:
    """The first line has one field per name (pandas would shift or drop fields silently)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        first = next(csv.reader(fh, delimiter=delimiter), None)
    if first is not None and len(first) != len(names):
        raise SpecError(Problem(path="data.source.names", message=f"{path.name} line 1 has {len(first)} fields, "
                                f"`names` lists {len(names)}", expected=f"{len(first)} names, one per field",
                                received=f"{len(names)} names", hint=f"data.source.{key}: {path}"))


def _read_csv(pd, path, delimiter, *, key, **kwargs):
    try:
        if "nrows" in kwargs:
            return pd.read_csv(path, sep=delimiter, **kwargs)
        try:  # pyarrow parses several times faster than the C engine
            return pd.read_csv(path, sep=delimiter, engine="pyarrow", **kwargs)
        except Exception:  # it is stricter (e.g. ragged rows); the C engine gives the better message
            check_field_counts(path, delimiter, key)  # the C engine would drop extra fields silently
            return pd.read_csv(path, sep=delimiter, **kwargs)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise SpecError(Problem(path=f"data.source.{key}", message=f"cannot parse {path.name} as CSV: {message}",
                                hint=str(path))) from None


def check_field_counts(path: Path, delimiter: str, key: str) -> None:
    """Every row has as many fields as the header, or a SpecError naming the line."""
    import csv

    if len(delimiter) != 1:  # a regex separator: only pandas can split it
        return
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if row and len(row) != len(header):
                what = "more" if len(row) > len(header) else "fewer"
                raise SpecError(Problem(
                    path=f"data.source.{key}", message=f"{path.name} line {reader.line_num} has {what} fields "
                    f"than the header", expected=f"{len(header)} fields ({', '.join(header[:8])}"
                    f"{', ...' if len(header) > 8 else ''})", received=f"{len(row)} fields",
                    hint="quote fields that contain the delimiter, or fix the row"))


def load_parquet(data_spec, base_dir, seed) -> Loaded:
    import pandas as pd
    import pyarrow.parquet as pq

    files = _split_files(data_spec.source, base_dir)

    def header(path):
        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for non-parquet bytes
            raise SpecError(Problem(path="data.source.path",
                                    message=f"cannot read {path.name} as Parquet: {exc}")) from None

    def read(path, usecols, key):
        try:
            return pd.read_parquet(path, columns=usecols)
        except Exception as exc:  # pyarrow raises several types for bad files
            raise SpecError(Problem(path=f"data.source.{key}",
                                    message=f"cannot read {path.name} as Parquet: {exc}")) from None

    return _frame_parts(files, read, header, data_spec, first_line=None)


def load_npz(data_spec, base_dir, seed) -> Loaded:
    source = data_spec.source
    if isinstance(source.path, list):
        paths = [require_file(p, f"path[{i}]", base_dir) for i, p in enumerate(source.path)]
        table = Table({p.stem: _load_array(p, f"path[{i}]") for i, p in enumerate(paths)}, origin=str(paths[0]))
        return Loaded(parts={"all": table})
    files = _split_files(source, base_dir)
    tables = {part: _load_npz(path, key) for (part, path), key in
              zip(files.items(), ("path", "validation_path", "test_path"))}
    parts = tables if len(tables) > 1 else {"all": tables["train"]}
    return Loaded(parts=parts)


def _load_array(path: Path, key: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise SpecError(Problem(
            path=f"data.source.{key}", message=f"cannot load {path.name}: {exc}",
            hint="object arrays are refused (no pickle); save numeric or fixed-width string arrays",
        )) from None


def _load_npz(path: Path, key: str) -> Table:
    if path.suffix == ".npy":
        return Table({path.stem: _load_array(path, key)}, origin=str(path))
    try:
        with np.load(path, allow_pickle=False) as archive:
            columns = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise SpecError(Problem(path=f"data.source.{key}", message=f"cannot load {path.name}: {exc}")) from None
    lengths = {name: len(a) for name, a in columns.items() if a.ndim > 0}
    if len(set(lengths.values())) > 1:
        raise SpecError(Problem(path=f"data.source.{key}", message=f"arrays in {path.name} have different lengths",
                                received=", ".join(f"{k}: {v}" for k, v in lengths.items())))
    return Table({k: v for k, v in columns.items() if v.ndim > 0}, origin=str(path))


# ---------------------------------------------------------------- tfrecord


def _tfrecord_files(value, key: str, base_dir) -> list[str]:
    patterns = value if isinstance(value, list) else [value]
    found: list[str] = []
    for pattern in patterns:
        path = resolve_path(pattern, base_dir)
        matches = sorted(glob.glob(str(path))) if any(ch in pattern for ch in "*?[") else [str(path)]
        found.extend(m for m in matches if Path(m).is_file())
        if not matches or not all(Path(m).is_file() for m in matches):
            require_file(str(path), key, base_dir)  # raises with a listing of the directory
    return found


def load_tfrecord(data_spec, base_dir, seed) -> Loaded:
    """Parse tf.train.Example records: keys are the declared feature/target columns;
    their kind (bytes/int64/float) and length come from the first record."""
    source = data_spec.source
    files = {"train": _tfrecord_files(source.path, "path", base_dir)}
    for part, key in (("validation", "validation_path"), ("test", "test_path")):
        if getattr(source, key):
            files[part] = _tfrecord_files(getattr(source, key), key, base_dir)
    keys, available = _record_keys(files["train"], source.compression, data_spec)
    tables = {part: Table(_parse_records(paths, source.compression, keys), origin=paths[0])
              for part, paths in files.items()}
    parts = tables if len(tables) > 1 else {"all": tables["train"]}
    return Loaded(parts=parts, available=available)


def _record_keys(paths: list[str], compression: str, data_spec) -> tuple[dict, list[str]]:
    import tensorflow as tf

    try:
        first = next(iter(tf.data.TFRecordDataset(paths[:1], compression_type=compression or None).take(1)), None)
    except tf.errors.OpError as exc:
        raise SpecError(Problem(path="data.source.path", message=f"cannot read {paths[0]} as TFRecord: {exc.message}",
                                hint="check `compression`")) from None
    if first is None:
        raise SpecError(Problem(path="data.source.path", message=f"{paths[0]} holds no records"))
    try:
        example = tf.train.Example.FromString(first.numpy())
    except Exception as exc:  # protobuf DecodeError
        raise SpecError(Problem(path="data.source.path", message=f"records are not tf.train.Example: {exc}")) from None
    available = sorted(example.features.feature)
    keys = {}
    for name in wanted_columns(data_spec, list(available)) & set(available):
        feature = example.features.feature[name]
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        dtype = {"bytes_list": tf.string, "int64_list": tf.int64, "float_list": tf.float32}[kind]
        keys[name] = tf.io.FixedLenFeature([len(values)], dtype)
    return keys, available


def _parse_records(paths: list[str], compression: str, keys: dict) -> dict[str, np.ndarray]:
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(paths, compression_type=compression or None, num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.batch(4096).map(lambda rec: tf.io.parse_example(rec, keys), num_parallel_calls=tf.data.AUTOTUNE)
    chunks: dict[str, list] = {k: [] for k in keys}
    try:
        for batch in ds:
            for k, v in batch.items():
                chunks[k].append(v.numpy())
    except tf.errors.InvalidArgumentError as exc:
        raise SpecError(Problem(path="data.source.path", message=f"records do not match the first one: {exc.message}",
                                hint="every record needs the same keys with the same lengths")) from None
    out = {}
    for k, parts in chunks.items():
        arr = np.concatenate(parts) if parts else np.zeros((0, keys[k].shape[0]))
        if arr.dtype == object:  # bytes: decode text, keep encoded images as bytes
            arr = np.array([[_text_or_bytes(b) for b in row] for row in arr], dtype=object)
        out[k] = arr[:, 0] if arr.shape[1] == 1 else arr
    return out


def _text_or_bytes(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value
