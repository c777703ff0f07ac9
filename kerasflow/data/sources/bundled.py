"""Offline data: scikit-learn and statsmodels bundled sets, and generated sequence and text tasks."""

from __future__ import annotations

import numpy as np

from kerasflow.data.sources.table import Loaded, Table

# The main series of each statsmodels set (feature/target default to it).
_SERIES = {"sunspots": "SUNACTIVITY", "co2": "co2", "nile": "volume", "elnino": "temperature"}


def load_sklearn(data_spec, base_dir, seed) -> Loaded:
    """Columns: each of sklearn's feature names, `data` (all of them as one
    vector), `target`, and for digits `images` (8x8)."""
    from sklearn import datasets

    name = data_spec.source.name
    bunch = getattr(datasets, f"load_{name}")()
    columns = {str(f): bunch.data[:, i] for i, f in enumerate(bunch.feature_names)}
    columns["data"] = bunch.data
    columns["target"] = bunch.target
    if "images" in bunch:
        columns["images"] = bunch.images
    class_names = {}
    if "target_names" in bunch:
        class_names["target"] = [str(c) for c in bunch.target_names]
    return Loaded(parts={"all": Table(columns, origin=f"sklearn {name}")}, class_names=class_names,
                  default_feature="data", default_target="target")


def load_statsmodels(data_spec, base_dir, seed) -> Loaded:
    """A time series (rows are time steps, split chronologically)."""
    from statsmodels import datasets

    name = data_spec.source.name
    frame = getattr(datasets, name).load_pandas().data
    if name == "co2":
        # Weekly readings with gaps; the statsmodels examples interpolate them the same way.
        frame = frame.interpolate().bfill()
    if name == "elnino":
        months = [c for c in frame.columns if c != "YEAR"]
        frame = frame.melt(id_vars="YEAR", value_vars=months, var_name="MONTH", value_name="temperature")
        order = {m: i for i, m in enumerate(months)}
        frame = frame.assign(m=frame["MONTH"].map(order)).sort_values(["YEAR", "m"]).drop(columns="m")
    columns = {str(c): frame[c].to_numpy() for c in frame.columns}
    main = data_spec.source.column or _SERIES[name]
    return Loaded(parts={"all": Table(columns, origin=f"statsmodels {name}")}, default_feature=main,
                  default_target=main, ordered=True)


def load_generated(data_spec, base_dir, seed) -> Loaded:
    """Synthetic token sequences (deterministic from the seed).

    Columns: `source` (random tokens 0..vocab_size-1), `target` (sorted,
    reversed or copied source), `decoder_input` (target shifted right after
    the start token `vocab_size`, for teacher forcing).
    """
    src = data_spec.source
    rng = np.random.default_rng(seed)
    if src.task == "reviews":
        return _reviews(src.samples, rng)
    tokens = rng.integers(0, src.vocab_size, size=(src.samples, src.length), dtype=np.int32)
    if src.task == "sort":
        target = np.sort(tokens, axis=1)
    elif src.task == "reverse":
        target = tokens[:, ::-1].copy()
    else:
        target = tokens.copy()
    start = np.full((src.samples, 1), src.vocab_size, dtype=np.int32)
    decoder_input = np.concatenate([start, target[:, :-1]], axis=1)
    table = Table({"source": tokens, "target": target, "decoder_input": decoder_input}, origin=f"generated {src.task}")
    names = [str(i) for i in range(src.vocab_size)]
    return Loaded(parts={"all": table}, class_names={"target": names}, default_feature="source", default_target="target")


# The `reviews` task: one opinion clause among neutral ones; "not" flips the opinion, so the
# label depends on word order, not only on which words occur.
_SUBJECTS = ("the movie", "the plot", "the acting", "the soundtrack", "the ending", "this film", "the cast",
             "the script", "the dialogue", "the director's work")
_POSITIVE = ("good", "great", "wonderful", "brilliant", "enjoyable", "moving", "clever", "superb", "funny", "fresh")
_NEGATIVE = ("bad", "awful", "boring", "dull", "terrible", "weak", "predictable", "clumsy", "slow", "forgettable")
_DEGREES = ("", "really ", "very ", "quite ", "truly ", "rather ")
_NEUTRAL = ("i watched it on sunday", "we saw it with friends", "it runs for two hours", "it came out last year",
            "the cinema was full", "my sister picked it", "it is based on a novel", "there is a long chase scene",
            "the tickets were cheap", "it was shown in english", "we had popcorn", "the lead is a newcomer")


def _reviews(samples: int, rng) -> Loaded:
    """Columns `text` (a short review) and `label` (0 negative, 1 positive)."""
    texts = np.empty(samples, dtype=object)
    labels = rng.integers(0, 2, size=samples)
    for i, label in enumerate(labels):
        negated = rng.random() < 0.3
        words = _POSITIVE if bool(label) != negated else _NEGATIVE
        opinion = (f"{_SUBJECTS[rng.integers(len(_SUBJECTS))]} was {'not ' if negated else ''}"
                   f"{_DEGREES[rng.integers(len(_DEGREES))]}{words[rng.integers(len(words))]}")
        clauses = [opinion] + [_NEUTRAL[j] for j in rng.choice(len(_NEUTRAL), size=rng.integers(0, 3), replace=False)]
        rng.shuffle(clauses)
        texts[i] = ", ".join(clauses)
    table = Table({"text": texts, "label": labels.astype(np.int64)}, origin="generated reviews")
    return Loaded(parts={"all": table}, class_names={"label": ["negative", "positive"]}, default_feature="text",
                  default_target="label")
