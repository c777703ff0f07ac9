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


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.integration  # fresh interpreters: kept out of the fast subset
def test_import_kerasflow_registers_on_keras_import_without_importing_keras():
    res = _fresh(
        "import sys, kerasflow\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'import kerasflow imported Keras'\n"
        "import keras\n"
        "from kerasflow.model.custom_objects import MODULES\n"
        "names = [n for n, o in keras.saving.get_custom_objects().items() if o.__module__ in MODULES]\n"
        "print(sorted(names))\n")
    assert res.returncode == 0, res.stderr
    assert "kerasflow>LinearWarmup" in res.stdout and "kerasflow>PositionalEmbedding" in res.stdout


@pytest.mark.integration  # fresh interpreters: kept out of the fast subset
def test_keras_imported_before_kerasflow_gets_the_objects_too():
    res = _fresh("import keras, kerasflow\nprint(keras.saving.get_registered_object('kerasflow>LinearWarmup'))")
    assert res.returncode == 0 and "LinearWarmup" in res.stdout, res.stderr


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
def test_every_layer_block_and_schedule_loads_in_a_fresh_process_after_import_kerasflow(tmp_path):
    paths = _save_every_model(tmp_path)
    listing = tmp_path / "models.json"
    listing.write_text(json.dumps(paths))
    load_all_of = (f"import json, kerasflow, keras\n"
                   f"for p in json.load(open({str(listing)!r})):\n"
                   f"    keras.saving.load_model(p)\n"
                   f"print('loaded', len(json.load(open({str(listing)!r}))))\n")
    res = _fresh(load_all_of)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"loaded {len(paths)}" in res.stdout
    # Without kerasflow the custom objects are unknown: the registration is what makes it work.
    res = _fresh(load_all_of.replace("import json, kerasflow, keras", "import json, keras"))
    assert res.returncode != 0 and "Could not locate class" in res.stderr and "kerasflow>" in res.stderr
