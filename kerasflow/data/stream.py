"""`stream: true` CSV sources: files larger than memory, read with tf.data.

One pandas pass in chunks checks every value (errors keep their file line),
counts the splits and computes the training statistics. The datasets then
work on blocks of lines, never on single lines: `TextLineDataset` lines are
grouped in blocks of `PARSE_LINES`, each block keeps the lines a seeded hash
of their line numbers assigns to its split and is parsed at once with
`decode_csv`; parsed rows are cut into blocks of `BLOCK_LINES`, cached,
shuffled as blocks and regrouped into batches. A training
batch is then made of `batch_size / BLOCK_LINES` random runs of consecutive
lines drawn from a `shuffle_buffer` of lines.
Supported: numeric and category features; category, binary and numeric targets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from kerasflow.data.columns import encode_target, record_range_columns, resolve_columns, target_path, to_float
from kerasflow.data.features import plain
from kerasflow.data.fingerprint import data_fingerprint
from kerasflow.data.sources import PARTS, Loaded, Table, require_file
from kerasflow.data.stats import category_vocabulary
from kerasflow.spec.errors import Problem, SpecError

CHUNK_ROWS = 200_000
# Lines read and parsed at once (decode_csv's per-call cost, amortized), then
# cut into blocks of BLOCK_LINES that are shuffled: small enough that a batch
# mixes many random places of the file, large enough to cost far less than lines.
PARSE_LINES = 2048
BLOCK_LINES = 32


def _part_codes(index, seed: int, validation: float, test: float, where=np.where):
    """0 train, 1 validation, 2 test per data row index; the same expression runs
    on numpy arrays (the scan) and int64 tensors (the pipeline, with tf.where)."""
    u = ((index * 2654435761 + seed * 40503) % 2**32) / 2**32  # Knuth's multiplicative hash -> [0, 1)
    return where(u < test, 2, where(u < test + validation, 1, 0))


def prepare_stream(spec, *, base_dir=None):
    import pandas as pd

    from kerasflow.data.prepared import PreparedData

    data_spec, seed = spec.data, spec.seed
    _check_supported(data_spec)
    source = data_spec.source
    files = {"train": require_file(source.path, "path", base_dir)}
    for part, key in (("validation", "validation_path"), ("test", "test_path")):
        if getattr(source, key):
            files[part] = require_file(getattr(source, key), key, base_dir)
    names = list(pd.read_csv(files["train"], sep=source.delimiter, nrows=0).columns)
    mapping = resolve_columns(Loaded(parts={"all": Table({})}, available=names), data_spec)
    carve = {k: 0.0 if k in files else getattr(data_spec.split, k) for k in ("validation", "test")}
    scan = _scan(files, names, mapping, data_spec, seed, carve)
    targets = {}
    for target in data_spec.targets():
        cols = mapping[("target", target.name)]
        if target.type == "numeric":
            targets[target.name] = {"type": "numeric", "shape": list(target.shape or [len(cols)])}
            continue
        uniques = np.array(sorted(scan["labels"][target.name], key=str), dtype=object)
        loaded = Loaded(parts={"all": Table({cols[0]: uniques})})
        _, info = encode_target(target, {"all": uniques}, loaded, cols, target_path(data_spec, target))
        codes = [v for v in uniques if not isinstance(v, str)]
        if codes and (min(codes) < 0 or max(codes) >= info["num_classes"]):  # decoding casts numbers as indices
            raise SpecError(Problem(path=target_path(data_spec, target), message="`stream: true` needs class labels "
                                    "that are strings or class indices 0..n-1", received=", ".join(map(str, codes[:10]))))
        targets[target.name] = info
    batch_size = int(plain(data_spec.batch_size))
    reader = _Reader(data_spec, names, mapping, targets, scan["strings"], seed, carve)

    def read(part: str, training: bool, size: int):
        rows = scan["sizes"][part]
        if part in files:  # a file of its own, or the train file minus the carved rows
            return reader.dataset(files[part], 0 if part == "train" else None, training, size, rows)
        return reader.dataset(files["train"], PARTS.index(part), training, size, rows)

    datasets = {p: read(p, p == "train", batch_size) if p in files or carve[p] > 0 else None for p in PARTS}
    for part, ds in datasets.items():
        if ds is not None and scan["sizes"][part] == 0:
            raise SpecError(Problem(path="data.split" + ("" if part == "train" else f".{part}"),
                                    message=f"the {part} split is empty (0 rows)"))

    def materialize(part: str):
        batches = list(read(part, False, 4096).as_numpy_iterator())
        feats = {k: np.concatenate([b[0][k] for b in batches]) for k in data_spec.features}
        targs = {k: np.concatenate([b[1][k] for b in batches]) for k in targets}
        return {k: v.astype(str).astype(object) if v.dtype.kind in "SO" else v for k, v in feats.items()}, targs

    return PreparedData(
        train=datasets["train"], validation=datasets["validation"], test=datasets["test"],
        stats=record_range_columns(data_spec, names, scan["stats"]),
        targets=targets, fingerprint=data_fingerprint(data_spec, seed=seed, base_dir=base_dir), batch_size=batch_size,
        sizes=scan["sizes"], _materialize=materialize,
    )


def _check_supported(data_spec) -> None:
    problems = []
    for name, feature in data_spec.features.items():
        if feature.type not in ("numeric", "category"):
            problems.append(Problem(path=f"data.features.{name}.type", message="`stream: true` reads numeric and "
                                    "category features only", received=feature.type,
                                    hint="set `data.source.stream: false` to load the file into memory"))
    for target in data_spec.targets():
        if target.type == "sequence":
            problems.append(Problem(path=target_path(data_spec, target) + ".type",
                                    message="`stream: true` has no sequence targets", received=target.type))
    for key in ("column", "stratify"):
        if getattr(data_spec.split, key):
            problems.append(Problem(path=f"data.split.{key}", message=f"`split.{key}` needs the whole file in memory",
                                    hint="remove it or set `data.source.stream: false`"))
    if problems:
        raise SpecError(problems)


def _scan(files, names, mapping, data_spec, seed, carve) -> dict:
    """One pass: validate values, count rows per split, training stats, label sets."""
    import pandas as pd

    wanted = sorted({c for cols in mapping.values() for c in cols})
    sizes = dict.fromkeys(PARTS, 0)
    sums: dict[str, tuple] = {}  # feature -> (count, sum, sum of squares) over training rows
    counts: dict[str, Counter] = {n: Counter() for n, f in data_spec.features.items() if f.type == "category"}
    labels: dict[str, set] = {t.name: set() for t in data_spec.targets() if t.type != "numeric"}
    strings: set[str] = set()
    for part, path in files.items():
        offset = 0
        for chunk in pd.read_csv(path, sep=data_spec.source.delimiter, usecols=wanted, chunksize=CHUNK_ROWS):
            table = Table({c: chunk[c].to_numpy() for c in wanted}, origin=str(path), first_line=2, row_offset=offset)
            strings |= {c for c in wanted if not pd.api.types.is_numeric_dtype(chunk[c])}
            if part == "train":
                codes = _part_codes(np.arange(offset, offset + len(chunk)), seed, carve["validation"], carve["test"])
                for code, name in enumerate(PARTS):
                    sizes[name] += int((codes == code).sum())
                train_rows = codes == 0
            else:
                sizes[part] += len(chunk)
                train_rows = np.zeros(len(chunk), dtype=bool)
            _accumulate(table, mapping, data_spec, train_rows, sums, counts, labels)
            offset += len(chunk)
    stats = {}
    for name, (n, s, ss) in sums.items():
        mean = s / max(n, 1)
        stats[name] = {"mean": mean.tolist(), "variance": np.maximum(ss / max(n, 1) - mean**2, 0.0).tolist()}
    for name, counter in counts.items():
        stats[name] = {"vocabulary": category_vocabulary(data_spec.features[name], counter)}
    return {"sizes": sizes, "stats": stats, "labels": labels, "strings": strings}


def _accumulate(table, mapping, data_spec, train_rows, sums, counts, labels) -> None:
    for name, feature in data_spec.features.items():
        cols = mapping[("features", name)]
        path = f"data.features.{name}" + (".column" if feature.column is not None else "")
        if feature.type == "numeric":
            values = np.stack([to_float(table.columns[c], path, table, c) for c in cols], axis=1)
            if feature.normalize:
                flat = values[train_rows].reshape(-1, feature.shape[-1])
                n, s, ss = sums.get(name, (0, 0.0, 0.0))
                sums[name] = (n + len(flat), s + flat.sum(axis=0), ss + (flat**2).sum(axis=0))
        else:
            raw = table.columns[cols[0]][train_rows]
            counts[name].update("" if v is None or v != v else str(v) for v in raw.tolist())
    for target in data_spec.targets():
        cols = mapping[("target", target.name)]
        path = target_path(data_spec, target)
        if target.type == "numeric":
            for c in cols:
                to_float(table.columns[c], path, table, c)
        else:
            labels[target.name].update(table.columns[cols[0]].tolist())


class _Reader:
    """Builds the tf.data pipeline of one file (or of one hashed part of it)."""

    def __init__(self, data_spec, names, mapping, targets, strings, seed, carve):
        self.data_spec, self.names, self.mapping, self.targets = data_spec, names, mapping, targets
        self.strings, self.seed, self.carve = strings, seed, carve
        self.select = sorted({names.index(c) for cols in mapping.values() for c in cols})

    def dataset(self, path, code: int | None, training: bool, batch_size: int, rows: int):
        """Batches of `path`; with `code`, only the rows the hash assigns to that split
        (`rows` of them, as the scan counted: Keras then knows the steps per epoch)."""
        import tensorflow as tf

        spec = self.data_spec
        block = PARSE_LINES
        blocks = tf.data.TextLineDataset(str(path)).skip(1).batch(block)
        if code is not None and any(self.carve.values()):
            seed, validation, test = self.seed, self.carve["validation"], self.carve["test"]

            @tf.autograph.experimental.do_not_convert  # no Python control flow on tensors: skip the conversion
            def keep(index, lines):
                rows = index * block + tf.range(tf.size(lines, out_type=tf.int64), dtype=tf.int64)
                return tf.boolean_mask(lines, tf.equal(_part_codes(rows, seed, validation, test, where=tf.where), code))

            blocks = blocks.enumerate().map(keep, num_parallel_calls=tf.data.AUTOTUNE)
        parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=spec.deterministic)
        # `_decode` branches on static dtypes only: AutoGraph's conversion would only cost start-up time.
        ds = blocks.map(tf.autograph.experimental.do_not_convert(self._decode), **parallel).rebatch(BLOCK_LINES)
        # Blocks are views into their parse block; a second `rebatch` of views logs "Tensor RefCount
        # not reliable if buf_ points to a SubBuffer" (an ERROR line per batch) in TF 2.21: own copies don't.
        ds = ds.map(_own_copy, **parallel)
        if spec.cache is not False:  # parsed blocks: later epochs neither read nor parse
            ds = ds.cache() if spec.cache is True else ds.cache(f"{spec.cache}.{Path(path).stem}.{code}")
        if training:
            ds = ds.shuffle(max(spec.shuffle_buffer // BLOCK_LINES, 2), seed=self.seed, reshuffle_each_iteration=True)
        # `rebatch` loses the cardinality: without it Keras warns "Your input ran out of data" every run
        ds = ds.rebatch(batch_size).apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
        options = tf.data.Options()
        options.deterministic = spec.deterministic
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    def _decode(self, lines):
        import tensorflow as tf

        defaults = [tf.constant([""]) if self.names[i] in self.strings else tf.constant([0.0], tf.float64)
                    for i in self.select]
        values = tf.io.decode_csv(lines, defaults, field_delim=self.data_spec.source.delimiter, select_cols=self.select)
        column = {self.names[i]: v for i, v in zip(self.select, values)}
        features = {}
        for name, feature in self.data_spec.features.items():
            cols = self.mapping[("features", name)]
            if feature.type == "numeric":
                x = tf.stack([column[c] for c in cols], axis=1)
                features[name] = tf.cast(tf.reshape(x, [-1, *feature.shape]), feature.dtype)
            else:
                x = column[cols[0]]
                if feature.dtype == "int64":
                    x = tf.cast(x, tf.int64) if x.dtype != tf.string else tf.strings.to_number(x, tf.int64)
                elif x.dtype != tf.string:
                    x = tf.strings.as_string(tf.cast(x, tf.int64))
                features[name] = tf.reshape(x, [-1, 1])
        targets = {}
        for target in self.data_spec.targets():
            cols = self.mapping[("target", target.name)]
            info = self.targets[target.name]
            if info["type"] == "numeric":
                y = tf.stack([column[c] for c in cols], axis=1)
                targets[target.name] = tf.cast(tf.reshape(y, [-1, *info["shape"]]), tf.float32)
                continue
            y = column[cols[0]]
            keys = info["class_names"] if y.dtype == tf.string else None
            if keys is not None:
                table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys), tf.range(len(keys), dtype=tf.int64)), -1)
                y = table.lookup(y)
            y = tf.cast(y, tf.int32)  # numeric labels are already class indices 0..n-1
            targets[target.name] = tf.cast(tf.reshape(y, [-1, 1]), tf.float32) if info["type"] == "binary" else y
        return features, targets


def _own_copy(features, targets):
    import tensorflow as tf

    return tf.nest.map_structure(lambda x: tf.raw_ops.DeepCopy(x=x), (features, targets))
