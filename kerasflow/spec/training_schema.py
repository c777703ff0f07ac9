"""The `training` section: compile settings and an ordered list of stages."""

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, NonNegativeFloat, PositiveFloat, confloat, model_validator

from kerasflow.spec.objectives import Loss, Metrics, metric_log_name
from kerasflow.spec.base import (
    TAG_PREFIX, Choosable, Count, LearningRateValue, NonNegativeFactor, PositiveFactor, SafeName, SpecModel, TuneChoice,
    Tunable, choice_of, is_marker, lazy,
)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion", "lamb")
# Which optimizers take each type-specific option (mirrors the Keras 3 constructors;
# a test pins it to the installed Keras).
_BETAS = ("adam", "adamw", "adamax", "nadam", "lion", "lamb")
OPTIMIZER_OPTIONS = {
    "momentum": ("sgd", "rmsprop"),
    "nesterov": ("sgd",),
    "beta_1": _BETAS,
    "beta_2": _BETAS,
    "epsilon": ("adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "lamb"),
}


class _Schedule(SpecModel):
    warmup_steps: int = Field(0, ge=0, description="Linear warmup from 0 in front of the schedule (in `unit`s).")
    unit: Literal["step", "epoch"] = Field(
        "step", description="Unit of warmup_steps, decay_steps and boundaries: optimizer steps or epochs of the stage."
    )


class ConstantSchedule(_Schedule):
    """A constant rate (useful behind a warmup)."""

    type: Literal["constant"]
    value: Tunable[LearningRateValue] = Field(description="The learning rate.")


class ExponentialSchedule(_Schedule):
    """initial * decay_rate ** (step / decay_steps) (Keras ExponentialDecay)."""

    type: Literal["exponential"]
    initial: Tunable[LearningRateValue] = Field(description="Rate at step 0.")
    decay_steps: Count = Field(description="Steps (or epochs, see `unit`) per decay_rate factor.")
    decay_rate: PositiveFactor = Field(description="Factor applied every decay_steps.")
    staircase: bool = Field(False, description="Decay in discrete jumps instead of continuously.")


class PiecewiseSchedule(_Schedule):
    """Constant rates between boundaries (Keras PiecewiseConstantDecay)."""

    type: Literal["piecewise"]
    boundaries: list[int] = Field(min_length=1, description="Steps (or epochs, see `unit`) where the rate changes.")
    values: list[LearningRateValue] = Field(min_length=2, description="Rates before, between and after the boundaries.")

    @model_validator(mode="after")
    def _lengths(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(f"expected len(values) == len(boundaries) + 1, received {len(self.values)} and {len(self.boundaries)}")
        return self


class CosineSchedule(_Schedule):
    """Cosine decay to alpha * initial; `cosine_restarts` restarts it (SGDR)."""

    type: Literal["cosine", "cosine_restarts"]
    initial: Tunable[LearningRateValue] = Field(description="Rate at step 0.")
    decay_steps: Count = Field(description="Length of the (first) decay, in `unit`s.")
    alpha: NonNegativeFloat = Field(0.0, description="Final rate as a fraction of initial.")
    t_mul: PositiveFactor = Field(2.0, description="cosine_restarts: each period is this much longer.")
    m_mul: PositiveFactor = Field(1.0, description="cosine_restarts: each restart starts this much lower.")


class PolynomialSchedule(_Schedule):
    """Polynomial decay from initial to end over decay_steps (power 1: linear)."""

    type: Literal["polynomial"]
    initial: Tunable[LearningRateValue] = Field(description="Rate at step 0.")
    decay_steps: Count = Field(description="Length of the decay, in `unit`s; the rate stays at end afterwards.")
    end: Annotated[float, Field(ge=0, le=10)] = Field(1e-4, description="Final rate.")
    power: PositiveFactor = Field(1.0, description="Exponent of the polynomial.")


class InverseTimeSchedule(_Schedule):
    """initial / (1 + decay_rate * step / decay_steps) (Keras InverseTimeDecay)."""

    type: Literal["inverse_time"]
    initial: Tunable[LearningRateValue] = Field(description="Rate at step 0.")
    decay_steps: Count = Field(description="Steps (or epochs, see `unit`) per decay_rate increment.")
    decay_rate: PositiveFactor = Field(description="How fast the rate falls.")


Schedule = lazy(
    Union[ConstantSchedule, ExponentialSchedule, PiecewiseSchedule, CosineSchedule, PolynomialSchedule, InverseTimeSchedule],
    "type",
)


def _lr_tag(value) -> str:
    if is_marker(value) and value.get("tune") == "choice" and any(isinstance(v, dict) for v in value.get("values") or []):
        return CHOICE_TAG  # a choice between schedules (or a schedule and a rate)
    if isinstance(value, TuneChoice) and type(value) is not TuneChoice:
        return CHOICE_TAG
    return SCHEDULE_TAG if isinstance(value, (dict, _Schedule)) and not is_marker(value) else RATE_TAG


SCHEDULE_TAG = TAG_PREFIX + "schedule"
RATE_TAG = TAG_PREFIX + "rate"
CHOICE_TAG = TAG_PREFIX + "choice"
LearningRate = Annotated[
    Union[Annotated[Tunable[LearningRateValue], Tag(RATE_TAG)], Annotated[Schedule, Tag(SCHEDULE_TAG)],
          Annotated[choice_of(Union[LearningRateValue, Schedule], "LearningRate"), Tag(CHOICE_TAG)]],
    Discriminator(_lr_tag),
]


class Optimizer(SpecModel):
    """A Keras optimizer with clipping and weight decay."""

    type: Tunable[Literal[OPTIMIZERS]] = Field("adam", description="Keras optimizer.")
    learning_rate: LearningRate = Field(1e-3, description="A float or a schedule.")
    clipnorm: PositiveFactor | None = Field(None, description="Clip each gradient to this norm.")
    clipvalue: PositiveFactor | None = Field(None, description="Clip each gradient element to [-v, v].")
    global_clipnorm: PositiveFactor | None = Field(None, description="Clip all gradients together to this norm.")
    weight_decay: Annotated[float, Field(ge=0, le=1)] | None = Field(None, description="Decoupled weight decay (Keras default if unset).")
    momentum: Tunable[confloat(ge=0, lt=1)] | None = Field(None, description="sgd and rmsprop only.")
    nesterov: bool | None = Field(None, description="sgd only.")
    beta_1: confloat(gt=0, lt=1) | None = Field(None, description="adam, adamw, adamax, nadam, lion, lamb only.")
    beta_2: confloat(gt=0, lt=1) | None = Field(None, description="adam, adamw, adamax, nadam, lion, lamb only.")
    epsilon: PositiveFloat | None = Field(None, description="Numerical stability term (not sgd, ftrl, lion).")

    @model_validator(mode="after")
    def _clipping(self):
        clips = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(clips) > 1:
            raise ValueError(f"expected at most one of clipnorm, clipvalue and global_clipnorm, received {' and '.join(clips)}")
        return self

    @model_validator(mode="after")
    def _options_fit_type(self):
        types = self.type.values if isinstance(self.type, TuneChoice) else [self.type]
        for name in OPTIMIZER_OPTIONS:
            if getattr(self, name) is None:
                continue
            unsupported = [t for t in types if isinstance(t, str) and t not in OPTIMIZER_OPTIONS[name]]
            if unsupported:
                raise ValueError(f"`{name}` is not an option of {', '.join(unsupported)}; "
                                 f"expected one of these optimizers: {', '.join(OPTIMIZER_OPTIONS[name])}")
        return self


_MONITOR = "A logged metric, e.g. val_loss or val_accuracy."
_MODE = "Whether lower (min) or higher (max) is better; auto infers it from the name."


class EarlyStopping(SpecModel):
    """Stop the stage when `monitor` stops improving."""

    monitor: str = Field("val_loss", description=_MONITOR)
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping.")
    min_delta: NonNegativeFloat = Field(0.0, description="Smallest change that counts as an improvement.")
    mode: Literal["auto", "min", "max"] = Field("auto", description=_MODE)
    restore_best_weights: bool = Field(True, description="End the stage with the weights of the best epoch.")


class ReduceLROnPlateau(SpecModel):
    """Multiply the learning rate by `factor` when `monitor` plateaus (needs a plain rate)."""

    monitor: str = Field("val_loss", description=_MONITOR)
    factor: confloat(gt=0, lt=1) = Field(0.5, description="New rate = rate * factor.")
    patience: int = Field(2, ge=0, description="Epochs without improvement before reducing.")
    min_lr: NonNegativeFloat = Field(0.0, description="Lower bound of the rate.")
    mode: Literal["auto", "min", "max"] = Field("auto", description=_MODE)


class ModelCheckpoint(SpecModel):
    """Save the model to checkpoints/<stage>.best.keras when `monitor` improves."""

    monitor: str = Field("val_loss", description=_MONITOR)
    mode: Literal["auto", "min", "max"] = Field("auto", description=_MODE)
    save_best_only: bool = Field(True, description="false: save after every epoch.")


class TensorBoard(SpecModel):
    """TensorBoard logs in <run_dir>/tensorboard."""

    histogram_freq: int = Field(0, ge=0, description="Epochs between weight histograms (0: none).")
    update_freq: Literal["epoch", "batch"] | Count = Field("epoch", description="How often to write metrics.")


class CsvLogger(SpecModel):
    """Keras' CSVLogger to <run_dir>/logs/<stage>.csv (history.csv is always written)."""

    append: bool = Field(True, description="Append to an existing file instead of overwriting it.")


class Callbacks(SpecModel):
    """Keras callbacks by name; each key enables one."""

    early_stopping: EarlyStopping | None = Field(None, description="Stop when a metric stops improving.")
    reduce_lr_on_plateau: ReduceLROnPlateau | None = Field(None, description="Lower the rate on a plateau.")
    model_checkpoint: ModelCheckpoint | None = Field(None, description="Keep the best model of the stage.")
    tensorboard: TensorBoard | None = Field(None, description="Write TensorBoard logs.")
    csv_logger: CsvLogger | None = Field(None, description="Write a per-stage CSV log.")
    terminate_on_nan: bool = Field(True, description="Stop (and fail the run) when the loss becomes NaN/Inf.")


class UnfreezeLayers(SpecModel):
    """Part of a nested model node (a `backbone`) made trainable: its top layers, or those matching a glob."""

    node: str = Field(description="Node-name glob (e.g. the backbone node).")
    top: Count | None = Field(None, description="Unfreeze the last N layers of the nested model (BatchNormalization stays frozen).")
    layers: str | None = Field(None, description="Unfreeze the nested model's layers whose names match this glob.")

    @model_validator(mode="after")
    def _what(self):
        if self.top is None and self.layers is None:
            raise ValueError("expected `top: N` or `layers: <glob>` (or a plain node glob instead of a mapping), "
                             "received neither")
        return self


# A node glob, or a mapping for part of a nested model: told apart by shape, so an
# invalid mapping reports its own problem only (not also "expected a string").
UnfreezeEntry = Annotated[
    Union[Annotated[str, Tag(TAG_PREFIX + "glob")], Annotated[UnfreezeLayers, Tag(TAG_PREFIX + "layers")]],
    Discriminator(lambda v: TAG_PREFIX + ("glob" if isinstance(v, str) else "layers")),
]


class Stage(SpecModel):
    """One fit() call with its own epochs, optimizer, callbacks and frozen nodes."""

    name: SafeName = Field(description="Stage name (unique; names its files).")
    epochs: Tunable[Count] = Field(description="Epochs in this stage (epoch numbers continue across stages).")
    optimizer: Choosable(Optimizer, "Optimizer") = Field(
        default_factory=Optimizer, description="This stage's optimizer (a fresh one), or a `tune: choice` of optimizers.")
    callbacks: Callbacks = Field(default_factory=Callbacks, description="Callbacks of this stage.")
    freeze: list[str] = Field(default_factory=list, description="Node-name globs whose weights are frozen.")
    unfreeze: list[UnfreezeEntry] = Field(
        default_factory=list, description="Node-name globs made trainable again, or {node, top: N | layers: glob} "
        "for the top layers of a nested model (a backbone).")
    batch_size: Tunable[Count] | None = Field(None, description="Overrides data.batch_size for this stage.")
    steps_per_epoch: Count | None = Field(None, description="Batches per epoch (the data repeats); default: one pass.")

    @model_validator(mode="after")
    def _plateau_needs_plain_rate(self):
        optimizers = self.optimizer.values if isinstance(self.optimizer, TuneChoice) else [self.optimizer]
        for optimizer in optimizers:
            rates = optimizer.learning_rate.values if isinstance(optimizer.learning_rate, TuneChoice) \
                else [optimizer.learning_rate]
            for lr in rates:
                if self.callbacks.reduce_lr_on_plateau is not None and isinstance(lr, _Schedule):
                    raise ValueError(f"reduce_lr_on_plateau sets the learning rate itself, so it expects a number as "
                                     f"optimizer.learning_rate, received a `{lr.type}` schedule")
        return self


class TrainingSpec(SpecModel):
    """How the model is compiled and fitted."""

    loss: Loss = Field(description="A Keras loss (a name, or `{type: name, <constructor arguments>}` such as "
                       "`{type: binary_crossentropy, from_logits: true}`), or one per output.")
    metrics: Metrics = Field(
        default_factory=list, description="Keras metrics (names or `{type: name, <constructor arguments>}`; logged "
        "under `name`, else the name as written) for every output, or per output.")
    loss_weights: dict[str, NonNegativeFactor] | None = Field(None, description="Weight of each output's loss.")
    class_weight: Literal["balanced"] | dict[str, NonNegativeFactor] | None = Field(
        None, description="balanced (n / (classes * count), per classification target) or class name/index -> weight.")
    stages: list[Stage] = Field(min_length=1, description="fit() calls in order; weights carry over.")
    jit_compile: bool | Literal["auto"] = Field("auto", description="XLA compilation (auto: Keras decides).")
    steps_per_execution: Count = Field(1, description="Batches run per call into the compiled step.")
    mixed_precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32", description="Keras dtype policy of the model.")
    distribution: Literal["default", "mirrored", "one_device", "multi_worker"] = Field(
        "default", description="tf.distribute strategy (multi_worker: `kerasflow train` and "
        "`kerasflow run`, one process per worker, not tuning; see docs/distributed.md).")
    deterministic: bool = Field(False, description="Deterministic TensorFlow ops (slower; fails on ops without one).")

    def metric_names(self) -> set[str]:
        """Names Keras logs for these metrics, with and without `val_`, including the loss."""
        names = {"loss"}
        if isinstance(self.metrics, dict):
            for out, ms in self.metrics.items():
                logged = {metric_log_name(m) for m in ms}
                names |= {f"{out}_{m}" for m in logged} | logged
        else:
            names |= {metric_log_name(m) for m in self.metrics}
        if isinstance(self.loss, dict):
            names |= {f"{out}_loss" for out in self.loss}
        aliases = {"acc": "accuracy"}
        names |= {aliases[n] for n in names if n in aliases}
        return names | {f"val_{n}" for n in names}
