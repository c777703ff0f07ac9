"""Train/validation/test splits (seeded fractions, stratified, by column, or
predefined parts) and timeseries windows cut after splitting, so no window
spans the boundary between two splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerasflow.data.columns import Arrays, Typed
from kerasflow.data.sources import PARTS
from kerasflow.spec.errors import Problem, SpecError


@dataclass
class Part:
    features: Arrays
    targets: Arrays

    def __len__(self) -> int:
        return len(next(iter(self.targets.values())))

    def take(self, index: np.ndarray) -> "Part":
        return Part({k: v[index] for k, v in self.features.items()}, {k: v[index] for k, v in self.targets.items()})


def split(typed: Typed, data_spec, *, seed: int, ordered: bool) -> dict[str, Part | None]:
    """The train/validation/test parts (None for a split of fraction 0)."""
    spec = data_spec.split
    series = any(f.type == "timeseries" for f in data_spec.features.values())
    if series:
        _check_series(data_spec)
    ordered = ordered or series
    parts = {p: Part(typed.features[p], typed.targets[p]) for p in typed.features}
    if "all" in parts:
        whole = parts["all"]
        if spec.column:
            out = _by_column(whole, typed.split_labels["all"], spec.column)
        else:
            out = _by_fraction(whole, spec.validation, spec.test, seed, spec.shuffle and not ordered,
                               _strata(whole, typed, data_spec))
    else:
        out = {"train": parts["train"], "validation": parts.get("validation"), "test": parts.get("test")}
        missing = {k: getattr(spec, k) for k in ("validation", "test") if out[k] is None}
        if any(missing.values()):
            carved = _by_fraction(out["train"], missing.get("validation", 0.0), missing.get("test", 0.0), seed,
                                  spec.shuffle and not ordered, _strata(out["train"], typed, data_spec))
            out["train"] = carved["train"]
            out.update({k: carved[k] for k in missing})
    if series:
        out = {k: _windows(v, data_spec) if v is not None else None for k, v in out.items()}
    _check(out, typed, data_spec)
    return out


# ---------------------------------------------------------------- assignment


def _strata(part: Part, typed: Typed, data_spec) -> np.ndarray | None:
    if not data_spec.split.stratify:
        return None
    for name, info in typed.target_info.items():
        if info["type"] in ("category", "binary"):
            return part.targets[name].reshape(-1)
    raise SpecError(Problem(path="data.split.stratify", message="stratify needs a category or binary target",
                            received=", ".join(f"{n}: {i['type']}" for n, i in typed.target_info.items())))


def _by_fraction(part: Part, validation: float, test: float, seed: int, shuffle: bool,
                 strata: np.ndarray | None) -> dict[str, Part | None]:
    """Each group (class, or all rows) gives its first rows to train, then
    validation, then test: chronological when not shuffled."""
    n = len(part)
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == c) for c in np.unique(strata)]
    idx: dict[str, list] = {"train": [], "validation": [], "test": []}
    for members in groups:
        if shuffle:
            members = rng.permutation(members)
        k_test, k_val = round(len(members) * test), round(len(members) * validation)
        k_train = len(members) - k_val - k_test
        idx["train"].append(members[:k_train])
        idx["validation"].append(members[k_train:k_train + k_val])
        idx["test"].append(members[k_train + k_val:])
    # Sorted indices keep source order inside each split; the pipeline shuffles training batches.
    fractions = {"train": 1.0, "validation": validation, "test": test}
    return {k: part.take(np.sort(np.concatenate(v))) if fractions[k] > 0 else None for k, v in idx.items()}


def _by_column(part: Part, labels: np.ndarray, column: str) -> dict[str, Part | None]:
    values = np.array([str(v).strip().lower() for v in labels], dtype=object)
    unknown = sorted(set(values.tolist()) - set(PARTS))
    if unknown:
        raise SpecError(Problem(path="data.split.column", message=f"column `{column}` holds values that are not splits",
                                expected="train, validation or test", received=", ".join(unknown[:10])))
    out = {}
    for name in PARTS:
        rows = np.flatnonzero(values == name)
        out[name] = part.take(rows) if rows.size or name == "train" else None
    return out


# ---------------------------------------------------------------- timeseries


def _check_series(data_spec) -> None:
    problems = []
    first_name, first = next((n, f) for n, f in data_spec.features.items() if f.type == "timeseries")
    keys = ("input_width", "label_width", "shift", "stride")
    for name, feature in data_spec.features.items():
        if feature.type != "timeseries":
            problems.append(Problem(path=f"data.features.{name}.type", message="timeseries features cannot be "
                                    "mixed with other feature types", expected="timeseries", received=feature.type))
            continue
        for key in keys:
            if getattr(feature, key) != getattr(first, key):
                problems.append(Problem(path=f"data.features.{name}.{key}", message=f"every timeseries feature "
                                        f"needs the same windows as `{first_name}`",
                                        expected=str(getattr(first, key)), received=str(getattr(feature, key))))
    for i, target in enumerate(data_spec.targets()):
        if target.type != "numeric":
            path = f"data.target[{i}].type" if isinstance(data_spec.target, list) else "data.target.type"
            problems.append(Problem(path=path, message="timeseries targets are the future values of a series",
                                    expected="numeric", received=target.type))
    if first.label_width > first.input_width + first.shift:
        problems.append(Problem(path=f"data.features.{first_name}.label_width",
                                message="the label window is longer than the whole window",
                                expected=f"at most input_width + shift = {first.input_width + first.shift}",
                                received=str(first.label_width)))
    if problems:
        raise SpecError(problems)


def _windows(part: Part, data_spec) -> Part:
    """Windows inside one chronological part: inputs [t, t+input_width),
    labels the last `label_width` steps of [t, t+input_width+shift)."""
    f = next(f for f in data_spec.features.values() if f.type == "timeseries")
    total = f.input_width + f.shift
    steps = len(part)
    starts = np.arange(0, max(steps - total + 1, 0), f.stride)
    inputs = starts[:, None] + np.arange(f.input_width)
    labels = starts[:, None] + (total - f.label_width) + np.arange(f.label_width)
    features = {k: v[inputs] for k, v in part.features.items()}
    targets = {}
    for k, v in part.targets.items():
        window = v.reshape(steps, -1)[labels]  # (windows, label_width, channels)
        targets[k] = window[..., 0] if window.shape[-1] == 1 else window
    return Part(features, targets)


def series_target_shape(data_spec, channels: int) -> list[int]:
    f = next(f for f in data_spec.features.values() if f.type == "timeseries")
    return [f.label_width] if channels == 1 else [f.label_width, channels]


# ---------------------------------------------------------------- checks


def _check(parts: dict[str, Part | None], typed: Typed, data_spec) -> None:
    problems = []
    series = any(f.type == "timeseries" for f in data_spec.features.values())
    unit = "windows" if series else "rows"
    hint = "use more data or smaller fractions" + (", or a shorter input_width/shift" if series else "")
    for name in PARTS:
        part = parts.get(name)  # None: not requested (fraction 0, or no rows labelled so in split.column)
        if part is not None and len(part) == 0:
            path = "data.split" + (f".{name}" if name != "train" else "")
            problems.append(Problem(path=path, message=f"the {name} split is empty (0 {unit})", hint=hint))
    if problems:
        raise SpecError(problems)
    train = parts["train"]
    for tname, info in typed.target_info.items():
        if info["type"] not in ("category", "binary"):
            continue
        present = {p: set(np.unique(v.targets[tname].reshape(-1)).tolist()) for p, v in parts.items() if v is not None}
        everywhere = set().union(*present.values())
        empty = sorted(everywhere - present["train"])
        if empty:
            names = [info["class_names"][int(c)] for c in empty]
            problems.append(Problem(
                path="data.split", message=f"the split leaves class(es) {', '.join(names)} of target `{tname}` "
                f"with no training example", received=f"{len(train)} training rows",
                hint="use `stratify: true`, smaller validation/test fractions, or more data",
            ))
    if problems:
        raise SpecError(problems)
