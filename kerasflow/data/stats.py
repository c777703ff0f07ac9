"""Preprocessing state computed once, on the training split only.

The result is plain JSON (lists of numbers and strings) keyed by feature name;
`kerasflow.data.features.build_inputs` constructs the layers from it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from kerasflow.data.features import plain


TARGETS_KEY = "__targets__"  # target moments live beside the features' stats


def compute_stats(data_spec, train_features: dict[str, np.ndarray], train_targets: dict | None = None) -> dict:
    stats: dict[str, dict] = {}
    normalized = [t.name for t in data_spec.targets() if t.normalize]
    if normalized and train_targets is not None:
        stats[TARGETS_KEY] = {}
        for name in normalized:
            values = np.asarray(train_targets[name], dtype=np.float64).reshape(len(train_targets[name]), -1)
            mean, std = values.mean(axis=0), values.std(axis=0)
            stats[TARGETS_KEY][name] = {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    for name, feature in data_spec.features.items():
        values = train_features[name]
        if feature.type in ("numeric", "timeseries") and feature.normalize:
            stats[name] = _moments(values)
        elif feature.type == "category":
            stats[name] = {"vocabulary": category_vocabulary(feature, Counter(values.reshape(-1).tolist()))}
        elif feature.type == "text":
            stats[name] = _text_vocabulary(feature, values)
    return stats


def _moments(values: np.ndarray) -> dict:
    """Mean and variance per entry of the last axis (what Normalization(axis=-1) uses)."""
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    return {"mean": flat.mean(axis=0).tolist(), "variance": flat.var(axis=0).tolist()}


def category_vocabulary(feature, counts: Counter) -> list:
    """The declared vocabulary, or training values by frequency (capped by max_tokens)."""
    if feature.vocabulary is not None:
        return [str(v) if feature.dtype == "string" else int(v) for v in feature.vocabulary]
    # Most frequent first, ties by value: the same order on every run.
    ordered = sorted(counts, key=lambda v: (-counts[v], str(v)))
    if feature.max_tokens is not None:
        ordered = ordered[: max(feature.max_tokens - feature.num_oov_indices, 1)]
    return [str(v) if feature.dtype == "string" else int(v) for v in ordered]


def _text_vocabulary(feature, values: np.ndarray) -> dict:
    import keras
    import tensorflow as tf

    layer = keras.layers.TextVectorization(
        max_tokens=int(plain(feature.max_tokens)), standardize=feature.standardize, ngrams=feature.ngrams,
        output_mode=feature.output_mode,
    )
    layer.adapt(tf.data.Dataset.from_tensor_slices(values.reshape(-1).astype(str)).batch(1024))
    vocab = layer.get_vocabulary(include_special_tokens=False)
    out = {"vocabulary": [str(v) for v in vocab]}
    if feature.output_mode == "tf_idf":
        out["idf_weights"] = idf_weights(feature, values, out["vocabulary"])
    return out


def idf_weights(feature, values: np.ndarray, vocabulary: list[str]) -> list[float]:
    """Keras' inverse document frequency per vocabulary token, log(1 + N / (1 + df)),
    from document counts taken with a public `multi_hot` TextVectorization (Keras
    keeps the adapted weights on a private sub-layer only)."""
    import keras
    import tensorflow as tf

    counter = keras.layers.TextVectorization(standardize=feature.standardize, ngrams=feature.ngrams,
                                             output_mode="multi_hot", vocabulary=vocabulary)
    docs = values.reshape(-1).astype(str)
    counts = np.zeros(len(vocabulary) + 1)
    for batch in tf.data.Dataset.from_tensor_slices(docs).batch(1024):
        counts += np.asarray(counter(batch)).sum(axis=0)
    return np.log1p(len(docs) / (1.0 + counts[1:])).tolist()  # index 0 is the OOV token
