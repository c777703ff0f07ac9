"""`PreparedData`: what `prepare_data` hands to training, for in-memory and
streamed sources alike (its own module, so that neither builder imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SPLITS = ("train", "validation", "test")


@dataclass
class PreparedData:
    """Everything later stages need from the data section.

    Attributes:
        train, validation, test: batched datasets of (features, targets) dicts;
            validation/test are None when their split is empty by design.
        stats: JSON preprocessing state from the training split, by feature.
        targets: per target {"type", "num_classes", "class_names", ...} (JSON).
        fingerprint: content hash of the data section, seed and source bytes.
        batch_size: examples per batch.
        sizes: examples (timeseries: windows) per split; 0 for a split not requested.
    """

    train: Any
    validation: Any
    test: Any
    stats: dict
    targets: dict
    fingerprint: str
    batch_size: int
    sizes: dict[str, int]
    _materialize: Callable[[str], tuple[dict, dict]] = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def steps(self, split: str = "train") -> int:
        """Batches per epoch of a split."""
        return -(-self.sizes[split] // self.batch_size)

    def arrays(self, split: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The whole split as numpy: (raw features, encoded targets), unshuffled."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, received {split!r}")
        if getattr(self, split) is None:
            raise ValueError(f"the {split} split is empty (its fraction is 0)")
        if split not in self._cache:
            self._cache[split] = self._materialize(split)
        return self._cache[split]

    def sample_inputs(self, n: int, split: str = "validation") -> dict[str, np.ndarray]:
        """The first `n` raw feature rows of a split (train when it is empty).
        Strings are object arrays of `str`."""
        if getattr(self, split) is None:
            split = "train"
        features, _ = self.arrays(split)
        return {k: v[:n] for k, v in features.items()}
