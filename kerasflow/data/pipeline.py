"""`prepare_data`: the data section -> batched train/validation/test `tf.data`
pipelines plus the preprocessing state the model builder needs.

Datasets yield `(features, targets)`: dicts of RAW feature tensors (the model
holds the preprocessing, see `kerasflow.data.features`) and encoded targets.
In-memory data is shuffled as a full permutation each epoch and batched by
gathering rows (see `gathered_batches`);
image files are decoded in a parallel map and cached.
"""

from __future__ import annotations

import numpy as np

from kerasflow.data.features import augmentation, plain
from kerasflow.data.fingerprint import data_fingerprint
from kerasflow.data.prepared import SPLITS, PreparedData
from kerasflow.spec.errors import Problem, SpecError

_GATHER_BATCHES = 32  # batches per vectorized gather: large enough to amortize, small enough to stay cache-friendly
_WHOLE_EPOCH_BYTES = 64 << 20  # training data up to this size is shuffled by one gather per epoch

__all__ = ["SPLITS", "PreparedData", "gathered_batches", "prepare_data"]


def prepare_data(spec, *, base_dir=None) -> PreparedData:
    """Load, type, split and batch `spec.data`; compute stats on the training split."""
    data_spec = spec.data
    if getattr(data_spec.source, "stream", False):
        from kerasflow.data.stream import prepare_stream

        return prepare_stream(spec, base_dir=base_dir)
    from kerasflow.data.columns import record_range_columns, type_columns
    from kerasflow.data.sources import load_source
    from kerasflow.data.splits import series_target_shape, split
    from kerasflow.data.stats import compute_stats

    seed = spec.seed
    fingerprint = data_fingerprint(data_spec, seed=seed, base_dir=base_dir)
    loaded = load_source(data_spec, base_dir=base_dir, seed=seed)
    typed = type_columns(loaded, data_spec)
    parts = split(typed, data_spec, seed=seed, ordered=loaded.ordered)
    targets = typed.target_info
    if any(f.type == "timeseries" for f in data_spec.features.values()):
        for name, info in targets.items():
            window = parts["train"].targets[name]
            info["shape"] = series_target_shape(data_spec, 1 if window.ndim == 2 else window.shape[-1])
    # Only the features the model reads: Keras maps a dict with extra keys onto a
    # single-input model by position, which would feed it the wrong column.
    used = set(spec.model.inputs or data_spec.features)
    files = {n: f for n, f in data_spec.features.items() if n in typed.image_files and n in used}
    stats = compute_stats(data_spec, parts["train"].features, parts["train"].targets)  # images need no stats: skip decoding
    record_range_columns(data_spec, loaded.column_names(), stats)
    batch_size = int(plain(data_spec.batch_size))

    def build(name: str):
        part = parts.get(name)
        if part is None:
            return None
        features = {k: v for k, v in part.features.items() if k in used}
        return _batches(features, part.targets, data_spec, training=name == "train", seed=seed,
                       image_files=files, cache_suffix=name)

    def materialize(name: str):
        part = parts[name]
        return _decoded({k: v for k, v in part.features.items() if k in used}, files), part.targets

    return PreparedData(
        train=build("train"), validation=build("validation"), test=build("test"), stats=stats, targets=targets,
        fingerprint=fingerprint, batch_size=batch_size,
        sizes={k: len(v) if v is not None else 0 for k, v in parts.items()}, _materialize=materialize,
    )


# ---------------------------------------------------------------- tf.data


def _batches(features: dict, targets: dict, data_spec, *, training: bool, seed: int, image_files: dict,
            cache_suffix: str):
    """Batched (features, targets) dataset over in-memory arrays."""
    import tensorflow as tf

    batch_size = int(plain(data_spec.batch_size))
    n = len(next(iter(targets.values())))
    parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=data_spec.deterministic)
    if image_files:
        # Files: decode each example in parallel, cache decoded pixels, then shuffle and batch.
        ds = tf.data.Dataset.from_tensor_slices((_tensors(features), _tensors(targets)))
        ds = ds.map(lambda f, t: ({**f, **{k: _decode_image(f[k], spec) for k, spec in image_files.items()}}, t),
                    **parallel)
        ds = _cache(ds, data_spec.cache, cache_suffix)
        if training:
            ds = ds.shuffle(min(data_spec.shuffle_buffer, n), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    else:
        # In memory: one permutation of the row indices per epoch, rows gathered
        # many batches at a time: no per-example work at all.
        tensors = (_tensors(features), _tensors(targets))
        ds = gathered_batches(tensors, n, batch_size, seed=seed if training else None, parallel=parallel)
    variable = {k: data_spec.features[k].padding for k in features
                if getattr(data_spec.features.get(k), "variable_length", False)}
    if variable:
        ds = ds.map(lambda f, t: ({**f, **{k: _trim_padding(f[k], side) for k, side in variable.items()}}, t),
                    **parallel)
    if training:
        ds = _augment(ds, data_spec, seed, parallel)
    options = tf.data.Options()
    options.deterministic = data_spec.deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def gathered_batches(tensors, n: int, batch_size: int, *, seed: int | None = None, parallel: dict | None = None):
    """Batches of the rows of `tensors` (a structure of arrays with `n` rows), every row once.

    Without `seed`, in order: slices of the arrays as they are. With `seed`,
    each iteration (epoch) takes the rows in a new random order, the same
    sequence of orders on every run. Up to `_WHOLE_EPOCH_BYTES` of rows the
    epoch's rows are gathered in one go and sliced into batches: the fewest
    pipeline steps per epoch, which for a small data set cost more than the
    rows themselves. Larger data is gathered `_GATHER_BATCHES` batches at a
    time (one vectorized gather per chunk), so no epoch holds a second copy of it.
    Both give the same batches.
    """
    import tensorflow as tf

    if seed is None:
        return tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size)
    full, rest = divmod(n, batch_size)
    parallel = parallel or {}

    # Graph code without Python control flow on tensors: converting it with
    # AutoGraph only costs start-up time (parsing and rewriting the source).
    @tf.autograph.experimental.do_not_convert
    def take(index):
        return tf.nest.map_structure(lambda a: tf.gather(a, index), tensors)

    def whole(order):
        return tf.data.Dataset.from_tensor_slices(take(order)).batch(batch_size)

    def cut(order):
        chunks = tf.data.Dataset.from_tensor_slices(tf.reshape(order[: full * batch_size], [full, batch_size]))
        ds = chunks.batch(_GATHER_BATCHES).map(take, **parallel).unbatch()
        if rest:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(order[full * batch_size:]).map(take))
        return ds

    size = sum(a.shape.num_elements() * (a.dtype.size or 32) for a in tf.nest.flatten(tensors))  # 32: a string's header
    batches = whole if size <= _WHOLE_EPOCH_BYTES else cut
    rows = tf.range(n, dtype=tf.int64)
    epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    ds = epochs.flat_map(tf.autograph.experimental.do_not_convert(
        lambda s: batches(tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([s, 0])))))
    # flat_map hides the length; Keras (steps per epoch, progress) needs it.
    return ds.apply(tf.data.experimental.assert_cardinality(full + bool(rest)))


def _trim_padding(tokens, side: str):
    """A batch of token rows padded to the longest row of the whole split, cut
    to the longest row of this batch (columns that are padding in every row)."""
    import tensorflow as tf

    used = tf.reduce_any(tf.not_equal(tokens, 0), axis=0)
    width = tf.shape(tokens)[1]
    if side == "post":  # keep up to the last column any row uses
        keep = width - tf.argmax(tf.reverse(tf.cast(used, tf.int32), [0]), output_type=tf.int32)
        keep = tf.where(tf.reduce_any(used), keep, 1)
        return tokens[:, :keep]
    first = tf.argmax(tf.cast(used, tf.int32), output_type=tf.int32)
    first = tf.where(tf.reduce_any(used), first, width - 1)
    return tokens[:, first:]


def _tensors(arrays: dict) -> dict:
    import tensorflow as tf

    return {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}


def _cache(ds, cache: bool | str, suffix: str):
    if cache is False:
        return ds
    if cache is True:
        return ds.cache()
    return ds.cache(f"{cache}.{suffix}")


def _augment(ds, data_spec, seed: int, parallel: dict):
    layers = {name: augmentation(f, seed) for name, f in data_spec.features.items() if f.type == "image"}
    layers = {k: v for k, v in layers.items() if v is not None}
    if not layers:
        return ds
    return ds.map(lambda f, t: ({**f, **{k: layer(f[k], training=True) for k, layer in layers.items()}}, t),
                  **parallel)


def _decode_image(path, feature):
    """Read one image file as float32 pixels (0..255) of the feature's size."""
    import tensorflow as tf

    from kerasflow.data.images import decode_image

    return decode_image(tf.io.read_file(path), feature.height, feature.width, feature.channels)


def _decoded(features: dict, image_files: dict) -> dict:
    """Numpy features with image file paths replaced by their pixels."""
    if not image_files:
        return features
    import tensorflow as tf

    out = dict(features)
    for name, feature in image_files.items():
        paths = features[name].reshape(-1)
        ds = tf.data.Dataset.from_tensor_slices(paths.astype(str)).map(
            lambda p: _decode_image(p, feature), num_parallel_calls=tf.data.AUTOTUNE).batch(256)
        try:
            chunks = [b.numpy() for b in ds]
        except tf.errors.InvalidArgumentError as exc:
            raise SpecError(Problem(path="data.source.path", message=f"cannot decode an image: {exc.message}")) from None
        shape = (0, feature.height, feature.width, feature.channels)
        out[name] = np.concatenate(chunks) if chunks else np.zeros(shape, np.float32)
    return out
