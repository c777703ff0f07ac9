"""The run directory `runs/<name>/<run_id>/` and the files that let evaluate,
predict, export, the pipeline and `--resume` work from it alone.

    spec.resolved.yaml   the resolved spec dict (extends, --set, ${...} applied)
    stats.json           preprocessing state (vocabularies, moments) from the data stage
    targets.json         per target: type, num_classes, class_names
    state.json           finished stages, epochs so far, MLflow run id
    history.csv          one row per epoch, epochs numbered globally across stages
    metrics.json         final test metrics, one flat object
    model.keras          the trained model
    checkpoints/         stage weights, best-by-monitor models, the backup used by --resume
    plots/               learning curves, confusion matrix / predicted vs actual

`RunDir` is the only code that opens these files. A file that is missing or
corrupt is a `SpecError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import shutil
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
RUNS_ROOT = "runs"


def default_dir(spec_name: str, *parts: str) -> Path:
    """`runs/<spec_name>/<parts...>`: where a verb writes when given no directory."""
    return Path(RUNS_ROOT, spec_name, *parts)


def new_run_path(spec_name: str) -> Path:
    """A new run's directory, `runs/<spec_name>/<run_id>/` (not created); run ids sort by UTC start time."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return default_dir(spec_name, f"{stamp}-{secrets.token_hex(3)}")


@contextlib.contextmanager
def removed_if_left_empty(path: str | os.PathLike):
    """On a failure inside the block, remove `path` and those of its parents that
    did not exist before the block and are left empty: a verb that fails before
    writing anything leaves no empty run directory behind. A directory that
    existed before, or that holds anything, is never removed."""
    path = Path(path).absolute()
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for directory in created:
            try:
                directory.rmdir()  # refuses a non-empty directory: whatever was written stays
            except OSError:
                break
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file atomically: a killed process leaves the old file or the new
    one, never half of one (a hidden temporary beside it, then a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, value: Any) -> str:
    """Write JSON atomically (`write_text`). Returns the text written (what
    KerasTuner's `utils.save_json`, which this replaces, returns)."""
    text = json.dumps(value, indent=2, default=_jsonable) + "\n"
    write_text(path, text)
    return text


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class RunDir:
    """A run directory and every file in it.

    Args:
        path: the directory (it need not exist yet).
    """

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def new(cls, spec_name: str) -> "RunDir":
        """Create `runs/<spec_name>/<run_id>/`; run ids sort by UTC start time."""
        path = new_run_path(spec_name)
        path.mkdir(parents=True, exist_ok=False)
        return cls(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------ writing

    def write_inputs(self, raw: dict, stats: Any, targets: Any) -> None:
        """Record what the run was trained from, so later verbs need no data stage re-run."""
        import yaml

        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.path / SPEC_FILE, yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100))
        write_json(self.path / STATS_FILE, stats)
        write_json(self.path / TARGETS_FILE, targets)

    def write_state(self, state: dict) -> None:
        write_json(self.path / STATE_FILE, state)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / METRICS_FILE, metrics)

    # ------------------------------------------------------------ reading

    def state(self) -> dict:
        """The resume state (`{}` for a fresh run)."""
        value = self._json(STATE_FILE, missing={})
        return self._expect(value, dict, STATE_FILE, "a JSON object")

    def metrics(self) -> dict:
        """The final metrics (`{}` when the run has not finished)."""
        value = self._expect(self._json(METRICS_FILE, missing={}), dict, METRICS_FILE, "a JSON object")
        bad = [k for k, v in value.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise self._corrupt(METRICS_FILE, f"metric `{bad[0]}` is not a number", "{name: number}")
        return value

    def read(self, *, need_model: bool = False) -> "RunFiles":
        """The spec, stats and targets of the run, checked against each other.

        Raises:
            SpecError: naming the directory and the missing file, or the corrupt
                file and what is wrong with it.
        """
        self._require([SPEC_FILE, STATS_FILE, TARGETS_FILE] + ([MODEL_FILE] if need_model else []))
        loaded = self.loaded()
        stats = self._expect(self._json(STATS_FILE), dict, STATS_FILE, "a JSON object keyed by feature name")
        bad = [k for k, v in stats.items() if not isinstance(v, dict)]
        if bad:
            raise self._corrupt(STATS_FILE, f"the entry of `{bad[0]}` is not an object", "{feature: {...}}")
        targets = self._targets(loaded.spec)
        return RunFiles(run_dir=self.path, loaded=loaded, stats=stats, targets=targets)

    def loaded(self):
        """The run's own spec (`spec.resolved.yaml`), validated."""
        import yaml

        from kerasflow.spec.loader import load_spec_dict

        self._require([SPEC_FILE])
        file = self.path / SPEC_FILE
        try:
            raw = yaml.safe_load(file.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise self._corrupt(SPEC_FILE, f"not valid YAML ({_first_line(exc)})", "the resolved spec") from None
        except OSError as exc:
            raise self._corrupt(SPEC_FILE, f"cannot be read ({exc.strerror})", "a readable file") from None
        self._expect(raw, dict, SPEC_FILE, "a YAML mapping (the resolved spec)")
        try:
            return load_spec_dict(raw)
        except SpecError as err:
            raise SpecError([Problem(path=f"{file}: {p.path}" if p.path else str(file), message=p.message,
                                     expected=p.expected, received=p.received, hint=p.hint)
                             for p in err.problems]) from None

    def _targets(self, spec) -> dict:
        targets = self._expect(self._json(TARGETS_FILE), dict, TARGETS_FILE, "a JSON object keyed by target name")
        declared = [t.name for t in spec.data.targets()]
        if sorted(targets) != sorted(declared):
            raise self._corrupt(TARGETS_FILE, "its targets are not the spec's", f"targets {declared}",
                                received=str(sorted(targets)))
        for name, info in targets.items():
            if not isinstance(info, dict) or not isinstance(info.get("type"), str):
                raise self._corrupt(TARGETS_FILE, f"the entry of `{name}` has no `type`",
                                    "{target: {type, num_classes, class_names}}")
            n = info.get("num_classes")
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
                raise self._corrupt(TARGETS_FILE, f"`{name}.num_classes` is not a positive integer", "an integer >= 1",
                                    received=repr(n))
            names = info.get("class_names")
            if names is not None and (not isinstance(names, list) or (n is not None and len(names) != n)):
                raise self._corrupt(TARGETS_FILE, f"`{name}.class_names` does not list {n} classes",
                                    f"a list of {n} names", received=repr(names)[:80])
        return targets

    def load_model(self, files: "RunFiles | None" = None):
        """The trained model: rebuilt from spec + stats, weights from `model.keras`,
        so no custom object has to be registered to load it.

        Raises:
            SpecError: the model cannot be rebuilt, or `model.keras` is not a Keras
                file or holds weights that do not fit the spec.
        """
        from kerasflow.model.builder import build_model
        from kerasflow.train.strategy import dtype_policy

        files = files or self.read(need_model=True)
        try:
            with dtype_policy(files.spec.training.mixed_precision):
                model = build_model(files.loaded, files.stats)
        except SpecError:
            raise
        except Exception as exc:  # stats that do not fit the spec's features
            raise self._corrupt(STATS_FILE, f"the model cannot be built from it ({_first_line(exc)})",
                                "the statistics written by the run's data stage") from None
        try:
            model.load_weights(str(self.path / MODEL_FILE))
        except Exception as exc:
            raise self._corrupt(MODEL_FILE, f"its weights cannot be loaded into the model of {SPEC_FILE} "
                                f"({_first_line(exc)})", "the model.keras written by this run") from None
        return model

    # ------------------------------------------------------------ stages

    def stage_weights(self, stage_name: str) -> Path:
        return self.path / CHECKPOINTS_DIR / f"{stage_name}.end.npz"

    def save_stage_weights(self, model, stage_name: str) -> None:
        """The weights a stage ended with, as plain arrays: a `.weights.h5` would
        also hold this stage's optimizer state, which the next stage's (different)
        optimizer cannot load."""
        import numpy as np

        path = self.stage_weights(stage_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, *model.get_weights())
        tmp.replace(path)

    def load_stage_weights(self, model, stage_name: str) -> None:
        import numpy as np

        path = self.stage_weights(stage_name)
        if not path.exists():
            raise SpecError(Problem(path=str(self.path), message=f"cannot resume: {path} is missing",
                                    hint="state.json says the stage finished but its weights are gone; start a new run"))
        try:
            with np.load(path) as arrays:
                model.set_weights([arrays[f"arr_{i}"] for i in range(len(arrays.files))])
        except Exception as exc:
            raise SpecError(Problem(path=str(path), message=f"cannot resume: the stage weights do not fit the model "
                                    f"({_first_line(exc)})", hint="start a new run")) from None

    def backup_dir(self, stage_name: str) -> Path:
        """Where the backup of a running stage lives (its last finished epoch)."""
        return self.path / CHECKPOINTS_DIR / "backup" / stage_name

    def remove_backup(self, stage_name: str) -> None:
        path = self.backup_dir(stage_name)
        shutil.rmtree(path, ignore_errors=True)
        try:
            path.parent.rmdir()  # the shared backup/ directory, once no stage needs it
        except OSError:
            pass

    # ------------------------------------------------------------ helpers

    def _require(self, names: list[str]) -> None:
        missing = [name for name in names if not (self.path / name).is_file()]
        if missing:
            what = "not a kerasflow run directory" if SPEC_FILE in missing else "the run has not finished training"
            raise SpecError(Problem(path=str(self.path), message=f"{what}: missing {', '.join(missing)}",
                                    expected="a directory written by `kerasflow train` (runs/<name>/<run_id>/)",
                                    hint="train first, or resume it with `kerasflow train --resume RUN_DIR`"
                                    if SPEC_FILE not in missing else None))

    def _json(self, name: str, *, missing: Any = None) -> Any:
        file = self.path / name
        if missing is not None and not file.exists():
            return missing
        try:
            return json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._corrupt(name, f"not valid JSON ({_first_line(exc)})", "the JSON this run wrote") from None
        except OSError as exc:
            raise self._corrupt(name, f"cannot be read ({exc.strerror})", "a readable file") from None

    def _expect(self, value: Any, kind: type, name: str, expected: str) -> Any:
        if not isinstance(value, kind):
            raise self._corrupt(name, "it holds the wrong kind of value", expected, received=type(value).__name__)
        return value

    def _corrupt(self, name: str, what: str, expected: str, received: str | None = None) -> SpecError:
        return SpecError(Problem(path=str(self.path / name), message=f"corrupt run file: {what}", expected=expected,
                                 received=received, hint="restore the file, or train a new run"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


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
