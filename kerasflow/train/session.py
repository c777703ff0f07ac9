"""What `train` does around the engine, in one process or on one worker:
open (or resume) the run directory, check the spec before any data is read,
prepare the data, own the MLflow run, and after the stages save the model, the
test metrics and the plots, and register the model when the spec says so.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerasflow.runs import HISTORY_FILE, METRICS_FILE, MODEL_FILE, PLOTS_DIR, SPEC_FILE, RunDir
from kerasflow.spec.checks import validation_problems
from kerasflow.spec.errors import Problem, SpecError, join_path, locate


@dataclass
class TrainResult:
    """What `train` produced."""

    run_dir: Path
    model: Any  # keras.Model
    history: dict  # {metric: [value per global epoch]}, plus "epoch" and "stage"
    metrics: dict  # final test metrics, as in metrics.json (`val_*` when there is no test split)
    data: Any  # kerasflow.data.pipeline.PreparedData
    mlflow_run_id: str | None


def open_run(loaded, run_dir, resume) -> tuple[Any, RunDir, dict]:
    """(spec, run directory, state) of a new run in `run_dir` or of the run `resume` continues."""
    if resume is None:
        if loaded is None:
            raise SpecError(Problem(path="", message="nothing to train: give a spec file or --resume RUN_DIR"))
        run = RunDir(run_dir) if run_dir is not None else RunDir.new(loaded.spec.name)
        run.path.mkdir(parents=True, exist_ok=True)
        if run.state().get("stages"):
            raise SpecError(Problem(path=str(run), message="the run directory already holds a run",
                                    hint=f"continue it with --resume {run}, or choose another --run-dir"))
        return loaded, run, {"stages": {}, "epoch": 0}
    run = RunDir(resume)
    files = run.read()
    if loaded is not None and loaded.hash != files.loaded.hash:
        raise SpecError(Problem(path=str(resume), message="the spec differs from the one this run started with",
                                expected=f"spec hash {files.loaded.hash}", received=f"spec hash {loaded.hash}",
                                hint="resume without a spec file (the run keeps its own), or start a new run"))
    return files.loaded, run, run.state() or {"stages": {}, "epoch": 0}


def check_before_data(loaded) -> None:
    """Everything training needs of the spec that shows without data: no
    unresolved `tune:` marker, and the model builds with consistent shapes
    (the checks of `kerasflow plan`)."""
    check_resolved(loaded.spec, loaded.locs)
    check_shapes(loaded)


def check_shapes(loaded) -> None:
    """Build the model's graph without data, as `kerasflow plan` does, so a shape
    error stops a verb before it prepares data (markers at their defaults)."""
    from kerasflow.model.builder import build_graph
    from kerasflow.spec import search_space
    from kerasflow.spec.loader import load_spec_dict

    spec = loaded.spec
    if search_space.defaults(loaded.raw):
        spec = load_spec_dict(search_space.substitute(loaded.raw, {}), loaded.locs).spec
    problems = output_problems(build_graph(spec, None, locs=loaded.locs).model, spec)
    if problems:
        raise SpecError(problems)


def output_problems(model, spec) -> list[Problem]:
    """Model outputs whose shape cannot fit their target (what Keras would only
    report from inside `fit`): a class target needs (batch, classes), a
    sequence target (batch, length, classes), a numeric one its declared shape."""
    from collections.abc import Mapping

    outputs = model.output if isinstance(model.output, Mapping) else {}
    problems = []
    for target in spec.data.targets():
        if target.name not in outputs:
            continue
        shape = tuple(outputs[target.name].shape)
        expected = _expected_shape(target)
        if expected is None:
            continue
        if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
            hint = ("flatten or pool the features before the output layer (e.g. {layer: flatten})"
                    if len(shape) > len(expected) else None)
            problems.append(Problem(
                path=f"model.outputs.{target.name}", message=f"the model's output cannot fit the {target.type} target "
                f"`{target.name}`", expected=f"shape {_text(expected)}", received=f"shape {_text(shape)}", hint=hint))
    return problems


def _expected_shape(target) -> tuple | None:
    if target.type == "category":
        return (None, target.num_classes)  # num_classes None: any width
    if target.type == "binary":
        return (None, None)
    if target.type == "sequence":
        return (None, None, target.num_classes)
    if target.shape:
        return (None, *target.shape)
    return None


def _text(shape: tuple) -> str:
    return "(" + ", ".join("batch" if i == 0 else ("any" if d is None else str(d)) for i, d in enumerate(shape)) + ")"


def check_resolved(spec, locs) -> None:
    """Training values must be values: markers are filled by `kerasflow tune`."""
    from kerasflow.model.builder import unresolved_markers
    from kerasflow.spec.base import TuneBool, TuneChoice, TuneFloat, TuneInt

    problems = unresolved_markers(spec, locs)
    markers = (TuneInt, TuneFloat, TuneChoice, TuneBool)

    def walk(value, path):
        if isinstance(value, markers):
            problems.append(Problem(path=join_path(path), message="unresolved `tune:` marker: training needs a value",
                                    hint="run `kerasflow tune` or set a value, e.g. "
                                         f"--set {'.'.join(map(str, path))}=...",
                                    location=locate(locs or {}, path)))
        elif hasattr(type(value), "model_fields"):
            for key in type(value).model_fields:
                walk(getattr(value, key), path + (key,))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, path + (i,))

    walk(spec.training, ("training",))
    walk(spec.data.batch_size, ("data", "batch_size"))
    if problems:
        raise SpecError(problems)


def prepare_inputs(loaded, run: RunDir, state: dict, data, *, shared: RunDir | None = None):
    """The run's data (prepared unless given), checked against a resumed run's,
    and the files that let later verbs work without it."""
    if data is None:
        from kerasflow.data.pipeline import prepare_data

        data = prepare_data(loaded.spec)
    if state.get("data_fingerprint") not in (None, data.fingerprint):
        raise SpecError(Problem(path="data", message=f"the data changed since {shared or run} started "
                                f"(fingerprint {state['data_fingerprint']} -> {data.fingerprint})",
                                hint="start a new run instead of resuming this one"))
    if data.validation is None and (problems := validation_problems(loaded.spec, loaded.locs)):
        raise SpecError(problems)  # Keras would only warn, and never stop early or keep a best model
    state.update(spec_hash=loaded.hash, data_fingerprint=data.fingerprint)
    run.write_inputs(loaded.raw, data.stats, data.targets)
    return data


@contextlib.contextmanager
def tracking(loaded, run: RunDir, state: dict, tracker=None):
    """The MLflow run of a training run: the caller's `tracker` (not ended here)
    or one from `spec.tracking`, ended FINISHED, KILLED or FAILED. Yields the
    tracker, or None when tracking is off."""
    own = tracker is None
    if own:
        from kerasflow.track.mlflow import RunTracker

        tracker = RunTracker(loaded.spec.tracking.model_dump(), spec_dict=loaded.raw, run_dir=run.path, kind="train")
        tracker.start(resume_run_id=state.get("mlflow_run_id"))
    if tracker.enabled:  # after the start: opening the run never queues behind matplotlib's import
        from kerasflow.train.plots import prepare_in_background

        prepare_in_background()
    state["mlflow_run_id"] = tracker.run_id if tracker.enabled else None
    run.write_state(state)
    with tracker.ending() if own else contextlib.nullcontext():
        yield tracker if tracker.enabled else None


def finish(loaded, model, run: RunDir, state: dict, data, tracker) -> TrainResult:
    """Save the model, test metrics and plots; log them to MLflow and register
    the model as `tracking.register_as` when set.

    Ordered so the tracking worker draws and logs while this process works:
    the plots are handed over first, then the saved model, and evaluation runs
    meanwhile."""
    from kerasflow.train.callbacks import history_dict, read_history
    from kerasflow.train.evaluate import collect_predictions
    from kerasflow.train.plots import learning_curves, plot_predictions

    spec = loaded.spec
    rows = read_history(run / HISTORY_FILE)
    plots = run / PLOTS_DIR
    plots.mkdir(exist_ok=True)
    if rows:
        learning_curves(rows, plots / "learning_curves.png")
    split, ds = ("test", data.test) if data.test is not None else ("validation", data.validation)
    if ds is not None:
        plot_predictions(plots, *collect_predictions(model, ds), data.targets)
    model.save(run / MODEL_FILE)
    model_uri = None
    if tracker is not None and spec.tracking.log_model:
        example = data.sample_inputs(5, split if ds is not None else "train")
        model_uri = tracker.log_model_later(model, input_example=example, model_file=run / MODEL_FILE)
    metrics: dict = {}
    if ds is not None:
        results = model.evaluate(ds, return_dict=True, verbose=0)
        prefix = "test_" if split == "test" else "val_"
        metrics = {prefix + k: float(v) for k, v in results.items()}
    run.write_metrics(metrics)
    if tracker is not None:
        tracker.log_metrics(metrics, step=state["epoch"])
        for name in (SPEC_FILE, "model_summary.txt", HISTORY_FILE, METRICS_FILE):
            tracker.log_artifact(run / name)
        tracker.log_artifacts(plots, "plots")
        if model_uri is not None:
            state["mlflow_model_uri"] = model_uri()  # what `register` registers
    state["finished"] = True
    run.write_state(state)
    return TrainResult(run_dir=run.path, model=model, history=history_dict(rows), metrics=metrics, data=data,
                       mlflow_run_id=state.get("mlflow_run_id"))
