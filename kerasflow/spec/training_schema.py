"""The `training` section: compile settings and an ordered list of stages."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, NonNegativeFloat, PositiveFloat, PositiveInt, confloat, model_validator

from kerasflow.spec.base import TAG_PREFIX, SpecModel, Tunable, is_marker

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "lamb")


class _Schedule(SpecModel):
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps in front of the schedule.")


class ConstantSchedule(_Schedule):
    type: Literal["constant"]
    value: Tunable[PositiveFloat]


class ExponentialSchedule(_Schedule):
    type: Literal["exponential"]
    initial: Tunable[PositiveFloat]
    decay_steps: PositiveInt
    decay_rate: PositiveFloat
    staircase: bool = False


class PiecewiseSchedule(_Schedule):
    type: Literal["piecewise"]
    boundaries: list[int] = Field(min_length=1)
    values: list[PositiveFloat] = Field(min_length=2)

    @model_validator(mode="after")
    def _lengths(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"expected len(values) == len(boundaries) + 1, received {len(self.values)} and {len(self.boundaries)}")
        return self


class CosineSchedule(_Schedule):
    type: Literal["cosine", "cosine_restarts"]
    initial: Tunable[PositiveFloat]
    decay_steps: PositiveInt
    alpha: NonNegativeFloat = 0.0
    t_mul: PositiveFloat = 2.0
    m_mul: PositiveFloat = 1.0


class PolynomialSchedule(_Schedule):
    type: Literal["polynomial"]
    initial: Tunable[PositiveFloat]
    decay_steps: PositiveInt
    end: NonNegativeFloat = 1e-4
    power: PositiveFloat = 1.0


class InverseTimeSchedule(_Schedule):
    type: Literal["inverse_time"]
    initial: Tunable[PositiveFloat]
    decay_steps: PositiveInt
    decay_rate: PositiveFloat


Schedule = Annotated[
    Union[ConstantSchedule, ExponentialSchedule, PiecewiseSchedule, CosineSchedule, PolynomialSchedule, InverseTimeSchedule],
    Field(discriminator="type"),
]


def _lr_tag(value) -> str:
    return SCHEDULE_TAG if isinstance(value, (dict, _Schedule)) and not is_marker(value) else RATE_TAG


SCHEDULE_TAG = TAG_PREFIX + "schedule"
RATE_TAG = TAG_PREFIX + "rate"
LearningRate = Annotated[
    Union[Annotated[Tunable[PositiveFloat], Tag(RATE_TAG)], Annotated[Schedule, Tag(SCHEDULE_TAG)]],
    Discriminator(_lr_tag),
]


class Optimizer(SpecModel):
    """A Keras optimizer with clipping and weight decay."""

    type: Tunable[Literal[OPTIMIZERS]] = "adam"
    learning_rate: LearningRate = Field(1e-3, description="A float or a schedule.")
    clipnorm: PositiveFloat | None = None
    clipvalue: PositiveFloat | None = None
    global_clipnorm: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None
    momentum: Tunable[confloat(ge=0, lt=1)] | None = Field(None, description="sgd and rmsprop only.")
    nesterov: bool | None = Field(None, description="sgd only.")
    beta_1: confloat(gt=0, lt=1) | None = None
    beta_2: confloat(gt=0, lt=1) | None = None
    epsilon: PositiveFloat | None = None

    @model_validator(mode="after")
    def _clipping(self):
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError("expected at most one of clipnorm and global_clipnorm, received both")
        return self


class EarlyStopping(SpecModel):
    monitor: str = "val_loss"
    patience: int = Field(3, ge=0)
    min_delta: NonNegativeFloat = 0.0
    mode: Literal["auto", "min", "max"] = "auto"
    restore_best_weights: bool = True


class ReduceLROnPlateau(SpecModel):
    monitor: str = "val_loss"
    factor: confloat(gt=0, lt=1) = 0.5
    patience: int = Field(2, ge=0)
    min_lr: NonNegativeFloat = 0.0
    mode: Literal["auto", "min", "max"] = "auto"


class ModelCheckpoint(SpecModel):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    save_best_only: bool = True


class TensorBoard(SpecModel):
    histogram_freq: int = Field(0, ge=0)
    update_freq: Literal["epoch", "batch"] | PositiveInt = "epoch"


class CsvLogger(SpecModel):
    append: bool = True


class Callbacks(SpecModel):
    """Keras callbacks by name; each key enables one."""

    early_stopping: EarlyStopping | None = None
    reduce_lr_on_plateau: ReduceLROnPlateau | None = None
    model_checkpoint: ModelCheckpoint | None = None
    tensorboard: TensorBoard | None = None
    csv_logger: CsvLogger | None = None
    terminate_on_nan: bool = True


class Stage(SpecModel):
    """One fit() call with its own epochs, optimizer, callbacks and frozen nodes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    epochs: Tunable[PositiveInt] = Field(description="Epochs in this stage (epoch numbers continue across stages).")
    optimizer: Optimizer = Field(default_factory=Optimizer)
    callbacks: Callbacks = Field(default_factory=Callbacks)
    freeze: list[str] = Field(default_factory=list, description="Node-name globs whose weights are frozen.")
    unfreeze: list[str] = Field(default_factory=list, description="Node-name globs made trainable again.")
    batch_size: Tunable[PositiveInt] | None = Field(None, description="Overrides data.batch_size for this stage.")
    steps_per_epoch: PositiveInt | None = None


class TrainingSpec(SpecModel):
    """How the model is compiled and fitted."""

    loss: str | dict[str, str] = Field(description="Keras loss name, or one per output.")
    metrics: list[str] | dict[str, list[str]] = Field(default_factory=list)
    loss_weights: dict[str, NonNegativeFloat] | None = None
    class_weight: Literal["balanced"] | dict[str, NonNegativeFloat] | None = None
    stages: list[Stage] = Field(min_length=1)
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: PositiveInt = 1
    mixed_precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    distribution: Literal["default", "mirrored", "one_device", "multi_worker"] = "default"
    deterministic: bool = False

    def metric_names(self) -> set[str]:
        """Names Keras logs for these metrics, with and without `val_`, including the loss."""
        names = {"loss"}
        if isinstance(self.metrics, dict):
            for out, ms in self.metrics.items():
                names |= {f"{out}_{m}" for m in ms} | set(ms)
        else:
            names |= set(self.metrics)
        if isinstance(self.loss, dict):
            names |= {f"{out}_loss" for out in self.loss}
        aliases = {"acc": "accuracy"}
        names |= {aliases[n] for n in names if n in aliases}
        return names | {f"val_{n}" for n in names}
