"""Evaluate a finished run on a split, and predict from a file of raw features.

Both rebuild the model from the run directory alone (`RunDir.load_model`:
spec, stats, weights), so nothing is re-adapted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.runs import RunDir, write_json

_CLASSIFICATION = ("category", "binary", "sequence")
_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl",
            ".ndjson": "jsonl"}
_EAGER_BATCHES = 16


def collect_predictions(model, ds) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(targets, predictions) per output over a batched (features, targets) dataset."""
    batches = int(ds.cardinality())
    if 0 <= batches <= _EAGER_BATCHES:
        # A few batches: calling the model directly is cheaper than tracing a predict function.
        true, pred = [], []
        for x, y in ds:
            true.append(y)
            pred.append(model(x, training=False))
    else:
        import tensorflow as tf

        pred = [model.predict(ds.map(tf.autograph.experimental.do_not_convert(lambda x, y: x)), verbose=0)]
        true = [y for _, y in ds]
    names = list(true[0])
    return ({n: np.concatenate([np.asarray(t[n]) for t in true]) for n in names},
            {n: np.concatenate([np.asarray(p[n]) for p in pred]) for n in names})


def predicted_classes(pred: np.ndarray) -> np.ndarray:
    """Class indices from a classification output (probabilities or one sigmoid unit)."""
    pred = np.asarray(pred)
    if pred.shape[-1] == 1:  # one sigmoid unit: the probability of class 1
        return (pred[..., 0] > 0.5).astype(np.int64)
    return pred.argmax(axis=-1)


def evaluate_run(run_dir, split: str = "test") -> dict:
    """Metrics of a trained run on `split`, with per-class precision/recall/F1
    for classification targets. Also written to `<run_dir>/evaluation_<split>.json`.

    Returns:
        {"run_dir", "split", "examples", "data_changed",
         "metrics": {name: value} (as Keras names them: loss, accuracy, ...),
         "per_class": {target: {"classes": [{"class", "precision", "recall", "f1", "support"}],
                                "macro": {...}, "weighted": {...}}}}
    """
    from kerasflow.data.pipeline import SPLITS, prepare_data
    from kerasflow.train.compile import compile_model

    if split not in SPLITS:
        raise SpecError(Problem(path="--split", message=f"unknown split `{split}`", expected="one of: " + ", ".join(SPLITS)))
    run = RunDir(run_dir)
    files = run.read(need_model=True)
    spec = files.spec
    data = prepare_data(spec)
    ds = getattr(data, split)
    if ds is None:
        raise SpecError(Problem(path=f"data.split.{split}", message=f"the {split} split is empty",
                                hint="evaluate another split (--split validation)"))
    model = run.load_model(files)
    compile_model(model, spec, stage=len(spec.training.stages) - 1, steps_per_epoch=1, targets=files.targets)
    metrics = {k: float(v) for k, v in model.evaluate(ds, return_dict=True, verbose=0).items()}
    y_true, y_pred = collect_predictions(model, ds)
    per_class = {name: _per_class(info, y_true[name], y_pred[name])
                 for name, info in files.targets.items() if info.get("type") in _CLASSIFICATION and name in y_pred}
    result = {
        "run_dir": str(files.run_dir), "split": split, "examples": int(data.sizes.get(split) or 0),
        "data_changed": run.state().get("data_fingerprint") not in (None, data.fingerprint),
        "metrics": metrics, "per_class": per_class,
    }
    write_json(run / f"evaluation_{split}.json", result)
    return result


def _per_class(info: dict, y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    n = int(info["num_classes"])
    names = info.get("class_names") or [str(i) for i in range(n)]
    true = np.asarray(y_true).reshape(-1).astype(np.int64)
    pred = predicted_classes(y_pred).reshape(-1)
    labels = list(range(n))
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    classes = [{"class": str(names[i]), "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                "support": int(s[i])} for i in labels]
    out = {"classes": classes}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(true, pred, labels=labels, average=average, zero_division=0)
        out[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    return out


# ---------------------------------------------------------------- predict


def predict_run(run_dir, input_file, output_file) -> int:
    """Predict every row of `input_file` (CSV, Parquet or JSON lines holding raw
    features) with a trained run; write `output_file` (format by extension).

    `input_file` may also be a folder of images (PNG/JPEG/GIF/BMP, searched
    recursively) for a model whose only input is an image feature; the output
    then has a `file` column naming each image.

    Each feature is read from its column (`column:` in the spec, else its name),
    a list of columns, or columns `<name>_0`, `<name>_1`, ... for vectors; vector
    cells may be lists (JSON lines, Parquet) or JSON text (CSV). Columns that are
    not features (ids) are copied to the output, followed by the predictions:
    class name and probability for classification, the value(s) for regression;
    a prediction column whose name the input already has (the true label, say)
    is written as `<name>_predicted`. A `columns: {start, stop}` feature is read
    from the columns the training file had at those positions, by name.

    Returns:
        The number of rows written.
    """
    from kerasflow.data.features import plain

    _format(Path(output_file), "--output")  # refuse a bad output name before any work
    run = RunDir(run_dir)
    files = run.read(need_model=True)
    spec = files.spec
    names = spec.model.inputs if spec.model.inputs is not None else list(spec.data.features)
    if Path(input_file).is_dir():
        frame, rows = _read_folder(Path(input_file), {n: spec.data.features[n] for n in names})
    else:
        frame, rows = _read_table(Path(input_file), "--input")
    features, used = {}, set()
    for name in names:
        features[name], cols = _feature_values(frame, name, spec.data.features[name], rows,
                                               files.stats.get(name, {}).get("columns"))
        used |= set(cols)
    model = run.load_model(files)
    preds = _predict(model, features, int(plain(spec.data.batch_size)))
    out = frame[[c for c in frame.columns if c not in used]].copy()
    for name, info in files.targets.items():
        if name in preds:
            for column, values in _prediction_columns(name, info, np.asarray(preds[name])).items():
                # an input column of that name (often the true label) is kept, not overwritten
                out[f"{column}_predicted" if column in frame.columns else column] = values
    _write_table(out, Path(output_file))
    return len(out)


def _format(path: Path, option: str) -> str:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise SpecError(Problem(path=option, message=f"unsupported file type `{path.suffix}` ({path})",
                                expected="one of: " + ", ".join(sorted(_READERS))))
    return kind


def _predict(model, features: dict, batch_size: int) -> dict:
    """Model outputs for raw feature arrays. Through tf.data, because Keras'
    array adapters refuse the object arrays that string features arrive as."""
    import tensorflow as tf

    inputs = {k: tf.constant(v.astype(str)) if v.dtype == object else v for k, v in features.items()}
    ds = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return model.predict(ds, verbose=0)


def _read_table(path: Path, option: str):
    """The input rows, and a `Table` that turns a row index into a file line for errors."""
    import pandas as pd

    from kerasflow.data.sources import Table

    kind = _format(path, option)
    if not path.is_file():
        what = "not a regular file" if path.exists() else "file not found"
        raise SpecError(Problem(path=option, message=f"{what}: {path}"))
    try:
        if kind == "csv":
            frame = pd.read_csv(path)
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise SpecError(Problem(path=option, message=f"cannot read {path.name} as {kind}: {message}",
                                hint=str(path))) from None
    if len(frame) == 0:
        raise SpecError(Problem(path=option, message=f"{path.name} has no rows to predict",
                                expected="at least one row of features", hint=str(path)))
    first_line = {"csv": 2, "jsonl": 1}.get(kind)  # parquet has no lines
    return frame, Table({}, origin=str(path), first_line=first_line)


def _read_folder(folder: Path, features: dict):
    """A table of the image files under `folder`, for a model whose only input is an image."""
    import pandas as pd

    from kerasflow.data.sources import Table
    from kerasflow.data.sources.folders import IMAGE_SUFFIXES

    if len(features) != 1 or next(iter(features.values())).type != "image":
        raise SpecError(Problem(path="--input", message=f"{folder} is a folder; folders of images work only for "
                                "a model whose one input is an image feature",
                                expected="a CSV/Parquet/JSON lines file", received=f"inputs: {', '.join(features)}"))
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SpecError(Problem(path="--input", message=f"no image files in {folder}",
                                expected="files ending in " + ", ".join(IMAGE_SUFFIXES)))
    name, feature = next(iter(features.items()))
    column = feature.column if isinstance(feature.column, str) else name
    return pd.DataFrame({"file": files, column: files}), Table({}, origin=str(folder))


def _write_table(frame, path: Path) -> None:
    kind = _format(path, "--output")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame = frame.map(lambda v: json.dumps(v) if isinstance(v, list) else v)
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)


def _feature_values(frame, name: str, feature, rows, trained: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """The model input of feature `name` from its column(s), checked like training data:
    a bad cell names the column and the row (and line) of the input file. `trained`:
    the training file's columns of a `columns: {start, stop}` feature."""
    from kerasflow.data.columns import as_strings, check_present, to_float
    from kerasflow.data.features import raw_input_spec

    shape, dtype = raw_input_spec(feature)
    cols = _feature_columns(frame, name, feature, trained)
    col = ", ".join(map(str, cols))
    if getattr(feature, "variable_length", False):  # token lists of any length ("3 14 15" or JSON lists)
        from kerasflow.data.columns import token_ids

        cells = [json.loads(c) if isinstance(c, str) and c.lstrip().startswith("[") else c for c in frame[cols[0]]]
        return token_ids(feature, np.array(cells + [None], dtype=object)[:-1], "--input", cols[0]), cols
    values = frame[cols].to_numpy() if len(cols) > 1 else _cells(frame[cols[0]], cols[0], shape, rows)
    if feature.type == "image" and values.dtype.kind in "OUS" and values.ndim == 1:
        values = _decode_images(values, feature)
    if dtype == "string":
        if feature.type == "category":
            check_present(values, "--input", rows, col)
        values = as_strings(values)
    else:
        values = to_float(values, "--input", rows, col)
        if np.dtype(dtype).kind in "iu" and not np.all(values == np.round(values)):
            bad = int(np.flatnonzero((values != np.round(values)).reshape(len(values), -1).any(axis=1))[0])
            raise SpecError(Problem(path="--input", message=f"non-integer value in column `{col}` at "
                                    f"{rows.where(bad)}", expected=f"integers ({dtype})"))
        values = values.astype(dtype)
    fixed = [d for d in shape if d is not None]
    try:
        values = values.reshape((len(frame),) + tuple(shape)) if len(fixed) == len(shape) else values
    except ValueError:
        raise SpecError(Problem(path=f"data.features.{name}", message=f"input `{name}` has the wrong size",
                                expected=f"{int(np.prod(shape))} values per row (shape {list(shape)})",
                                received=f"{values.size // max(len(frame), 1)} per row")) from None
    return values, cols


def _cells(column, col: str, shape: tuple, rows) -> np.ndarray:
    """One column's cells as an array; vector cells (lists, or JSON text in CSV) as rows."""
    cells = list(column)
    vectors = [i for i, c in enumerate(cells) if isinstance(c, (list, np.ndarray))
               or (isinstance(c, str) and c.lstrip().startswith("["))]
    if not vectors:
        return column.to_numpy()
    for i in vectors:
        if isinstance(cells[i], str):
            try:
                cells[i] = json.loads(cells[i])
            except ValueError:
                raise SpecError(Problem(path="--input", message=f"column `{col}` at {rows.where(i)} is not a "
                                        "JSON list", expected="a number, or a list such as [1, 2, 3]",
                                        received=cells[i][:60])) from None
    sizes = {i: int(np.size(cells[i])) for i in range(len(cells))}
    wanted = int(np.prod([d for d in shape if d is not None])) if None not in shape else None
    for i, n in sizes.items():
        if n != (wanted or sizes[0]):
            raise SpecError(Problem(path="--input", message=f"column `{col}` at {rows.where(i)} holds {n} value(s)",
                                    expected=f"{wanted or sizes[0]} values per row"))
    try:
        return np.asarray([np.asarray(c, dtype=object).reshape(-1) for c in cells])
    except ValueError as exc:  # nested lists of uneven depth
        raise SpecError(Problem(path="--input", message=f"column `{col}` holds lists of uneven shape: {exc}")) from None


def _feature_columns(frame, name: str, feature, trained: list[str] | None = None) -> list[str]:
    """The input columns holding feature `name` (see `predict_run`)."""
    column = feature.column
    if trained and all(c in frame.columns for c in trained):
        return list(trained)
    if isinstance(column, list) and feature.type != "timeseries":
        if all(c in frame.columns for c in column):
            return list(column)
        wanted = f"the columns {', '.join(column)}"
    else:
        candidates = [c for c in (column if isinstance(column, str) else None, name) if c]
        for candidate in candidates:
            if candidate in frame.columns:
                return [candidate]
        for candidate in candidates:
            numbered = {str(c)[len(candidate) + 1:]: c for c in frame.columns if str(c).startswith(f"{candidate}_")}
            numbered = {int(k): c for k, c in numbered.items() if k.isdigit()}
            if numbered and sorted(numbered) == list(range(len(numbered))):
                return [numbered[i] for i in range(len(numbered))]
        wanted = f"a column `{candidates[0]}` (or `{candidates[0]}_0`, `{candidates[0]}_1`, ... for a vector)"
        if trained:
            span = feature.columns
            shown = ", ".join(trained[:8]) + (", ..." if len(trained) > 8 else "")
            wanted = f"the columns {shown} (positions {span.start}..{span.stop - 1} of the training file), or {wanted}"
    raise SpecError(Problem(path=f"data.features.{name}", message=f"no input column for feature `{name}`",
                            expected=wanted, received="columns: " + ", ".join(map(str, frame.columns[:20]))))


def _decode_images(paths: np.ndarray, feature) -> np.ndarray:
    """Pixels of image files named in the input (as training reads them: float 0..255, resized)."""
    import tensorflow as tf

    from kerasflow.data.images import decode_image
    from kerasflow.data.sources.folders import check_images

    files = [Path(str(p)) for p in paths]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise SpecError(Problem(path="--input", message=f"image file not found: {missing[0]}",
                                hint=f"{len(missing)} file(s) missing; paths are relative to the working directory"))
    check_images(files, key="--input")
    return np.stack([decode_image(tf.io.read_file(str(f)), feature.height, feature.width, feature.channels).numpy()
                     for f in files])


def _prediction_columns(name: str, info: dict, pred: np.ndarray) -> dict[str, Any]:
    kind = info.get("type")
    if kind in ("category", "binary"):
        names = info.get("class_names") or [str(i) for i in range(int(info["num_classes"]))]
        index = predicted_classes(pred).reshape(-1)
        # One sigmoid unit: the probability of the positive class; else that of the predicted one.
        probability = pred.reshape(-1) if pred.shape[-1] == 1 else pred.max(axis=-1)
        return {name: [names[i] for i in index], f"{name}_probability": probability.astype(float)}
    if kind == "sequence":
        return {name: [row.tolist() for row in predicted_classes(pred)]}
    flat = pred.reshape(len(pred), -1)
    if flat.shape[1] == 1:
        return {name: flat[:, 0].astype(float)}
    return {f"{name}_{i}": flat[:, i].astype(float) for i in range(flat.shape[1])}
