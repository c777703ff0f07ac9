"""PNG plots of a run: learning curves, a confusion matrix per classification
target, predicted vs actual per numeric target.

`learning_curves` and `plot_predictions` hand the drawing to the background
worker (`kerasflow.track.worker`), so training goes on while matplotlib
imports and renders; the files are complete once the run has ended (its
`RunTracker.end`) and before the worker uploads them. The `draw_*` functions
(in `kerasflow.train.figures`) draw here and now.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasflow.train import figures

_MAX_CONFUSION_CLASSES = 50  # beyond this a matrix is unreadable


def plot_predictions(plots_dir: Path, y_true: dict, y_pred: dict, targets: dict) -> list[Path]:
    """A confusion matrix per classification target, predicted vs actual per
    numeric target, drawn in the background; returns the files being written."""
    from kerasflow.train.evaluate import predicted_classes

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, info in targets.items():
        if name not in y_pred:
            continue
        kind = info.get("type")
        if kind in ("category", "binary", "sequence") and int(info.get("num_classes") or 0) <= _MAX_CONFUSION_CLASSES:
            classes = info.get("class_names") or [str(i) for i in range(int(info["num_classes"]))]
            path = plots_dir / f"confusion_matrix_{name}.png"
            _draw("draw_confusion_matrix", np.asarray(y_true[name]).reshape(-1),
                  predicted_classes(y_pred[name]).reshape(-1), classes, path, title=name)
        elif kind == "numeric":
            path = plots_dir / f"predicted_vs_actual_{name}.png"
            actual, predicted = figures.sample_points(y_true[name], y_pred[name])
            _draw("draw_predicted_vs_actual", actual, predicted, path, title=name)
        else:
            continue
        written.append(path)
    return written


def learning_curves(rows: list[dict], path: Path) -> Path:
    """`draw_learning_curves` in the background; returns the file being written."""
    _draw("draw_learning_curves", rows, Path(path))
    return Path(path)


def prepare_in_background() -> None:
    """Have the background worker import matplotlib and load its fonts now, so
    the run's plots cost less when it ends."""
    try:
        from kerasflow.track.worker import worker

        worker().call(0, "prepare_plots", wait=False)
    except Exception:  # only a head start
        pass


def _draw(name: str, *args, **kwargs) -> None:
    args = tuple(a.absolute() if isinstance(a, Path) else a for a in args)  # the worker has its own directory
    try:
        from kerasflow.track.worker import worker

        worker().call(0, "draw", name, *args, wait=False, **kwargs)
    except Exception:  # no background process here: draw on this thread
        getattr(figures, name)(*args, **kwargs)
