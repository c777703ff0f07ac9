"""Parameter schemas of Keras preprocessing layers usable as graph nodes.

Vocabularies and statistics are given in the spec (or come from the data
section's adapted features); nothing here adapts on data. No TensorFlow import.
"""

from typing import Literal

from pydantic import Field, NonNegativeInt, confloat, model_validator

from kerasflow.spec.nodes.layers import KerasLayer
from kerasflow.spec.registry import register_layer
from kerasflow.spec.base import Count, Scale, Seed, Tunable

Factor = confloat(ge=0.0, le=1.0)
FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"]
LookupMode = Literal["int", "one_hot", "multi_hot", "count", "tf_idf"]


@register_layer("rescaling", "Rescaling")
class Rescaling(KerasLayer):
    """Computes `x * scale + offset`, e.g. scale 1/255 for 8-bit pixels."""

    scale: Scale = Field(description="Multiplier.")
    offset: Scale = Field(0.0, description="Added after scaling.")


@register_layer("normalization", "Normalization")
class Normalization(KerasLayer):
    """Standardizes with a given per-feature mean and variance."""

    axis: int | list[int] | None = Field(-1, description="Axis (or axes) with separate statistics.")
    mean: float | list[float] = Field(description="Mean (a scalar or one per feature).")
    variance: confloat(ge=0.0) | list[confloat(ge=0.0)] = Field(description="Variance (same shape as mean).")
    invert: bool = Field(False, description="Undo the normalization instead.")

    @model_validator(mode="after")
    def _same_shape(self):
        lengths = [len(v) if isinstance(v, list) else 1 for v in (self.mean, self.variance)]
        if lengths[0] != lengths[1]:
            raise ValueError(f"expected mean and variance of the same length, received {lengths[0]} and {lengths[1]}")
        return self


class _Lookup(KerasLayer):
    max_tokens: Count | None = Field(None, description="Largest vocabulary size, OOV and mask included.")
    num_oov_indices: NonNegativeInt = Field(1, description="Indices reserved for out-of-vocabulary values.")
    output_mode: LookupMode = Field("int", description="Indices, or a one-/multi-hot / count / tf_idf encoding.")
    invert: bool = Field(False, description="Map indices back to vocabulary values.")


@register_layer("string_lookup", "StringLookup")
class StringLookup(_Lookup):
    """Maps strings to indices in a fixed vocabulary."""

    vocabulary: list[str] = Field(min_length=1, description="The vocabulary (index order).")
    mask_token: str | None = Field(None, description="Token mapped to index 0 and masked.")
    oov_token: str = Field("[UNK]", description="Token returned for OOV indices when inverting.")


@register_layer("integer_lookup", "IntegerLookup")
class IntegerLookup(_Lookup):
    """Maps integer values to indices in a fixed vocabulary."""

    vocabulary: list[int] = Field(min_length=1, description="The vocabulary (index order).")
    mask_token: int | None = Field(None, description="Value mapped to index 0 and masked.")
    oov_token: int = Field(-1, description="Value returned for OOV indices when inverting.")


@register_layer("text_vectorization", "TextVectorization")
class TextVectorization(KerasLayer):
    """Standardizes, splits and maps text to token ids (or a bag-of-words vector)."""

    vocabulary: list[str] = Field(min_length=1, description="Token vocabulary (without padding and OOV).")
    max_tokens: Count | None = Field(None, description="Largest vocabulary size.")
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation"] | None = Field(
        "lower_and_strip_punctuation", description="Text cleanup before splitting.")
    split: Literal["whitespace", "character"] | None = Field("whitespace", description="How text becomes tokens.")
    ngrams: Count | None = Field(None, description="Also emit n-grams up to this n.")
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = Field("int", description="Token ids or a bag.")
    output_sequence_length: Count | None = Field(None, description="Pad/truncate ids to this length (int mode).")


@register_layer("category_encoding", "CategoryEncoding")
class CategoryEncoding(KerasLayer):
    """Encodes integer indices in [0, num_tokens) as one-hot, multi-hot or counts."""

    num_tokens: Count = Field(description="Number of distinct indices.")
    output_mode: Literal["one_hot", "multi_hot", "count"] = Field("multi_hot", description="Encoding.")


@register_layer("hashing", "Hashing")
class Hashing(KerasLayer):
    """Hashes strings or integers into `num_bins` buckets."""

    num_bins: Count = Field(description="Number of hash buckets.")
    salt: int | None = Field(None, description="Salt of the hash (stable across runs).")


@register_layer("discretization", "Discretization")
class Discretization(KerasLayer):
    """Buckets numbers by the given boundaries."""

    bin_boundaries: list[float] = Field(min_length=1, description="Sorted bucket boundaries.")
    output_mode: Literal["int", "one_hot", "multi_hot", "count"] = Field("int", description="Encoding.")

    @model_validator(mode="after")
    def _sorted(self):
        if self.bin_boundaries != sorted(self.bin_boundaries):
            raise ValueError(f"expected sorted bin_boundaries, received {self.bin_boundaries}")
        return self


# ---------------------------------------------------------------- images


@register_layer("resizing", "Resizing")
class Resizing(KerasLayer):
    """Resizes images to height x width."""

    height: Count = Field(description="Output height.")
    width: Count = Field(description="Output width.")
    interpolation: Interpolation = Field("bilinear", description="Resampling method.")
    crop_to_aspect_ratio: bool = Field(False, description="Crop instead of distorting the aspect ratio.")


@register_layer("center_crop", "CenterCrop")
class CenterCrop(KerasLayer):
    """Crops the central height x width region of images."""

    height: Count = Field(description="Output height.")
    width: Count = Field(description="Output width.")


class _Augment(KerasLayer):
    seed: Seed | None = Field(None, description="Seed (default: from the spec seed).")


@register_layer("random_flip", "RandomFlip")
class RandomFlip(_Augment):
    """Randomly flips images during training."""

    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "horizontal_and_vertical", description="Which flips to apply.")


@register_layer("random_rotation", "RandomRotation")
class RandomRotation(_Augment):
    """Randomly rotates images during training by up to `factor` x 2pi."""

    factor: Tunable[Factor] = Field(description="Largest rotation as a fraction of a full turn.")
    fill_mode: FillMode = Field("reflect", description="How points outside the input are filled.")


@register_layer("random_zoom", "RandomZoom")
class RandomZoom(_Augment):
    """Randomly zooms images during training."""

    height_factor: Tunable[Factor] = Field(description="Largest zoom as a fraction of the height.")
    width_factor: Factor | None = Field(None, description="Largest zoom of the width (default: keep aspect).")
    fill_mode: FillMode = Field("reflect", description="How points outside the input are filled.")


@register_layer("random_translation", "RandomTranslation")
class RandomTranslation(_Augment):
    """Randomly shifts images during training."""

    height_factor: Tunable[Factor] = Field(description="Largest vertical shift as a fraction of the height.")
    width_factor: Tunable[Factor] = Field(description="Largest horizontal shift as a fraction of the width.")
    fill_mode: FillMode = Field("reflect", description="How points outside the input are filled.")


@register_layer("random_contrast", "RandomContrast")
class RandomContrast(_Augment):
    """Randomly changes image contrast during training."""

    factor: Tunable[Factor] = Field(description="Largest contrast change.")


@register_layer("random_brightness", "RandomBrightness")
class RandomBrightness(_Augment):
    """Randomly changes image brightness during training."""

    factor: Tunable[Factor] = Field(description="Largest brightness change as a fraction of value_range.")
    value_range: list[float] = Field([0.0, 255.0], min_length=2, max_length=2, description="Pixel value range.")


