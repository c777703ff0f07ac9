"""The `data` section: where examples come from, typed features, targets, splits
and the input pipeline."""

from typing import Literal, Union

from pydantic import Field, confloat, field_validator, model_validator

from kerasflow.spec.base import Count, Scale, SpecModel, Tunable, Width, lazy

SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
STATSMODELS_SETS = ("sunspots", "co2", "nile", "elnino")
KERAS_SETS = ("mnist", "fashion_mnist", "cifar10", "imdb", "reuters")


class _Source(SpecModel):
    pass


class SklearnSource(_Source):
    """A dataset bundled with scikit-learn (no download)."""

    type: Literal["sklearn"]
    name: Literal[SKLEARN_SETS] = Field(description="Bundled scikit-learn dataset.")


class StatsmodelsSource(_Source):
    """A dataset bundled with statsmodels (no download)."""

    type: Literal["statsmodels"]
    name: Literal[STATSMODELS_SETS] = Field(description="Bundled statsmodels dataset.")
    column: str | None = Field(None, description="Series column to use (defaults to the dataset's main series).")


class CsvSource(_Source):
    """A CSV file (pandas, or streamed with tf.data when `stream: true`)."""

    type: Literal["csv"]
    path: str = Field(description="File path, relative to the spec file.")
    validation_path: str | None = Field(None, description="Separate validation file (instead of a fraction split).")
    test_path: str | None = Field(None, description="Separate test file.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator (one character; "
                           "\"\\t\" for TSV).")
    header: bool = Field(True, description="The first line names the columns; false: every line is data and "
                         "`names` names the columns, or without `names` the fields are named by position "
                         "\"0\", \"1\", ... (e.g. the UCR archive's TSV files).")
    names: list[str] | None = Field(None, min_length=1, description="Column names of a file without a header line, "
                                    "one per field, in order.")
    stream: bool = Field(
        False, description="Read with tf.data instead of loading into memory (files larger than memory; "
        "numeric and category features only)."
    )

    @model_validator(mode="after")
    def _names_without_header(self):
        if self.header and self.names is not None:
            raise ValueError("`names` names the fields of a file without a header line: set `header: false`, "
                             "or remove `names` to use the file's header")
        if not self.header and self.stream:
            raise ValueError("`stream: true` reads the header line; a file without one is read with stream: false")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError(f"expected distinct names, received {self.names}")
        return self


class ParquetSource(_Source):
    """A Parquet file (pyarrow)."""

    type: Literal["parquet"]
    path: str = Field(description="File path, relative to the spec file.")
    validation_path: str | None = Field(None, description="Separate validation file (instead of a fraction split).")
    test_path: str | None = Field(None, description="Separate test file.")


class NpzSource(_Source):
    """A .npz archive, or .npy files each holding one column named after the file."""

    type: Literal["npz"]
    path: str | list[str] = Field(description="A .npz file, or a list of .npy files (column = file stem).")
    validation_path: str | None = Field(None, description="Separate validation .npz file.")
    test_path: str | None = Field(None, description="Separate test .npz file.")


class TfrecordSource(_Source):
    """TFRecord files of tf.train.Example, parsed with the declared features."""

    type: Literal["tfrecord"]
    path: str | list[str] = Field(description="File path, glob, or list of them.")
    validation_path: str | None = Field(None, description="Separate validation file or glob.")
    test_path: str | None = Field(None, description="Separate test file or glob.")
    compression: Literal["", "GZIP", "ZLIB"] = Field("", description="Record compression.")


class ImageDirSource(_Source):
    """A class-per-folder directory of images."""

    type: Literal["image_dir"]
    path: str = Field(description="Directory with one sub-directory of images per class.")


class TextSource(_Source):
    """Text from a CSV column or a class-per-folder directory of .txt files."""

    type: Literal["text"]
    path: str = Field(description="A CSV file, or a directory with one sub-directory of .txt files per class.")
    column: str | None = Field(None, description="Text column when `path` is a CSV file.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field separator.")


class KerasSource(_Source):
    """A `keras.datasets` set: needs network access on first use."""

    type: Literal["keras"]
    name: Literal[KERAS_SETS] = Field(description="keras.datasets module name.")
    num_words: Count | None = Field(None, description="imdb/reuters: keep the most frequent words only.")


class TfdsSource(_Source):
    """A TensorFlow Datasets set (optional extra): needs network access."""

    type: Literal["tfds"]
    name: str = Field(description="TFDS dataset name, e.g. mnist.")
    split: str = Field("train", description="TFDS split read for train/validation/test fractions.")
    data_dir: str | None = Field(None, description="TFDS data directory (default: ~/tensorflow_datasets).")


class GeneratedSource(_Source):
    """A synthetic task generated from the seed: sequences (sort, reverse, copy digits) or short movie
    reviews (`reviews`: columns `text` and `label`, negative/positive, where "not" flips an opinion)."""

    type: Literal["generated"]
    task: Literal["sort", "reverse", "copy", "reviews"] = Field(
        description="What the target is: the sorted, reversed or copied sequence, or a review's sentiment.")
    length: Count = Field(8, description="Tokens per sequence (sequence tasks).")
    vocab_size: int = Field(10, ge=2, description="Tokens are 0..vocab_size-1; vocab_size is the decoder start token "
                            "(sequence tasks).")
    samples: Count = Field(20000, description="Number of sequences or reviews.")


Source = lazy(Union[
    SklearnSource, StatsmodelsSource, CsvSource, ParquetSource, NpzSource, TfrecordSource,
    ImageDirSource, TextSource, KerasSource, TfdsSource, GeneratedSource,
], "type")


class ColumnRange(SpecModel):
    """Source columns by position in the file's order, `start` included, `stop` excluded (as Python's `range`)."""

    start: int = Field(ge=0, description="Position of the first column (0 is the file's first column).")
    stop: int = Field(ge=1, description="Position after the last column (`start: 1, stop: 501`: 500 columns).")

    @model_validator(mode="after")
    def _ordered(self):
        if self.stop <= self.start:
            raise ValueError(f"`stop` ({self.stop}) must be greater than `start` ({self.start})")
        return self


class NumericFeature(SpecModel):
    """A numeric feature (scalar or fixed-shape array)."""

    type: Literal["numeric"]
    shape: list[Count] = Field(default_factory=lambda: [1], description="Per-example shape.")
    normalize: bool = Field(False, description="Normalize with statistics of the training split (last axis).")
    dtype: Literal["float32", "float64", "int32", "int64"] = Field("float32", description="Input dtype.")
    column: str | list[str] | None = Field(
        None, description="Source column, or several scalar columns stacked into one vector; defaults to the feature name."
    )
    columns: ColumnRange | None = Field(
        None, description="Many scalar columns by position, stacked into one vector (e.g. a series stored as one "
        "column per step: `{start: 1, stop: 501}`); instead of `column`.")

    @model_validator(mode="after")
    def _one_column_choice(self):
        if self.columns is not None and self.column is not None:
            raise ValueError("`column` and `columns` both choose the source columns: keep one")
        return self


class CategoryFeature(SpecModel):
    """A categorical feature looked up in a vocabulary learned from the training split."""

    type: Literal["category"]
    dtype: Literal["string", "int64"] = Field("string", description="Raw value type (StringLookup or IntegerLookup).")
    vocabulary: list[str | int] | None = Field(
        None, description="Fixed vocabulary (learned from the training split if omitted)."
    )
    max_tokens: Count | None = Field(None, description="Keep the most frequent values only (including OOV slots).")
    num_oov_indices: int = Field(
        1, ge=0, description="Slots for values outside the vocabulary (0: unknown values are errors)."
    )
    output: Literal["one_hot", "embedding", "index"] = Field("one_hot", description="What the model sees.")
    embedding_dim: Tunable[Width] = Field(8, description="Embedding width when output is embedding.")
    column: str | None = Field(None, description="Source column; defaults to the feature name.")


class TextFeature(SpecModel):
    """Free text vectorized with TextVectorization."""

    type: Literal["text"]
    max_tokens: Tunable[Count] = Field(20000, description="Vocabulary size including padding and OOV.")
    sequence_length: Count = Field(200, description="Tokens per example in `int` mode (padded or truncated).")
    standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation"] | None = Field(
        "lower_and_strip_punctuation", description="Text standardization before splitting on whitespace."
    )
    output_mode: Literal["int", "multi_hot", "count", "tf_idf"] = Field("int", description="TextVectorization output.")
    ngrams: Count | None = Field(None, description="Also emit n-grams up to this length.")
    column: str | None = Field(None, description="Source column; defaults to the feature name.")


class Augmentation(SpecModel):
    """Random image transforms applied in the training pipeline only (never exported)."""

    flip: Literal["horizontal", "vertical", "horizontal_and_vertical"] | None = Field(None, description="Random flips.")
    rotation: confloat(ge=0, le=1) = Field(0.0, description="Max rotation as a fraction of 2*pi.")
    zoom: confloat(ge=0, lt=1) = Field(0.0, description="Max zoom as a fraction of the size.")
    translation: confloat(ge=0, lt=1) = Field(0.0, description="Max shift as a fraction of the size.")
    contrast: confloat(ge=0, lt=1) = Field(0.0, description="Max contrast change.")


class ImageFeature(SpecModel):
    """An image: resized and rescaled inside the model; augmentation only in training."""

    type: Literal["image"]
    height: Count = Field(description="Height the model sees (images are resized to it).")
    width: Count = Field(description="Width the model sees.")
    channels: Literal[1, 3, 4] = Field(3, description="Colour channels.")
    rescale: Scale | None = Field(1.0 / 255, description="Multiply pixel values by this inside the model.")
    offset: Scale = Field(0.0, description="Added after rescaling (e.g. -1 with rescale 1/127.5).")
    any_size: bool = Field(False, description="The exported model accepts any image size and resizes inside the model.")
    augment: Augmentation | None = Field(None, description="Training-only augmentation.")
    column: str | None = Field(None, description="Source column (pixel arrays or image file paths).")


class SequenceFeature(SpecModel):
    """Windows over a series (timeseries) or a fixed-length token sequence."""

    type: Literal["sequence", "timeseries"]
    input_width: Count | None = Field(None, description="timeseries: window length fed to the model.")
    label_width: Count = Field(1, description="timeseries: steps predicted (target window length).")
    shift: Count = Field(
        1, description="timeseries: steps from the end of the input window to the end of the label window."
    )
    stride: Count = Field(1, description="timeseries: steps between consecutive windows.")
    length: Count | Literal["variable"] | None = Field(
        None, description="sequence: tokens per example; `variable` (or `null` written out) for token lists of "
        "any length: each batch is padded with 0 to its longest row (on the `padding` side), the model input has "
        "shape (None,), and an `embedding` with `mask_zero: true` masks the padding.")
    vocab_size: Count | None = Field(None, description="sequence: token ids are 0..vocab_size-1.")
    padding: Literal["pre", "post"] = Field(
        "pre", description="sequence: where variable-length token lists get zeros to reach `length` (Keras' "
        "pad_sequences default `pre`: the last tokens sit next to the model's last step).")
    truncating: Literal["pre", "post"] = Field(
        "pre", description="sequence: which end of a longer token list is cut (pad_sequences default `pre`: "
        "keep the last `length` tokens).")
    normalize: bool = Field(False, description="timeseries: normalize with statistics of the training part.")
    column: str | list[str] | None = Field(None, description="Source column(s); several columns make a multivariate series.")

    @model_validator(mode="before")
    @classmethod
    def _null_length(cls, data):
        # `length: null` written out reads as variable length (an omitted length stays an error).
        if isinstance(data, dict) and data.get("type") == "sequence" and "length" in data and data["length"] is None:
            return {**data, "length": "variable"}
        return data

    @model_validator(mode="after")
    def _widths(self):
        if self.type == "timeseries" and self.input_width is None:
            raise ValueError("a timeseries feature needs `input_width` (window length), received none")
        if self.type == "sequence" and self.length is None:
            raise ValueError("a sequence feature needs `length` (tokens per example, or `length: variable` for "
                             "token lists of any length), received none")
        return self

    @property
    def variable_length(self) -> bool:
        """True for a token sequence of any length (padded per batch)."""
        return self.type == "sequence" and self.length == "variable"


Feature = lazy(Union[NumericFeature, CategoryFeature, TextFeature, ImageFeature, SequenceFeature], "type")


class Target(SpecModel):
    """What the model predicts."""

    name: str = Field(description="Target name: names the model output and the source column.")
    type: Literal["category", "binary", "numeric", "sequence"] = Field(
        description="category: class index; binary: 0/1; numeric: regression; sequence: a class index per position."
    )
    num_classes: Count | None = Field(None, description="Number of classes (inferred if omitted).")
    class_names: list[str] | None = Field(None, description="Class names in index order (inferred if omitted); "
                                          "binary: [negative, positive]. Integer labels may be listed as they are "
                                          "(e.g. [-1, 1]): they map to indices 0..n-1 in this order and are kept "
                                          "as names in predictions and exports.")

    @field_validator("class_names", mode="before")
    @classmethod
    def _labels_as_names(cls, value):
        if isinstance(value, list):  # declared label values such as [-1, 1] are class names spelled as numbers
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value
    shape: list[Count] | None = Field(None, description="numeric: per-example shape (default: [number of columns]).")
    column: str | list[str] | None = Field(None, description="Source column(s); defaults to the target name.")
    normalize: bool = Field(False, description="numeric: learn in standardized units (training-split mean/std); "
                            "a Rescaling layer inside the model returns raw units, so predictions and exports "
                            "are unchanged.")

    @model_validator(mode="after")
    def _classes(self):
        if self.normalize and self.type != "numeric":
            raise ValueError(f"normalize applies to numeric targets, received type={self.type}")
        if self.class_names is not None and self.num_classes is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"expected {self.num_classes} class_names (num_classes), received {len(self.class_names)}"
            )
        return self


class Split(SpecModel):
    """How examples are divided into train/validation/test."""

    validation: confloat(ge=0, lt=1) = Field(0.1, description="Fraction held out for validation.")
    test: confloat(ge=0, lt=1) = Field(0.1, description="Fraction held out for testing.")
    stratify: bool = Field(False, description="Keep class proportions in every split (first category target).")
    column: str | None = Field(None, description="Column holding train/validation/test labels (instead of fractions).")
    shuffle: bool = Field(True, description="Shuffle rows (seeded) before a fraction split; timeseries never are.")

    @model_validator(mode="after")
    def _fractions(self):
        if self.validation + self.test >= 1:
            raise ValueError(
                f"expected validation + test < 1, received {self.validation} + {self.test} = {self.validation + self.test:g}"
            )
        return self


class DataSpec(SpecModel):
    """Where the examples come from and how they reach the model."""

    source: Source = Field(description="Where the examples come from (discriminated by `type`).")
    features: dict[str, Feature] = Field(min_length=1, description="Model inputs by name.")
    target: Target | list[Target] = Field(description="One target, or a list for multi-output models.")
    split: Split = Field(default_factory=Split, description="Train/validation/test division.")
    batch_size: Tunable[Count] = Field(32, description="Examples per batch.")
    shuffle_buffer: Count = Field(
        10000, description="Shuffle buffer of streamed sources (in-memory data is fully permuted each epoch)."
    )
    cache: bool | str = Field(
        True, description="Cache what is read from files (decoded images, streamed CSV lines): true in memory, "
        "a path prefix for cache files, false for none. In-memory data needs no cache."
    )
    deterministic: bool = Field(True, description="false lets parallel maps return elements out of order (faster).")

    @model_validator(mode="after")
    def _names(self):
        names = [t.name for t in self.targets()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"expected distinct target names, received {', '.join(repeated)} more than once")
        clash = sorted(set(names) & set(self.features))
        if clash:
            raise ValueError(f"target names must differ from feature names (they name model outputs and inputs), "
                             f"received {', '.join(clash)} as both")
        return self

    def targets(self) -> list[Target]:
        """The target list (a single target becomes a list of one)."""
        return list(self.target) if isinstance(self.target, list) else [self.target]
