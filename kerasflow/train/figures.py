"""The figures of a run, drawn here and now: learning curves, a confusion
matrix, predicted vs actual. Uses matplotlib's object API on the Agg canvas:
no pyplot, no display, no global state. `kerasflow.train.plots` decides what
to draw and hands it to the background worker, which calls these."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_MAX_SCATTER_POINTS = 5000
_PANELS_PER_ROW = 3


def sample_points(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """At most 5000 (actual, predicted) pairs, the same ones every time."""
    actual = np.asarray(y_true, dtype=float).reshape(-1)
    predicted = np.asarray(y_pred, dtype=float).reshape(-1)
    if len(actual) > _MAX_SCATTER_POINTS:
        keep = np.random.default_rng(0).choice(len(actual), _MAX_SCATTER_POINTS, replace=False)
        actual, predicted = actual[keep], predicted[keep]
    return actual, predicted


def prepare() -> None:
    """Import matplotlib and load its fonts now (the first figure pays both, about
    a second): the background worker does this while the model trains."""
    import io

    fig = _figure(1, 1)
    fig.add_subplot(1, 1, 1).set_title("warm-up")
    fig.savefig(io.BytesIO(), format="png")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def draw_learning_curves(rows: list[dict], path: Path) -> Path:
    """One panel per metric (train and validation), at most three panels a row,
    epochs numbered globally, a labelled dashed line where a new stage starts."""
    metrics = []
    for row in rows:
        for key in row:
            base = key[4:] if key.startswith("val_") else key
            if base not in ("epoch", "stage", "learning_rate") and base not in metrics:
                metrics.append(base)
    panels = metrics + ["learning_rate"]
    cols = min(_PANELS_PER_ROW, len(panels))
    rows_n = -(-len(panels) // cols)
    fig = _figure(4.2 * cols, 3.2 * rows_n)
    epochs = np.array([int(r["epoch"]) + 1 for r in rows])
    starts = [(epochs[i] - 0.5, str(rows[i]["stage"])) for i in range(1, len(rows))
              if rows[i]["stage"] != rows[i - 1]["stage"]]
    from matplotlib.ticker import MaxNLocator

    for i, metric in enumerate(panels):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = np.array([r.get(key, np.nan) for r in rows], dtype=float)
            if np.isfinite(values).any():
                ax.plot(epochs, values, marker="o" if len(rows) < 30 else None, markersize=3, label=label)
        for x, stage in starts:
            ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(f"stage {stage}", (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                        textcoords="offset points", fontsize=7, color="grey")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        if metric == "learning_rate":
            rates = [r["learning_rate"] for r in rows if r.get("learning_rate", 0) > 0]
            if rates and max(rates) > 10 * min(rates):
                ax.set_yscale("log")
        elif ax.lines:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    # Fixed margins: tight_layout would render the figure twice.
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=0.5 / height, top=1 - 0.35 / height,
                        wspace=0.38, hspace=0.55)
    fig.savefig(path)
    return path


def draw_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path: Path, *, title: str) -> Path:
    """Counts with rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    # An output wider than the classes seen in the data predicts indices past the names.
    highest = max(len(classes) - 1, int(y_true.max(initial=0)), int(y_pred.max(initial=0)))
    classes = list(classes) + [str(i) for i in range(len(classes), highest + 1)]
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    size = max(4.0, 0.45 * n + 2)
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(n), labels=classes, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    ax.set_title(f"{title}: accuracy {accuracy:.4f}")
    if n <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > threshold else "black")
    fig.subplots_adjust(left=0.7 / size, right=1 - 0.7 / size, bottom=0.6 / size, top=1 - 0.4 / size)
    fig.savefig(path)
    return path


def draw_predicted_vs_actual(y_true, y_pred, path: Path, *, title: str) -> Path:
    """Scatter of predictions against targets (at most 5000 points) with the y = x line."""
    actual, predicted = sample_points(y_true, y_pred)
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(actual, predicted, s=8, alpha=0.6)
    if len(actual):
        lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    mae = float(np.mean(np.abs(actual - predicted))) if len(actual) else float("nan")
    ax.set_title(f"{title}: MAE {mae:.4g}")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.16, right=0.95, bottom=0.12, top=0.92)
    fig.savefig(path)
    return path
