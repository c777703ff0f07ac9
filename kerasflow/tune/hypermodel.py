"""`SpecHyperModel`: a KerasTuner HyperModel whose search space is the spec's
`tune:` markers and whose models come from the same builder and compile code
that `kerasflow train` uses.

Per trial, `build(hp)` declares every marker as a hyperparameter named by its
dotted spec path (inside `hp.conditional_scope` for markers in an
alternative), fills the markers with the trial's values, validates the result
as a spec and builds + compiles it. `fit` trains one stage on data prepared
once per process: preprocessing statistics are computed once and handed to
the builder, never adapted per trial.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import keras_tuner as kt

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
        stage: name of the training stage trials run (default: the first).
        verbose: Keras `fit` verbosity.
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
        self._check_supported(loaded.spec)

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
        """Build and compile the trial's model exactly as `kerasflow train` would.

        Each execution of a trial (`executions_per_trial`) starts from its own
        seed, so repeated executions average over initializations.
        """
        from kerasflow.model.builder import build_model
        from kerasflow.train.compile import compile_model

        loaded = self.resolve(hp, seed_offset=self._builds)
        self._builds += 1
        spec = loaded.spec
        index, stage = self.stage_of(spec)
        data = self.data
        try:
            model = build_model(loaded, data.stats)
            compile_model(model, spec, stage=index, steps_per_epoch=self._steps(spec, stage),
                          targets=data.targets)
        except Exception as err:  # a shape error is a property of these values: the trial fails
            raise kt.errors.FailedTrialError(f"the model cannot be built: {err}") from err
        return model

    def fit(self, hp: kt.HyperParameters, model, *args, callbacks=None, epochs=None, initial_epoch: int = 0,
            **kwargs):
        """Train one stage (its epochs, batch size and callbacks) and return the History.

        `epochs`/`initial_epoch` given by the tuner (hyperband) take precedence.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN or infinite.
        """
        import keras

        from kerasflow.train.callbacks import make_callbacks

        spec = self.resolve(hp).spec
        _, stage = self.stage_of(spec)
        data = self.data
        batch_size = int(stage.batch_size or spec.data.batch_size)
        train_ds = _rebatch(data.train, batch_size, data.batch_size, data.sizes.get("train"))
        val_ds = _rebatch(data.validation, batch_size, data.batch_size, data.sizes.get("validation"))
        if stage.steps_per_epoch:
            train_ds = train_ds.repeat()
        trial_dir = self.trial_dir or Path(".")
        own = [c for c in make_callbacks(stage, run_dir=trial_dir)
               # Resuming inside a trial would mix executions; KerasTuner keeps the best epoch itself.
               if not isinstance(c, (keras.callbacks.BackupAndRestore, keras.callbacks.ModelCheckpoint))]
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=int(epochs or stage.epochs), initial_epoch=initial_epoch,
            steps_per_epoch=stage.steps_per_epoch, callbacks=own + list(callbacks or []),
            verbose=self.verbose,  # not search()'s `verbose`, which is about KerasTuner's own display
        )
        for epoch, loss in zip(history.epoch, history.history.get("loss", [])):
            if not math.isfinite(loss):
                raise kt.errors.FailedTrialError(f"the loss became {loss} at epoch {epoch + 1}")
        return history

    # -- helpers -----------------------------------------------------------

    def stage_of(self, spec) -> tuple[int, Any]:
        """(index, stage) of the training stage trials run."""
        stages = spec.training.stages
        names = [s.name for s in stages]
        if self.stage is None:
            return 0, stages[0]
        if self.stage not in names:
            raise SpecError(Problem(path="tuning.stage", message=f"`{self.stage}` is not a training stage",
                                    expected="one of: " + ", ".join(names)))
        return names.index(self.stage), stages[names.index(self.stage)]

    def _check_supported(self, spec) -> None:
        index, stage = self.stage_of(spec)
        problems = [Problem(path=f"training.stages[{index}].{key}", message=f"tuning does not apply `{key}` yet",
                            hint="tune a stage without it, or tune on the stage that trains from scratch")
                    for key in ("freeze", "unfreeze") if getattr(stage, key)]
        if spec.training.class_weight is not None:
            problems.append(Problem(path="training.class_weight", message="tuning does not apply class weights yet",
                                    hint="remove class_weight while tuning; trials would differ from training"))
        if problems:
            raise SpecError(problems)

    def _steps(self, spec, stage) -> int:
        if stage.steps_per_epoch:
            return int(stage.steps_per_epoch)
        size = self.data.sizes.get("train") or 0
        return max(-(-size // int(stage.batch_size or spec.data.batch_size)), 1)


def _rebatch(ds, batch_size: int, prepared: int, size: int | None):
    """`ds` with `batch_size` examples per batch (trials may tune the batch size).

    `rebatch` loses the cardinality; restoring it (`size` examples) lets Keras
    know the steps per epoch instead of running into the end of the data."""
    if ds is None or batch_size == prepared:
        return ds
    import tensorflow as tf

    ds = ds.rebatch(batch_size)
    if size:
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-size // batch_size)))
    return ds
