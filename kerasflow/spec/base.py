"""Building blocks shared by every spec section: the strict base model,
bounded number types, and `Tunable[T]`, which accepts either a plain value or
a `{tune: ...}` marker.

Validation is strict: YAML's own types are respected (`true` is not 1, `"3"`
is not 3, `3.0` is not an int; an int is a fine float), and every float is
finite. Bounds below are generous but keep absurd values (`units: 10**12`,
`learning_rate: 1e300`) out of the graph builder and the optimizer."""

import functools
import math
import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import core_schema

from kerasflow.spec.errors import did_you_mean
from kerasflow.spec.names import SAFE_NAME_RULE, is_safe_name


class SpecModel(BaseModel):
    """Frozen, strict base: unknown keys are errors, never dropped.

    Schemas are built on first use (`defer_build`): `Spec` builds its sections
    once, and a node type's (or a `lazy` field's member's) schema is built only
    when a spec names it.

    When validated with a `context` dict, unknown keys get a "did you mean"
    suggestion recorded in `context["suggestions"][(id(raw_dict), key)]`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True,
                              strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _suggest_unknown_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and isinstance(info.context, dict):
            allowed = set(cls.model_fields)
            allowed |= {f.alias for f in cls.model_fields.values() if f.alias}
            sugg = info.context.setdefault("suggestions", {})
            for key in data:
                if key not in allowed:
                    sugg[(id(data), key)] = (did_you_mean(key, allowed), sorted(allowed))
        return data


class _Lazy:
    """Pydantic hook behind `lazy`."""

    def __init__(self, tp: Any, discriminator: str | None):
        self.tp, self.discriminator = tp, discriminator
        self.members = get_args(tp) if discriminator else (tp,)
        self.by_tag = {tag: m for m in self.members for tag in get_args(m.model_fields[discriminator].annotation)} \
            if discriminator else {}

    @functools.cached_property
    def adapter(self) -> TypeAdapter:
        """The whole type, as a field of it was validated before: for errors and the JSON Schema."""
        return TypeAdapter(Annotated[self.tp, Field(discriminator=self.discriminator)] if self.discriminator else self.tp)

    def validate(self, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, self.members):
            return value
        if isinstance(value, dict):
            model = self.tp
            if self.discriminator:
                tag = value.get(self.discriminator)
                model = self.by_tag.get(tag) if isinstance(tag, str) else None
            if model is not None:
                return model.model_validate(value, context=info.context)
        return self.adapter.validate_python(value, context=info.context)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Any) -> dict:
        whole = self.adapter.core_schema
        if "ref" in whole:  # one model: a reference to its definition, as an eager field gets
            whole = core_schema.definitions_schema(core_schema.definition_reference_schema(whole["ref"]), [whole])
        return handler(whole)


def lazy(tp: Any, discriminator: str | None = None) -> Any:
    """A field of model type `tp`, or of a union of models told apart by their
    `discriminator` field, validated by the chosen model's own schema: built
    the first time a spec needs it, not with the enclosing schema, so a spec
    pays only for the source, features, schedules and markers it uses (most
    of `kerasflow validate`'s start-up is building schemas).

    Errors are pydantic's own: a mapping naming a member is validated by that
    member (its errors keep their place under the field, without the union
    tag, which an unknown key spelled like the tag used to capture); anything
    else (no or an unknown tag, not a mapping) by the whole union, built then."""
    return Annotated[tp, _Lazy(tp, discriminator)]


# Counts (epochs, steps, vocabulary sizes): anything an int32 shape or loop can hold.
MAX_COUNT = 2**31 - 1
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]
# Widths of a layer (units, filters, heads, embedding sizes): a million already
# means at least a million weights per input.
MAX_WIDTH = 2**20
Width = Annotated[int, Field(gt=0, le=MAX_WIDTH)]
# Seeds: what numpy, TensorFlow and KerasTuner all accept.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
# A learning rate, a schedule's rate: above 10 no optimizer converges.
LearningRateValue = Annotated[float, Field(gt=0, le=10)]
# Gradient clipping, loss and class weights, scale factors: finite and not astronomic.
MAX_FACTOR = 1e6
PositiveFactor = Annotated[float, Field(gt=0, le=MAX_FACTOR)]
NonNegativeFactor = Annotated[float, Field(ge=0, le=MAX_FACTOR)]
Scale = Annotated[float, Field(ge=-MAX_FACTOR, le=MAX_FACTOR)]


_UNSAFE_LABEL = re.compile(r"[/\\\x00-\x1f\x7f]")


def _safe_name(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"expected a name usable as one path component: {SAFE_NAME_RULE}; received {value!r}")
    return value


def _safe_label(value: str) -> str:
    if not value.strip() or value.startswith(".") or len(value) > 100 or _UNSAFE_LABEL.search(value):
        raise ValueError("expected a name usable as one path component: not empty, no `/`, `\\` or control "
                         f"characters, not starting with `.`, at most 100 characters; received {value!r}")
    return value


# Names that become a directory or file name (runs/<name>, checkpoints/<stage>...):
# never `..`, `/`, a hidden file or empty.
SafeName = Annotated[str, AfterValidator(_safe_name)]
# The same for names users like to write in prose (MLflow experiments, run names).
SafeLabel = Annotated[str, AfterValidator(_safe_label)]


Sampling = Literal["linear", "log", "reverse_log"]


class _TuneRange(SpecModel):
    sampling: Sampling = Field("linear", description="How values are drawn between min and max.")

    @model_validator(mode="after")
    def _check_range(self):
        lo, hi = self.min, self.max  # type: ignore[attr-defined]
        if not lo < hi:
            raise ValueError(f"expected min < max, received min={lo}, max={hi}")
        if self.sampling != "linear" and lo <= 0:
            raise ValueError(f"{self.sampling} sampling needs min > 0, received min={lo}")
        step = getattr(self, "step", None)
        if step is not None and step <= 0:
            raise ValueError(f"expected step > 0, received step={step}")
        default = getattr(self, "default", None)
        if default is not None and not lo <= default <= hi:
            raise ValueError(f"expected min <= default <= max, received default={default}")
        return self


class TuneInt(_TuneRange):
    """An integer hyperparameter (KerasTuner `hp.Int`)."""

    tune: Literal["int"]
    min: int = Field(description="Smallest value (inclusive).")
    max: int = Field(description="Largest value (inclusive).")
    step: int | None = Field(None, description="Spacing between values.")
    default: int | None = Field(None, description="The value tried first (default: min).")


class TuneFloat(_TuneRange):
    """A float hyperparameter (KerasTuner `hp.Float`)."""

    tune: Literal["float"]
    min: float = Field(description="Smallest value (inclusive).")
    max: float = Field(description="Largest value (inclusive).")
    step: float | None = Field(None, description="Spacing between values.")
    default: float | None = Field(None, description="The value tried first (default: min).")

    @model_validator(mode="after")
    def _finite(self):
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError(f"expected finite min and max, received min={self.min}, max={self.max}")
        return self


class TuneChoice(SpecModel):
    """One of a list of values (KerasTuner `hp.Choice`).

    Values that are mappings are alternatives: markers inside an alternative
    are only active when it is chosen."""

    tune: Literal["choice"]
    values: list[Any] = Field(min_length=1, description="The candidate values (non-empty).")
    default: Any = Field(None, description="The value tried first (default: the first).")

    @model_validator(mode="after")
    def _check_values(self):
        seen = []
        for v in self.values:
            if v in seen:
                raise ValueError(f"expected distinct values, received {v!r} twice")
            seen.append(v)
        if self.default is not None and self.default not in self.values:
            raise ValueError(f"expected default to be one of the values, received default={self.default!r}")
        return self


class TuneBool(SpecModel):
    """A boolean hyperparameter (KerasTuner `hp.Boolean`)."""

    tune: Literal["bool"]
    default: bool | None = Field(None, description="The value tried first (default: false).")


_MARKERS = Union[TuneInt, TuneFloat, TuneChoice, TuneBool]
TuneMarker = Annotated[_MARKERS, Field(discriminator="tune")]
TUNE_KINDS = ("int", "float", "choice", "bool")

# Union tags start with "~" so error paths can drop them (see spec.validate).
TAG_PREFIX = "~"
VALUE_TAG = TAG_PREFIX + "value"
TUNE_TAG = TAG_PREFIX + "tune"


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and "tune" in value


def _tune_tag(value: Any) -> str:
    if is_marker(value) or isinstance(value, (TuneInt, TuneFloat, TuneChoice, TuneBool)):
        return TUNE_TAG
    return VALUE_TAG


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def _check_marker_against(tp: Any):
    """Marker values (choices, min/max) must themselves be valid values of `tp`."""

    def check(marker):
        if isinstance(marker, TuneChoice):
            candidates = marker.values
        elif isinstance(marker, (TuneInt, TuneFloat)):
            candidates = [marker.min, marker.max]
        else:
            candidates = [True]
        for v in candidates:
            try:
                _adapter(tp).validate_python(v, strict=True)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                raise ValueError(f"tune marker value {v!r} is not valid here: {msg}") from None
        return marker

    return check


class _TunableFactory:
    """`Tunable[int]` accepts an int or a `{tune: ...}` marker whose values are ints."""

    def __getitem__(self, tp: Any) -> Any:
        return Annotated[
            Union[
                Annotated[tp, Tag(VALUE_TAG)],
                Annotated[lazy(_MARKERS, "tune"), AfterValidator(_check_marker_against(tp)), Tag(TUNE_TAG)],
            ],
            Discriminator(_tune_tag),
        ]


Tunable = _TunableFactory()


def _choice_tag(value: Any) -> str:
    return TUNE_TAG if is_marker(value) or isinstance(value, TuneChoice) else VALUE_TAG


@functools.lru_cache(maxsize=None)
def choice_of(tp: Any, name: str) -> type[TuneChoice]:
    """`{tune: choice, values: [...]}` whose every value is validated as `tp`
    (a conditional sub-space: markers inside a value are searched only while
    it is chosen)."""
    from pydantic import create_model

    return create_model(
        f"ChoiceOf{name}", __base__=TuneChoice, __doc__=f"`tune: choice` between whole {name} mappings.",
        values=(list[tp], Field(min_length=1, description=f"The alternatives, each a full {name}.")),
        default=(tp | None, Field(None, description="The alternative tried first (default: the first).")),
    )


def Choosable(tp: Any, name: str) -> Any:
    """A mapping field (`optimizer`, `kernel_regularizer`, ...) that also accepts
    `{tune: choice, values: [mapping, mapping, ...]}`."""
    return Annotated[
        Union[Annotated[tp, Tag(VALUE_TAG)], Annotated[choice_of(tp, name), Tag(TUNE_TAG)]],
        Discriminator(_choice_tag),
    ]
