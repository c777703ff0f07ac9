"""Terminal tables for the CLI (rich): evaluation results and pipeline summaries."""

from __future__ import annotations

from typing import Any


def _console():
    from rich.console import Console

    return Console()


def print_evaluation(result: dict) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{result['split']} split of {result['run_dir']} ({result['examples']} examples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    if result.get("data_changed"):
        console.print("[yellow]note: the data changed since this run trained (fingerprint differs)[/yellow]")
    for target, report in result.get("per_class", {}).items():
        per = Table(title=f"per class: {target}")
        for col in ("class", "precision", "recall", "f1", "support"):
            per.add_column(col, justify="left" if col == "class" else "right")
        for row in report["classes"]:
            per.add_row(row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                        str(row["support"]))
        for avg in ("macro", "weighted"):
            r = report[avg]
            per.add_row(f"[bold]{avg} avg[/bold]", f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", "")
        console.print(per)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def print_pipeline_summary(result) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"pipeline {result.run_dir}")
    for col in ("stage", "status", "seconds", "outputs"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for o in result.outcomes:
        shown = {k: v for k, v in o.outputs.items() if k in SUMMARY_KEYS}
        table.add_row(o.name, o.status, f"{o.seconds:.1f}", _fmt(shown))
    console.print(table)


SUMMARY_KEYS = ("metrics", "best_values", "best_score", "export_path", "version", "mlflow_run_id", "mlflow_url",
                "alias_moved", "served_rows", "max_abs_diff", "run_dir", "registered_version")
