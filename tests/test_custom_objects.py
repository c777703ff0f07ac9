"""`import kerasflow` registers every Keras object kerasflow puts in a model
(custom layers, learning-rate schedules) without importing Keras itself, so a
run's model.keras loads in a fresh process with `keras.saving.load_model`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kerasflow.spec.loader import load_spec
from kerasflow.spec.registry import load_all
from test_blocks import BLOCK_CASES
from test_builder import LAYER_CASES, write_spec

keras = pytest.importorskip("keras")

SCHEDULES = {
    "constant": {"type": "constant", "value": 0.01},
    "exponential": {"type": "exponential", "initial": 0.01, "decay_steps": 10, "decay_rate": 0.9},
    "piecewise": {"type": "piecewise", "boundaries": [5], "values": [0.01, 0.001]},
    "cosine": {"type": "cosine", "initial": 0.01, "decay_steps": 10},
    "cosine_restarts": {"type": "cosine_restarts", "initial": 0.01, "decay_steps": 10},
    "polynomial": {"type": "polynomial", "initial": 0.01, "decay_steps": 10},
    "inverse_time": {"type": "inverse_time", "initial": 0.01, "decay_steps": 10, "decay_rate": 0.5},
}


def test_every_module_that_registers_keras_objects_is_listed():
    from conftest import REPO

    from kerasflow.model.custom_objects import MODULES

    registering = {".".join(p.relative_to(REPO).with_suffix("").parts)
                   for p in (REPO / "kerasflow").rglob("*.py")
                   if "register_keras_serializable(" in p.read_text() and p.name != "custom_objects.py"}
    assert registering == set(MODULES)


# Two fresh interpreters (a TensorFlow import each), started together, cover every
# order a user can import in; the tests below assert on what each printed.
AFTER_KERASFLOW = """
import json, sys, kerasflow
assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'import kerasflow imported Keras'
import keras
from kerasflow.model.custom_objects import MODULES
print('registered', sorted(n for n, o in keras.saving.get_custom_objects().items() if o.__module__ in MODULES))
paths = json.load(open(sys.argv[1]))
for p in paths:
    keras.saving.load_model(p)
print('loaded', len(paths))
"""
KERAS_FIRST = """
import json, sys, keras
paths = json.load(open(sys.argv[1]))
try:
    for p in paths:
        keras.saving.load_model(p)
    print('loaded without kerasflow')
except Exception as exc:
    print('without kerasflow:', str(exc).replace(chr(10), ' '))
import kerasflow
print('registered', keras.saving.get_registered_object('kerasflow>LinearWarmup'))
for p in paths:
    keras.saving.load_model(p)
print('loaded', len(paths))
"""


@pytest.fixture(scope="module")
def fresh_loads(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, int]]:
    """Every layer, block and schedule saved once, then loaded in both fresh processes."""
    tmp_path = tmp_path_factory.mktemp("custom_objects")
    paths = _save_every_model(tmp_path)
    listing = tmp_path / "models.json"
    listing.write_text(json.dumps(paths))
    procs = {name: subprocess.Popen([sys.executable, "-c", code, str(listing)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, code in {"after_kerasflow": AFTER_KERASFLOW, "keras_first": KERAS_FIRST}.items()}
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), len(paths))
    return out


@pytest.mark.slow
@pytest.mark.integration  # fresh interpreters: kept out of the fast subset
def test_import_kerasflow_registers_on_keras_import_without_importing_keras(fresh_loads):
    res, _ = fresh_loads["after_kerasflow"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "kerasflow>LinearWarmup" in res.stdout and "kerasflow>PositionalEmbedding" in res.stdout


@pytest.mark.slow
@pytest.mark.integration  # fresh interpreters: kept out of the fast subset
def test_keras_imported_before_kerasflow_gets_the_objects_too(fresh_loads):
    res, count = fresh_loads["keras_first"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert "registered <class" in res.stdout and "LinearWarmup" in res.stdout
    assert f"loaded {count}" in res.stdout


def _save_every_model(tmp_path) -> list[str]:
    from kerasflow.model.builder import build_model
    from kerasflow.spec.training_schema import Optimizer
    from kerasflow.train.compile import make_optimizer

    paths = []
    layers, blocks = load_all()
    cases = [(f"layer-{n}", n, "layer", LAYER_CASES[n]) for n in sorted(layers)]
    cases += [(f"block-{n}-{i}", n, "block", case) for n in sorted(blocks) for i, case in enumerate(BLOCK_CASES[n])]
    for label, name, kind, (features, fields, _) in cases:
        folder = tmp_path / label
        folder.mkdir()
        spec = write_spec(folder, f"model:\n  inputs: {features}\n  nodes:\n    n: {{{kind}: {name}, {fields}}}\n",
                          features)
        raw_text = {"text": keras.Input(shape=(1,), dtype="string", name="text")} if features == ["text"] else None
        model = build_model(load_spec(spec), input_tensors=raw_text)  # text layers read raw strings
        model.save(folder / "model.keras")
        paths.append(str(folder / "model.keras"))
    for name, lr in SCHEDULES.items():
        for warmup in (0, 3):
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            model.compile(make_optimizer(Optimizer(type="adam", learning_rate={**lr, "warmup_steps": warmup}),
                                         steps_per_epoch=4), "mse")
            model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0)
            path = tmp_path / f"schedule-{name}-{warmup}.keras"
            model.save(path)
            paths.append(str(path))
    return paths


@pytest.mark.slow
@pytest.mark.integration
def test_every_layer_block_and_schedule_loads_in_a_fresh_process_after_import_kerasflow(fresh_loads):
    res, count = fresh_loads["after_kerasflow"]
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"loaded {count}" in res.stdout
    # Without kerasflow the custom objects are unknown: the registration is what makes it work.
    res, _ = fresh_loads["keras_first"]
    without = next(line for line in res.stdout.splitlines() if line.startswith(("without", "loaded without")))
    assert "Could not locate class" in without and "kerasflow>" in without, without
