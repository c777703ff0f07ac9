"""Typing: source columns -> feature and target arrays of the declared types.

Every problem names the spec path, the column and, for bad values, the row
(and file line for CSV).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kerasflow.data.features import series_channels
from kerasflow.data.sources import Loaded, Table
from kerasflow.spec.errors import Problem, SpecError, did_you_mean

Arrays = dict[str, np.ndarray]


@dataclass
class Typed:
    """Feature and target arrays per part ("all" or train/validation/test)."""

    features: dict[str, Arrays]
    targets: dict[str, Arrays]
    target_info: dict[str, dict]
    split_labels: dict[str, np.ndarray] = field(default_factory=dict)
    image_files: frozenset[str] = frozenset()  # features whose arrays hold file paths


def type_columns(loaded: Loaded, data_spec) -> Typed:
    mapping = resolve_columns(loaded, data_spec)
    features: dict[str, Arrays] = {p: {} for p in loaded.parts}
    targets: dict[str, Arrays] = {p: {} for p in loaded.parts}
    files = set()
    for name, feature in data_spec.features.items():
        cols = mapping[("features", name)]
        if feature.type == "image" and cols[0] in loaded.image_files:
            files.add(name)
        for part, table in loaded.parts.items():
            features[part][name] = _feature(name, feature, table, cols, cols[0] in loaded.image_files)
    info = {}
    for target in data_spec.targets():
        cols = mapping[("target", target.name)]
        raw = {part: _stack(table, cols) for part, table in loaded.parts.items()}
        encoded, info[target.name] = encode_target(target, raw, loaded, cols, target_path(data_spec, target))
        for part in loaded.parts:
            targets[part][target.name] = encoded[part]
    split_labels = {}
    if data_spec.split.column:
        split_labels = {p: t.columns[data_spec.split.column] for p, t in loaded.parts.items()}
    return Typed(features, targets, info, split_labels, frozenset(files))


def target_path(data_spec, target) -> str:
    if isinstance(data_spec.target, list):
        return f"data.target[{data_spec.targets().index(target)}]"
    return "data.target"


# ---------------------------------------------------------------- column names


def resolve_columns(loaded: Loaded, data_spec) -> dict[tuple[str, str], list[str]]:
    """Source column(s) of each feature and target; all missing names reported at once."""
    names = loaded.column_names()
    entries = [("features", n, f.column, f"data.features.{n}") for n, f in data_spec.features.items()]
    entries += [("target", t.name, t.column, target_path(data_spec, t)) for t in data_spec.targets()]
    unresolved = {"features": [e for e in entries if e[0] == "features" and e[2] is None and e[1] not in names
                               and getattr(data_spec.features[e[1]], "columns", None) is None],
                  "target": [e for e in entries if e[0] == "target" and e[2] is None and e[1] not in names]}
    defaults = {"features": loaded.default_feature, "target": loaded.default_target}
    out, problems = {}, []
    ranges = {n: f.columns for n, f in data_spec.features.items() if getattr(f, "columns", None) is not None}
    for kind, name, column, path in entries:
        if kind == "features" and name in ranges:
            span = ranges[name]
            if span.stop > len(names):
                problems.append(Problem(path=f"{path}.columns.stop", message=f"the source has {len(names)} columns "
                                        f"(positions 0..{len(names) - 1})", expected=f"stop <= {len(names)}",
                                        received=str(span.stop)))
            out[(kind, name)] = names[span.start:span.stop]
            continue
        if column is not None:
            cols, where = (column if isinstance(column, list) else [column]), f"{path}.column"
        elif name in names:
            cols, where = [name], path
        elif len(unresolved[kind]) == 1 and defaults[kind] in names:
            cols, where = [defaults[kind]], path
        else:
            cols, where = [name], path
        for col in cols:
            if col not in names:
                problems.append(Problem(
                    path=where, message=f"no column `{col}` in the source", expected="one of: " + _listing(names),
                    hint=did_you_mean(col, names) or (f"set `column:` (the source's default column is "
                                                      f"`{defaults[kind]}`)" if defaults[kind] else None),
                ))
        out[(kind, name)] = cols
    split_col = data_spec.split.column
    if split_col and split_col not in names:
        problems.append(Problem(path="data.split.column", message=f"no column `{split_col}` in the source",
                                expected="one of: " + _listing(names), hint=did_you_mean(split_col, names)))
    if problems:
        raise SpecError(problems)
    return out


def record_range_columns(data_spec, names: list, stats: dict) -> dict:
    """Add the source columns of each `columns: {start, stop}` feature to its stats
    (`columns`), so that `kerasflow predict` reads the same columns by name."""
    for name, feature in data_spec.features.items():
        span = getattr(feature, "columns", None)
        if span is not None:
            stats.setdefault(name, {})["columns"] = [str(c) for c in names[span.start:span.stop]]
    return stats


def _listing(names: list[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} columns)" if len(names) > limit else "")


def _stack(table: Table, cols: list[str]) -> np.ndarray:
    return table.columns[cols[0]] if len(cols) == 1 else np.stack([table.columns[c] for c in cols], axis=1)


# ---------------------------------------------------------------- values


def to_float(values: np.ndarray, path: str, table: Table, col: str) -> np.ndarray:
    """float64 values, or a SpecError naming the first bad row."""
    if len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    if values.dtype.kind in "biuf":
        out = values.astype(np.float64)
    else:
        import pandas as pd

        flat = values.reshape(len(values), -1)
        out = np.empty(flat.shape, dtype=np.float64)
        for j in range(flat.shape[1]):
            column = pd.Series(flat[:, j])
            if column.map(lambda v: isinstance(v, (bytes, str))).any():
                parsed = pd.to_numeric(column.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
                bad = np.flatnonzero(parsed.isna().to_numpy() & column.notna().to_numpy())
                if bad.size:
                    row = int(bad[0])
                    raise SpecError(Problem(
                        path=path, message=f"non-numeric value in column `{col}` at {table.where(row)}",
                        expected="a number", received=repr(flat[row, j]),
                        hint=f"{bad.size} row(s) affected; declare the feature as `type: category` if it is a label",
                    ))
                column = parsed
            out[:, j] = column.astype(np.float64).to_numpy()
        out = out.reshape(values.shape)
    missing = np.flatnonzero(np.isnan(out.reshape(len(out), -1)).any(axis=1))
    if missing.size:
        raise SpecError(Problem(path=path, message=f"missing value in column `{col}` at {table.where(int(missing[0]))}",
                                expected="a number", received="empty / NaN",
                                hint=f"{missing.size} row(s) affected; fill or drop them"))
    infinite = np.flatnonzero(np.isinf(out.reshape(len(out), -1)).any(axis=1))
    if infinite.size:
        raise SpecError(Problem(path=path, message=f"infinite value in column `{col}` at "
                                f"{table.where(int(infinite[0]))}", expected="a finite number", received="inf",
                                hint=f"{infinite.size} row(s) affected; an infinite input makes every loss NaN"))
    return out


def check_present(values: np.ndarray, path: str, table: Table, col: str) -> None:
    """A SpecError naming the first empty cell of a category column."""
    import pandas as pd

    flat = values.reshape(len(values), -1)
    empty = np.flatnonzero(pd.isna(flat).any(axis=1))
    if empty.size:
        raise SpecError(Problem(path=path, message=f"empty value in column `{col}` at {table.where(int(empty[0]))}",
                                expected="a category", received="an empty cell",
                                hint=f"{empty.size} row(s) affected; fill them (e.g. with `unknown`) or drop them"))


def as_strings(values: np.ndarray) -> np.ndarray:
    """Text of each cell as one column of python strings (empty cells as "", 3.0 as "3")."""

    def text(v):
        if isinstance(v, bytes):
            return v.decode("utf-8", errors="replace")
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    return np.array([text(v) for v in values.reshape(-1)], dtype=object).reshape(len(values), 1)


def _feature(name: str, feature, table: Table, cols: list[str], files: bool) -> np.ndarray:
    path = f"data.features.{name}" + (".column" if feature.column is not None else "")
    col = ", ".join(cols)
    kind = feature.type
    raw = _stack(table, cols)
    if kind in ("category", "text"):
        if kind == "category" and feature.dtype == "int64":
            values = to_float(raw, path, table, col)
            if not np.all(values == np.round(values)):
                raise SpecError(Problem(path=path, message=f"column `{col}` holds non-integer values",
                                        expected="integers (dtype: int64)", hint="use `dtype: string`"))
            return values.astype(np.int64).reshape(-1, 1)
        if kind == "category":
            check_present(raw, path, table, col)  # else an empty cell would silently become the class ""
        return as_strings(raw)
    if kind == "image":
        return raw if files else _image(feature, raw, path, table, col)
    if kind == "sequence":
        return token_ids(feature, raw, path, col)
    values = to_float(raw, path, table, col)
    if kind == "timeseries":
        return values.reshape(len(values), series_channels(feature)).astype(np.float32)
    shape = tuple(feature.shape)
    flat = values.reshape(len(values), -1)
    if flat.shape[1] != int(np.prod(shape)):
        raise SpecError(Problem(path=f"data.features.{name}.shape",
                                message=f"column `{col}` has {flat.shape[1]} value(s) per row",
                                expected=f"{int(np.prod(shape))} values for shape {list(shape)}",
                                received=f"shape {list(values.shape[1:]) or [1]}"))
    return flat.reshape((len(values),) + shape).astype(feature.dtype)


def _image(feature, raw: np.ndarray, path: str, table: Table, col: str) -> np.ndarray:
    import tensorflow as tf

    h, w, c = feature.height, feature.width, feature.channels
    if raw.dtype == object:  # encoded bytes (e.g. PNG in a TFRecord)
        decoded = [tf.image.resize(tf.io.decode_image(v, channels=c, expand_animations=False), (h, w)).numpy()
                   for v in raw.reshape(-1)]
        return np.stack(decoded).astype(np.float32) if decoded else np.zeros((0, h, w, c), np.float32)
    values = to_float(raw, path, table, col).astype(np.float32)
    n = len(values)
    if values.ndim == 2 and values.shape[1] == h * w * c:
        return values.reshape(n, h, w, c)
    if values.ndim == 3:
        values = values[..., None]
    if values.ndim != 4:
        raise SpecError(Problem(path=path, message=f"column `{col}` does not hold images",
                                expected=f"rows of shape [{h}, {w}, {c}] (or {h * w * c} values)",
                                received=f"shape {list(values.shape[1:])}"))
    if values.shape[-1] != c:
        if values.shape[-1] == 1 and c == 3:
            values = np.repeat(values, 3, axis=-1)
        else:
            raise SpecError(Problem(path=f"{path}.channels", message=f"images in `{col}` have {values.shape[-1]} channels",
                                    expected=f"{c}", received=str(values.shape[-1])))
    if values.shape[1:3] != (h, w):
        values = np.concatenate([tf.image.resize(values[i:i + 1024], (h, w)).numpy()
                                 for i in range(0, n, 1024)]) if n else np.zeros((0, h, w, c), np.float32)
    return values


def token_ids(feature, raw: np.ndarray, path: str, col: str) -> np.ndarray:
    """Token rows of a sequence feature as int32 (variable-length lists padded,
    "3 14 15" text split), checked against `length` and `vocab_size`."""
    if raw.dtype == object:  # variable-length token lists (keras imdb/reuters, or "3 14 15" in a CSV column)
        import keras

        if any(isinstance(v, str) for v in raw):
            try:
                raw = np.array([[int(t) for t in v.split()] if isinstance(v, str) else v for v in raw] + [None],
                               dtype=object)[:-1]
            except ValueError as e:
                raise SpecError(Problem(path=path, message=f"column `{col}` holds text that is not token ids",
                                        expected="space-separated integers, e.g. \"3 14 15\"",
                                        received=str(e).split(": ", 1)[-1])) from None

        # Variable length: padded to the longest row here, cut to each batch's longest by the pipeline.
        maxlen = None if feature.variable_length else feature.length
        tokens = keras.utils.pad_sequences(list(raw), maxlen=maxlen, padding=feature.padding,
                                           truncating=feature.truncating)
    elif raw.ndim != 2 or (raw.shape[1] != feature.length and not feature.variable_length):
        raise SpecError(Problem(path=path.split(".column")[0] + ".length", message=f"column `{col}` rows have "
                                f"shape {list(raw.shape[1:])}", expected=f"[{feature.length}] tokens"))
    else:
        tokens = raw
    tokens = np.asarray(tokens).astype(np.int32)
    if feature.vocab_size and tokens.size and (tokens.min() < 0 or tokens.max() >= feature.vocab_size):
        raise SpecError(Problem(path=path.split(".column")[0] + ".vocab_size",
                                message=f"token ids in `{col}` fall outside 0..{feature.vocab_size - 1}",
                                received=f"min {tokens.min()}, max {tokens.max()}"))
    return tokens


# ---------------------------------------------------------------- targets


def encode_target(target, raw: dict[str, np.ndarray], loaded: Loaded, cols: list[str], path: str):
    """Encoded target per part and its serving info (type, num_classes, class_names)."""
    kind = target.type
    col = ", ".join(cols)
    if kind == "numeric":
        out = {}
        for part, values in raw.items():
            v = to_float(values, path, loaded.parts[part], col).astype(np.float32).reshape(len(values), -1)
            shape = tuple(target.shape or [v.shape[1]])
            if v.shape[1] != int(np.prod(shape)):
                raise SpecError(Problem(path=f"{path}.shape", message=f"column `{col}` has {v.shape[1]} value(s) per row",
                                        expected=f"{int(np.prod(shape))} values for shape {list(shape)}"))
            out[part] = v.reshape((len(v),) + shape)
        return out, {"type": "numeric", "shape": list(shape)}
    if kind == "sequence":
        out = {p: np.asarray(v).astype(np.int32) for p, v in raw.items()}
        top = max((int(v.max()) for v in out.values() if v.size), default=0) + 1
        names = target.class_names or loaded.class_names.get(col)
        n = target.num_classes or (len(names) if names else top)
        if top > n:
            raise SpecError(Problem(path=f"{path}.num_classes", message=f"token ids in `{col}` reach {top - 1}",
                                    expected=f"ids below num_classes={n}"))
        return out, {"type": "sequence", "num_classes": n, "class_names": list(names) if names else None}
    return _classes(target, raw, loaded, col, path)


def _classes(target, raw, loaded: Loaded, col: str, path: str):
    import pandas as pd

    flat = {p: np.asarray(v).reshape(-1) for p, v in raw.items()}
    for part, v in flat.items():
        nulls = np.flatnonzero(pd.isna(v))
        if nulls.size:
            raise SpecError(Problem(path=path, message=f"missing label in column `{col}` at "
                                    f"{loaded.parts[part].where(int(nulls[0]))}", hint=f"{nulls.size} row(s) affected"))
    if not any(v.size for v in flat.values()):
        raise SpecError(Problem(path="data.source", message="the source has no rows"))
    integral = all(_integral(v) for v in flat.values())
    names = list(target.class_names) if target.class_names else None
    n = target.num_classes
    binary = target.type == "binary"
    if binary and n not in (None, 2):
        raise SpecError(Problem(path=f"{path}.num_classes", message="a binary target has 2 classes", received=str(n)))
    if integral and names is not None:
        seen = sorted(set(np.concatenate(list(flat.values())).astype(np.int64).tolist()))
        if not (seen[0] >= 0 and seen[-1] < len(names)) and {str(s) for s in seen} <= set(names):
            integral = False  # integer codes spelled as the declared class names, not indices
    if integral:
        ints = {p: v.astype(np.int64) for p, v in flat.items()}
        seen = sorted(set(np.concatenate(list(ints.values())).tolist()))
        known = names or loaded.class_names.get(col)
        if binary and known is None and set(seen) <= {0, 1}:
            known = ["0", "1"]
        if known is None and n is None and seen[0] >= 0 and not binary:
            n = seen[-1] + 1  # other binary codes (e.g. 1/2) take the sorted mapping below
        size = len(known) if known is not None else n
        if size is not None and (seen[0] < 0 or seen[-1] >= size):
            bad = [s for s in seen if s < 0 or s >= size]
            raise SpecError(Problem(
                path=f"{path}.class_names" if target.class_names else f"{path}.num_classes",
                message=f"label values outside the declared classes in column `{col}`",
                expected=f"class indices 0..{size - 1}", received=", ".join(map(str, bad[:10])),
            ))
        if size is not None:
            names = list(known) if known is not None else [str(i) for i in range(size)]
            encoded = ints
        else:  # arbitrary integers (e.g. negative codes): map sorted values to indices
            names = [str(s) for s in seen]
            index = {s: i for i, s in enumerate(seen)}
            encoded = {p: np.array([index[x] for x in v.tolist()]) for p, v in ints.items()}
    else:
        texts = {p: as_strings(v).reshape(-1) for p, v in flat.items()}
        seen = sorted(set(np.concatenate(list(texts.values())).tolist()))
        if names is None:
            names = seen
            if n is not None and len(names) != n:
                raise SpecError(Problem(path=f"{path}.num_classes", message=f"column `{col}` holds {len(names)} "
                                        f"distinct labels", expected=f"{n} (num_classes)",
                                        received=", ".join(names[:10])))
        outside = [s for s in seen if s not in names]
        if outside:
            raise SpecError(Problem(path=f"{path}.class_names", message=f"label values outside the declared classes "
                                    f"in column `{col}`", expected="one of: " + ", ".join(names),
                                    received=", ".join(outside[:10]),
                                    hint=did_you_mean(outside[0], names)))
        index = {s: i for i, s in enumerate(names)}
        encoded = {p: np.array([index[x] for x in v.tolist()], dtype=np.int64) for p, v in texts.items()}
    if binary:
        if len(names) != 2:
            raise SpecError(Problem(path=path, message=f"a binary target needs 2 classes, column `{col}` has "
                                    f"{len(names)}", received=", ".join(names[:10]), hint="use `type: category`"))
        out = {p: v.astype(np.float32).reshape(-1, 1) for p, v in encoded.items()}
    else:
        out = {p: v.astype(np.int32) for p, v in encoded.items()}
    return out, {"type": target.type, "num_classes": len(names), "class_names": [str(c) for c in names]}


def _integral(values: np.ndarray) -> bool:
    if values.dtype.kind in "biu":
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return False
