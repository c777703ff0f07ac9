"""Model inputs and the preprocessing layers baked into the model.

Every preprocessing layer is constructed from `stats` (computed once on the
training split by `kerasflow.data.pipeline.prepare_data`) and never adapted
here: KerasTuner rebuilds the model per trial, and adapted lookup assets would
be lost otherwise. With `stats=None` ("plan mode", no data) the model still
has the right shapes: normalization is the identity and lookups are sized from
the declared vocabulary or `max_tokens`.
"""

from __future__ import annotations

from typing import Any

from kerasflow.spec.errors import Problem, SpecError, did_you_mean

# Raw (serving) dtype of each feature type; numeric features declare their own.
_STRING = "string"


def plain(value: Any) -> Any:
    """A spec value, or the default of an unfilled `{tune: ...}` marker."""
    kind = getattr(value, "tune", None)
    if kind is None:
        return value
    if getattr(value, "default", None) is not None:
        return value.default
    if kind == "choice":
        return value.values[0]
    if kind == "bool":
        return False
    return value.min


def series_channels(feature) -> int:
    """Columns of a timeseries feature (one per listed column)."""
    return len(feature.column) if isinstance(feature.column, list) else 1


def raw_input_spec(feature) -> tuple[tuple, str]:
    """(per-example shape, dtype) of the raw input a feature's `keras.Input` takes."""
    kind = feature.type
    if kind == "numeric":
        return tuple(feature.shape), feature.dtype
    if kind == "category":
        return (1,), _STRING if feature.dtype == "string" else "int64"
    if kind == "text":
        return (1,), _STRING
    if kind == "image":
        hw = (None, None) if feature.any_size else (feature.height, feature.width)
        return (*hw, feature.channels), "float32"
    if kind == "timeseries":
        return (feature.input_width, series_channels(feature)), "float32"
    return (None if feature.variable_length else feature.length,), "int32"  # sequence of token ids


def raw_input_specs(data_spec, feature_names=None) -> dict[str, tuple[tuple, str]]:
    """Raw input (shape, dtype) per feature: the exported model's signature."""
    return {name: raw_input_spec(data_spec.features[name]) for name in _names(data_spec, feature_names)}


def vocabulary(name: str, feature, stats: dict | None) -> list | None:
    """The lookup vocabulary (without OOV/mask tokens) of a category or text feature."""
    learned = (stats or {}).get(name, {}).get("vocabulary")
    if learned is not None:
        return list(learned)
    if getattr(feature, "vocabulary", None) is not None:
        return list(feature.vocabulary)
    return None


def vocabulary_size(name: str, feature, stats: dict | None) -> int:
    """Number of distinct indices a category/text/sequence feature produces
    (vocabulary + OOV slots; for text + padding). An upper bound in plan mode."""
    if feature.type == "sequence":
        return int(feature.vocab_size or (stats or {}).get(name, {}).get("vocab_size", 0)) or 1
    vocab = vocabulary(name, feature, stats)
    if feature.type == "text":
        max_tokens = int(plain(feature.max_tokens))
        return min(max_tokens, len(vocab) + 2) if vocab is not None else max_tokens
    extra = feature.num_oov_indices
    if vocab is not None:
        return len(vocab) + extra
    return feature.max_tokens or extra + 1


def build_inputs(data_spec, stats: dict | None, feature_names=None) -> tuple[dict, dict]:
    """Raw `keras.Input` per feature (named after it) and its preprocessed tensor.

    Args:
        data_spec: the validated `data` section (`Spec.data`).
        stats: `PreparedData.stats`, or None to build shapes without data.
        feature_names: features to build (default: all, in declaration order).

    Returns:
        (inputs, preprocessed): two dicts keyed by feature name.
    """
    import keras

    inputs, outputs = {}, {}
    for name in _names(data_spec, feature_names):
        feature = data_spec.features[name]
        shape, dtype = raw_input_spec(feature)
        raw = keras.Input(shape=shape, dtype=dtype, name=name)
        inputs[name] = raw
        outputs[name] = _preprocess(name, feature, raw, stats)
    return inputs, outputs


def _names(data_spec, feature_names) -> list[str]:
    declared = list(data_spec.features)
    if feature_names is None:
        return declared
    problems = [
        Problem(path="model.inputs", message=f"`{n}` is not a feature declared in data.features",
                expected="one of: " + ", ".join(declared), hint=did_you_mean(n, declared))
        for n in feature_names if n not in declared
    ]
    if problems:
        raise SpecError(problems)
    return list(feature_names)


def _preprocess(name: str, feature, raw, stats: dict | None):
    import keras

    kind = feature.type
    if kind in ("numeric", "timeseries"):
        x = raw if raw.dtype == "float32" else keras.ops.cast(raw, "float32")
        moments = (stats or {}).get(name, {})
        if feature.normalize and "mean" in moments:
            x = keras.layers.Normalization(
                axis=-1, mean=moments["mean"], variance=moments["variance"], name=f"{name}_normalize"
            )(x)
        return x
    if kind == "category":
        return _category(name, feature, raw, stats)
    if kind == "text":
        return _text(name, feature, raw, stats)
    if kind == "image":
        x = raw
        if feature.any_size:
            x = keras.layers.Resizing(feature.height, feature.width, name=f"{name}_resize")(x)
        if feature.rescale is not None or feature.offset:
            scale = 1.0 if feature.rescale is None else feature.rescale
            x = keras.layers.Rescaling(scale, offset=feature.offset, name=f"{name}_rescale")(x)
        return x
    return raw  # sequence: token ids go straight to the model's embedding


def _category(name: str, feature, raw, stats: dict | None):
    import keras

    vocab = vocabulary(name, feature, stats)
    if vocab is None:
        # Plan mode without a declared vocabulary: placeholders keep the width right.
        width = max((feature.max_tokens or feature.num_oov_indices + 1) - feature.num_oov_indices, 1)
        vocab = [f"<plan_{i}>" for i in range(width)] if feature.dtype == "string" else list(range(1, width + 1))
    lookup_cls = keras.layers.StringLookup if feature.dtype == "string" else keras.layers.IntegerLookup
    if feature.dtype == "string":
        vocab = [str(v) for v in vocab]
    else:
        vocab = [int(v) for v in vocab]
    one_hot = feature.output == "one_hot"
    lookup = lookup_cls(
        vocabulary=vocab, num_oov_indices=feature.num_oov_indices,
        output_mode="one_hot" if one_hot else "int", name=f"{name}_lookup",
    )
    x = lookup(raw)
    if feature.output == "embedding":
        dim = int(plain(feature.embedding_dim))
        x = keras.layers.Embedding(len(vocab) + feature.num_oov_indices, dim, name=f"{name}_embedding")(x)
        x = keras.layers.Reshape((dim,), name=f"{name}_flatten")(x)
    return x


def _text(name: str, feature, raw, stats: dict | None):
    import keras

    vocab = vocabulary(name, feature, stats)
    max_tokens = int(plain(feature.max_tokens))
    mode = feature.output_mode
    kwargs: dict[str, Any] = {}
    if vocab is None:
        # Plan mode: a placeholder vocabulary so the layer can run at all.
        vocab = [f"plan{i}" for i in range(max(max_tokens - 2, 1))]
        if mode == "tf_idf":
            kwargs["idf_weights"] = [1.0] * len(vocab)
    elif mode == "tf_idf":
        kwargs["idf_weights"] = stats[name]["idf_weights"]
    if mode != "int":
        # TextVectorization's symbolic shape for (batch, 1) bag outputs has a stray axis; feed (batch,).
        raw = keras.ops.squeeze(raw, axis=-1)
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=feature.standardize,
        ngrams=feature.ngrams,
        output_mode=mode,
        output_sequence_length=feature.sequence_length if mode == "int" else None,
        pad_to_max_tokens=mode != "int",  # fixed width whatever the learned vocabulary size
        vocabulary=vocab,
        name=f"{name}_vectorize",
        **kwargs,
    )(raw)


def augmentation(feature, seed: int):
    """The training-only augmentation of an image feature, or None."""
    aug = getattr(feature, "augment", None)
    if aug is None:
        return None
    import keras

    layers = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip(aug.flip, seed=seed))
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation, seed=seed + 1))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, seed=seed + 2))
    if aug.translation:
        layers.append(keras.layers.RandomTranslation(aug.translation, aug.translation, seed=seed + 3))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, seed=seed + 4))
    return keras.Sequential(layers, name="augment") if layers else None
