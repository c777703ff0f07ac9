"""The smaller sections: `tuning`, `tracking`, `export`."""

from typing import Literal

from pydantic import Field, NonNegativeFloat

from kerasflow.spec.base import Count, SafeLabel, SafeName, Seed, SpecModel


class Objective(SpecModel):
    name: str = Field(description="A metric training logs, e.g. val_accuracy.")
    direction: Literal["min", "max"] = Field(description="Whether smaller (min) or larger (max) is better.")


class TuningSpec(SpecModel):
    """KerasTuner search over the `{tune: ...}` markers of the spec."""

    tuner: Literal["random", "bayesian", "hyperband", "grid"] = Field(
        "random", description="KerasTuner tuner: RandomSearch, BayesianOptimization, Hyperband or GridSearch.")
    objective: str | Objective = Field("val_loss", description="Metric name (direction inferred) or {name, direction}.")
    max_trials: Count = Field(10, description="Most trials the search runs.")
    executions_per_trial: Count = Field(1, description="Models trained per trial; the score is their mean.")
    max_consecutive_failed_trials: Count = Field(3, description="The search stops after this many failed trials in a row.")
    max_epochs: Count | None = Field(None, description="hyperband: most epochs a trial trains.")
    factor: int = Field(3, ge=2, description="hyperband: reduction factor.")
    num_initial_points: Count | None = Field(
        None, description="bayesian: random trials before the Gaussian process guides the search "
        "(default: 3 per hyperparameter).")
    stage: str | None = Field(None, description="Last training stage a trial runs; trials run every "
                                "stage up to it (default: the last).")
    seed: Seed | None = Field(None, description="Seed of the tuner (default: the spec seed).")

    def objective_name(self) -> str:
        return self.objective if isinstance(self.objective, str) else self.objective.name


class TrackingSpec(SpecModel):
    """MLflow tracking; defaults to sqlite:///mlflow.db in the working directory."""

    enabled: bool = Field(True, description="false: nothing is sent to MLflow.")
    uri: str | None = Field(None, description="Tracking URI (env MLFLOW_TRACKING_URI, then sqlite:///mlflow.db).")
    experiment: SafeLabel | None = Field(None, description="Experiment name (default: the spec name).")
    run_name: SafeLabel | None = Field(None, description="MLflow run name (default: generated).")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags set on the MLflow run.")
    register_as: str | None = Field(None, description="Register the model under this name.")
    alias: str = Field("champion", description="Alias moved to a better registered version.")
    required: bool = Field(
        True, description="false: an unreachable server only warns; the run is recorded in the local default store.")
    log_model: bool = Field(True, description="Log the trained model (Keras flavor) to the run.")


class ExportSpec(SpecModel):
    """SavedModel export in TF Serving's layout."""

    base_path: str | None = Field(None, description="Directory holding numbered versions (default: models/<name>).")
    model_name: SafeName | None = Field(None, description="Name served by TF Serving (default: the spec name).")
    version: Count | None = Field(None, description="Version number (default: next integer).")
    keep: Count | None = Field(None, description="Keep only the newest N versions.")
    warmup_requests: int = Field(8, ge=0, le=1000, description="Requests written to assets.extra/tf_serving_warmup_requests.")
    atol: NonNegativeFloat = Field(1e-5, description="Parity tolerance between Keras and the SavedModel.")
