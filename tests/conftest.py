import os
from pathlib import Path

import pytest

# Quiet TF logs and keep tests on the CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
SPECS = Path(__file__).resolve().parent / "specs"
DIGITS_MLP = SPECS / "digits_mlp.yaml"  # the one digits MLP spec tests train (change it with --set)


@pytest.fixture
def valid_spec_path() -> Path:
    return SPECS / "valid_mlp.yaml"
