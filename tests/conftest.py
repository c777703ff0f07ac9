import gc
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Quiet TF logs and keep tests on the CPU.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
SPECS = Path(__file__).resolve().parent / "specs"
DIGITS_MLP = SPECS / "digits_mlp.yaml"  # the one digits MLP spec tests train (change it with --set)
QUICKSTART = REPO / "pipelines" / "quickstart.yaml"


def _freeze_survivors() -> None:
    """Every KerasTuner trial runs `gc.collect()` twice (in `clear_session` and
    after it), and each walks every object alive in the process: after collection
    ~500k (TensorFlow, hypothesis, 1500 test items), none of them garbage. Moving
    what survived a collection to the permanent generation keeps each later
    collection to what the running module created (a third off tuning tests)."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session):
    _freeze_survivors()


_frozen_after = {"module": None}


def pytest_runtest_setup(item):
    # Once per module, after the previous module's fixtures were torn down, so
    # only what outlives every module (imports, Keras/TF caches) is frozen.
    if item.module is not _frozen_after["module"]:
        _frozen_after["module"] = item.module
        _freeze_survivors()


@pytest.fixture
def valid_spec_path() -> Path:
    return SPECS / "valid_mlp.yaml"


@dataclass
class QuickstartRun:
    cwd: Path  # where `kerasflow run pipelines/quickstart.yaml` ran: runs/, models/, mlflow.db
    result: subprocess.CompletedProcess

    @property
    def run_dir(self) -> Path:
        return self.cwd / "runs" / "quickstart" / "pipeline"

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "train" / "metrics.json").read_text())


def kerasflow_cli(*args, cwd) -> subprocess.CompletedProcess:
    """`kerasflow ARGS` in a fresh process, as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "kerasflow.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=900)


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> QuickstartRun:
    """The quickstart exactly as the README runs it, once per session: its own test
    checks what it wrote, and the multi-worker test compares against its accuracy
    (the same spec trained in one process) instead of training it again."""
    cwd = tmp_path_factory.mktemp("quickstart")
    return QuickstartRun(cwd, kerasflow_cli("run", str(QUICKSTART), cwd=cwd))
