"""What a search leaves behind: trial rows, the table of top trials, a plot of
the objective per trial and per hyperparameter, and `best.yaml`."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from kerasflow.runs import write_text
from kerasflow.spec.search_space import Param, substitute

TOP = 10
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Interrupt): ")


def trial_row(trial) -> dict[str, Any]:
    """A KerasTuner `Trial` as plain data: trial_id, status, score, values, message."""
    score = trial.score
    if score is not None and not math.isfinite(float(score)):
        score = None
    message = (trial.message or "").strip()
    return {
        "trial_id": trial.trial_id,
        "status": str(trial.status),
        "score": None if score is None else float(score),
        "values": dict(trial.hyperparameters.values),
        "message": last_error(message) if message else None,
    }


def last_error(message: str) -> str:
    """The final exception of a traceback (KerasTuner stores the whole stack) on one line."""
    lines = message.splitlines()
    starts = [i for i, line in enumerate(lines) if _EXCEPTION.match(line)]
    text = "\n".join(lines[starts[-1]:]) if starts else message
    text = _EXCEPTION.sub("", text, count=1)
    return " ".join(text.split())[:500]


def ranked(rows: list[dict], direction: str) -> list[dict]:
    """Completed trials, best first."""
    done = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    return sorted(done, key=lambda r: r["score"], reverse=direction == "max")


def print_table(rows: list[dict], objective: str, direction: str, *, top: int = TOP, console=None) -> None:
    """A rich table of the best `top` trials, then a count of the failed ones."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    best = ranked(rows, direction)[:top]
    names: list[str] = []
    for r in best:
        names += [k for k in r["values"] if k not in names]
    table = Table(title=f"top {len(best)} of {len(rows)} trials by {objective} ({direction})")
    table.add_column("#", justify="right")
    table.add_column("trial")
    table.add_column(objective, justify="right")
    for name in short_names(names):
        table.add_column(name, overflow="fold")
    for rank, r in enumerate(best, start=1):
        table.add_row(str(rank), r["trial_id"], f"{r['score']:.5g}", *(_fmt(r["values"].get(n)) for n in names))
    console.print(table)
    failed = [r for r in rows if r["status"] != "COMPLETED"]
    if failed:
        shown = "; ".join(f"{r['trial_id']}: {r['message'] or r['status']}" for r in failed[:5])
        console.print(f"{len(failed)} trial(s) failed: {shown}" + (" ..." if len(failed) > 5 else ""))


def short_names(names: list[str]) -> list[str]:
    """The shortest dotted suffix that still tells each name apart
    (`training.stages[0].optimizer.learning_rate` -> `learning_rate`)."""
    parts = [n.split(".") for n in names]
    out = []
    for mine in parts:
        for k in range(1, len(mine) + 1):
            tail = mine[-k:]
            if sum(other[-k:] == tail for other in parts) == 1:
                break
        out.append(".".join(tail))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"  # inactive in this trial (its alternative was not chosen)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_trials(rows: list[dict], params: list[Param], objective: str, direction: str, path: Path) -> Path | None:
    """A PNG: the objective per trial (best so far as a line, failures as red x),
    then the objective against each hyperparameter. None when nothing completed."""
    done = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
    if not done:
        return None
    from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure state

    tuned = [p for p in params if any(p.name in r["values"] for r in done)]
    panels = 1 + len(tuned)
    cols = min(3, panels)
    nrows = math.ceil(panels / cols)
    fig = Figure(figsize=(4.5 * cols, 3.4 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    flat = list(axes.flat)
    order = {r["trial_id"]: i for i, r in enumerate(rows)}

    ax = flat[0]
    xs = [order[r["trial_id"]] for r in done]
    ys = [r["score"] for r in done]
    ax.scatter(xs, ys, s=18, label="trial")
    running, best = [], None
    for y in ys:
        best = y if best is None else (max(best, y) if direction == "max" else min(best, y))
        running.append(best)
    ax.step(xs, running, where="post", color="tab:green", label="best so far")
    failed = [order[r["trial_id"]] for r in rows if r["status"] != "COMPLETED"]
    if failed:
        ax.scatter(failed, [min(ys)] * len(failed), marker="x", color="tab:red", label="failed")
    ax.set(xlabel="trial", ylabel=objective, title=f"{objective} per trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)

    for ax, p in zip(flat[1:], tuned):
        pts = [(r["values"][p.name], r["score"]) for r in done if p.name in r["values"]]
        if p.kind in ("int", "float"):
            ax.scatter([x for x, _ in pts], [y for _, y in pts], s=18)
            if p.marker.get("sampling", "linear") != "linear":
                ax.set_xscale("log")
        else:
            cats = [str(c) for c in (p.choices if p.kind == "choice" else [False, True])]
            ax.scatter([cats.index(str(x)) for x, _ in pts], [y for _, y in pts], s=18)
            ax.set_xticks(range(len(cats)), cats, rotation=20, fontsize=7)
        ax.set_title(p.name, fontsize=8)
        ax.set_ylabel(objective, fontsize=8)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def write_best(raw: dict, values: dict[str, Any], path: Path, *, header: str) -> Path:
    """Write the spec with every marker replaced by its best value (atomically).

    A pipeline's `tune` stage is dropped: nothing is left to tune."""
    import yaml

    best = substitute(raw, values)
    if isinstance(best.get("stages"), list):
        best["stages"] = [s for s in best["stages"] if s != "tune"]
    text = yaml.safe_dump(best, sort_keys=False, default_flow_style=None, width=100)
    write_text(path, f"# {header}\n# retrain with: kerasflow train {path}\n{text}")
    return path
