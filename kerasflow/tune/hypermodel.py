"""`SpecHyperModel`: a KerasTuner HyperModel whose search space is the spec's
`tune:` markers and whose models come from the same builder and compile code
that `kerasflow train` uses.

Per trial, `build(hp)` declares every marker as a hyperparameter named by its
dotted spec path (inside `hp.conditional_scope` for markers in an
alternative), fills the markers with the trial's values, validates the result
as a spec and builds + compiles it. `fit` runs the trial's stages through
`kerasflow.train.engine`, exactly as `kerasflow train` runs them (freeze and
unfreeze, class weights, callbacks, weight carry-over), with KerasTuner's
callbacks on every stage, on data prepared once per process: preprocessing
statistics are computed once and handed to the builder, never adapted per trial.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from kerasflow.spec.errors import Problem, SpecError
from kerasflow.spec.search_space import Param, find_params, substitute


def declare(hp: kt.HyperParameters, params: list[Param]) -> dict[str, Any]:
    """Declare `params` on `hp`; return the values of the active ones (KerasTuner form)."""
    values: dict[str, Any] = {}
    for p in params:
        with contextlib.ExitStack() as scopes:
            for parent, label in p.conditions:
                scopes.enter_context(hp.conditional_scope(parent, [label]))
            value = _declare_one(hp, p)
        if value is not None:  # None: declared under a condition that does not hold
            values[p.name] = value
    return values


def _declare_one(hp: kt.HyperParameters, p: Param) -> Any:
    m = p.marker
    if p.kind == "int":
        return hp.Int(p.name, m["min"], m["max"], step=m.get("step"), sampling=m.get("sampling", "linear"),
                      default=p.default)
    if p.kind == "float":
        return hp.Float(p.name, float(m["min"]), float(m["max"]), step=m.get("step"),
                        sampling=m.get("sampling", "linear"), default=float(p.default))
    if p.kind == "bool":
        return hp.Boolean(p.name, default=p.default)
    return hp.Choice(p.name, p.choices, default=p.default)


class SpecHyperModel(kt.HyperModel):
    """The models a spec describes, one per set of hyperparameter values.

    Args:
        loaded: the `LoadedSpec` with markers (its `raw` is the search space).
        data: a `PreparedData` to train on; default: prepared on first use from
            the spec with every marker at its default (a chief never needs it).
        stage: name of the last training stage trials run (default: the last,
            so a trial trains what `kerasflow train` trains); Hyperband's epoch
            budget applies to it.
        verbose: Keras `fit` verbosity (0: quiet).
    """

    def __init__(self, loaded, *, data=None, stage: str | None = None, verbose: int | str = 0):
        super().__init__(name=loaded.spec.name, tunable=True)
        self.loaded = loaded
        self.params = find_params(loaded.raw)
        self.stage = stage
        self.verbose = verbose
        self._data = data
        self.trial_dir: Path | None = None
        self._builds = 0
        self.stage_of(loaded.spec)  # an unknown stage name fails now, not in every trial

    # -- search space ------------------------------------------------------

    def declare_hyperparameters(self, hp: kt.HyperParameters) -> None:
        declare(hp, self.params)

    def values(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """The active values of a trial (declaring the space on `hp` if needed)."""
        return declare(hp, self.params)

    def resolve(self, hp: kt.HyperParameters, *, seed_offset: int = 0):
        """The trial's spec: markers filled with `hp` values, validated.

        Raises:
            keras_tuner.errors.FailedTrialError: the values do not make a valid spec.
        """
        from kerasflow.spec.loader import load_spec_dict

        raw = substitute(self.loaded.raw, self.values(hp))
        raw["seed"] = int(raw.get("seed", 42)) + seed_offset
        try:
            return load_spec_dict(raw, self.loaded.locs)
        except SpecError as err:
            raise kt.errors.FailedTrialError(f"these values make an invalid spec:\n{err}") from err

    @property
    def data(self):
        if self._data is None:
            from kerasflow.data.pipeline import prepare_data
            from kerasflow.spec.loader import load_spec_dict

            self._data = prepare_data(load_spec_dict(substitute(self.loaded.raw, {}), self.loaded.locs).spec)
        return self._data

    def begin_trial(self, trial_dir: str | Path) -> None:
        """Called by the tuner before each trial: where its files go; executions restart at 0."""
        self.trial_dir = Path(trial_dir)
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        self._builds = 0

    # -- one trial ---------------------------------------------------------

    def build(self, hp: kt.HyperParameters):
        """Build and compile (for its first stage) the trial's model exactly as
        `kerasflow train` would.

        Each execution of a trial (`executions_per_trial`) starts from its own
        seed, so repeated executions average over initializations.
        """
        from kerasflow.model.builder import build_model
        from kerasflow.train.compile import compile_model

        loaded = self.resolve(hp, seed_offset=self._builds)
        self._builds += 1
        data = self.data
        try:
            model = build_model(loaded, data.stats)
            compile_model(model, loaded.spec, stage=0, steps_per_epoch=1, targets=data.targets)
        except Exception as err:  # a shape error is a property of these values: the trial fails
            raise kt.errors.FailedTrialError(f"the model cannot be built: {err}") from err
        return model

    def fit(self, hp: kt.HyperParameters, model, *args, callbacks=None, epochs=None, initial_epoch: int = 0,
            **kwargs) -> dict[str, float]:
        """Train the trial's stages through the training engine; return the final
        model's metrics (validation metrics of the model as training ends it,
        which is the model `best.yaml` retrains).

        `epochs`/`initial_epoch` given by the tuner (Hyperband) are the budget of
        the last stage; a continued Hyperband trial (`initial_epoch > 0`) starts
        from a model that already ran the earlier stages.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN or infinite.
        """
        from kerasflow.train.engine import Session, keras_fit, run_stages

        loaded = self.resolve(hp)
        spec = loaded.spec
        last, final = self.stage_of(spec)
        stages = spec.training.stages[:last + 1]
        state: dict = {"stages": {}, "epoch": 0}
        epochs_of = None
        if epochs is not None:
            if initial_epoch:
                state["stages"] = {s.name: {"done": True} for s in stages[:-1]}
                state["epoch"] = sum(int(s.epochs) for s in stages[:-1]) + int(initial_epoch)

            def epochs_of(stage):
                return int(epochs) - int(initial_epoch) if stage.name == final.name else int(stage.epochs)

        last_logs = _LastLogs()
        session = Session(loaded=loaded, model=model, data=self.data, run_dir=self.trial_dir or Path("."),
                          state=state, resumable=False, extra_callbacks=(*(callbacks or []), last_logs),
                          last_stage=last, epochs_of=epochs_of, quiet=not self.verbose)
        try:
            run_stages(session, keras_fit)
        except SpecError as err:  # a NaN loss: a property of these values
            raise kt.errors.FailedTrialError(str(err)) from err
        if last_logs.bad is not None:
            raise kt.errors.FailedTrialError(f"the loss became {last_logs.bad[1]} at epoch {last_logs.bad[0] + 1}")
        metrics = dict(last_logs.logs)
        if self.data.validation is not None:  # early stopping may have restored an earlier epoch's weights
            results = model.evaluate(self.data.validation, return_dict=True, verbose=0)
            metrics.update({f"val_{k}": float(v) for k, v in results.items()})
        return metrics

    # -- helpers -----------------------------------------------------------

    def stage_of(self, spec) -> tuple[int, Any]:
        """(index, stage) of the last training stage trials run."""
        stages = spec.training.stages
        names = [s.name for s in stages]
        if self.stage is None:
            return len(stages) - 1, stages[-1]
        if self.stage not in names:
            raise SpecError(Problem(path="tuning.stage", message=f"`{self.stage}` is not a training stage",
                                    expected="one of: " + ", ".join(names)))
        return names.index(self.stage), stages[names.index(self.stage)]


class _LastLogs(keras.callbacks.Callback):
    """The last epoch's logs over all stages, and the first epoch whose loss was not finite."""

    def __init__(self):
        super().__init__()
        self.logs: dict[str, float] = {}
        self.bad: tuple[int, float] | None = None

    def on_epoch_end(self, epoch, logs=None):
        self.logs = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        loss = self.logs.get("loss")
        if loss is not None and not math.isfinite(loss) and self.bad is None:
            self.bad = (epoch, loss)
