"""The run directory `runs/<name>/<run_id>/` and the files that let evaluate,
predict, export and `--resume` work from it alone.

    spec.resolved.yaml   the resolved spec dict (extends, --set, ${...} applied)
    stats.json           preprocessing state (vocabularies, moments) from the data stage
    targets.json         per target: type, num_classes, class_names
    state.json           finished stages, epochs so far, MLflow run id
    history.csv          one row per epoch, epochs numbered globally across stages
    metrics.json         final test metrics, one flat object
    model.keras          the trained model
    checkpoints/         best-by-monitor models and the backup used by --resume
    plots/               learning curves, confusion matrix / predicted vs actual
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerasflow.spec.errors import Problem, SpecError

SPEC_FILE = "spec.resolved.yaml"
STATS_FILE = "stats.json"
TARGETS_FILE = "targets.json"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
CHECKPOINTS_DIR = "checkpoints"
PLOTS_DIR = "plots"


def new_run_dir(spec_name: str, root: str | os.PathLike = "runs") -> Path:
    """Create `root/<spec_name>/<run_id>/`; run ids sort by UTC start time."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(root) / spec_name / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically: a killed process leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_inputs(run_dir: Path, raw: dict, stats: Any, targets: Any) -> None:
    """Record what the run was trained from, so later verbs need no data stage re-run."""
    import yaml

    tmp = run_dir / f".{SPEC_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100))
    os.replace(tmp, run_dir / SPEC_FILE)
    write_json(run_dir / STATS_FILE, stats)
    write_json(run_dir / TARGETS_FILE, targets)


def read_state(run_dir: Path) -> dict:
    """The resume state (`{}` for a fresh run)."""
    path = Path(run_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass(frozen=True)
class RunFiles:
    """What a finished (or interrupted) run directory holds."""

    run_dir: Path
    loaded: Any  # kerasflow.spec.loader.LoadedSpec
    stats: Any
    targets: dict

    @property
    def spec(self):
        return self.loaded.spec


def read_run(run_dir: str | os.PathLike, *, need_model: bool = False) -> RunFiles:
    """Read the spec, stats and targets of a run directory.

    Raises:
        SpecError: naming the directory and the missing file.
    """
    import yaml

    from kerasflow.spec.loader import load_spec_dict

    run_dir = Path(run_dir)
    required = [SPEC_FILE, STATS_FILE, TARGETS_FILE] + ([MODEL_FILE] if need_model else [])
    missing = [name for name in required if not (run_dir / name).is_file()]
    if missing:
        what = "not a kerasflow run directory" if SPEC_FILE in missing else "the run has not finished training"
        raise SpecError(Problem(path=str(run_dir), message=f"{what}: missing {', '.join(missing)}",
                                expected="a directory written by `kerasflow train` (runs/<name>/<run_id>/)",
                                hint="train first, or resume it with `kerasflow train --resume RUN_DIR`"
                                if SPEC_FILE not in missing else None))
    raw = yaml.safe_load((run_dir / SPEC_FILE).read_text())
    loaded = load_spec_dict(raw)
    stats = json.loads((run_dir / STATS_FILE).read_text())
    targets = json.loads((run_dir / TARGETS_FILE).read_text())
    return RunFiles(run_dir=run_dir, loaded=loaded, stats=stats, targets=targets)
