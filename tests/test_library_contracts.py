"""What kerasflow relies on in its libraries beyond their documented API.
Each test fails loudly when an upgrade changes it (setup.cfg pins the upper bound)."""

from __future__ import annotations

import inspect
import json

import numpy as np
from conftest import DIGITS_MLP


def test_keras_tuner_still_declares_the_space_through_populate_initial_space():
    """The tuner overrides KerasTuner's `_populate_initial_space` (no public hook):
    the spec states the whole conditional space, so KerasTuner need not build a
    model per branch. It must still be a method that `__init__` calls when a
    project is new."""
    import keras_tuner as kt

    from kerasflow.tune.tuners import _CLASSES

    source = inspect.getsource(kt.engine.base_tuner.BaseTuner.__init__)
    assert "self._populate_initial_space()" in source
    assert all("_populate_initial_space" in vars(cls.__mro__[1]) for cls in _CLASSES.values())
    assert kt.__version__.startswith("1.4."), "re-check this contract, then raise the bound in setup.cfg"


def test_every_keras_tuner_state_file_is_written_atomically(tmp_path):
    """KerasTuner writes oracle.json, trial.json and tuner0.json through
    `Stateful.save` -> `utils.save_json`, which kerasflow replaces so that a
    killed search never leaves a cut file behind (the resume crashed on one)."""
    import keras_tuner as kt
    from keras_tuner.src import utils
    from keras_tuner.src.engine import stateful

    import kerasflow.tune.tuners  # noqa: F401  (installs the writer)
    from kerasflow.runs import write_json

    assert "utils.save_json(" in inspect.getsource(stateful.Stateful.save)
    assert utils.save_json is write_json
    oracle = kt.oracles.RandomSearchOracle(max_trials=1)
    oracle.hyperparameters.Int("units", 1, 4)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.create_trial("t0")
    oracle.save()
    saved = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert saved == ["p/oracle.json", "p/trial_0/trial.json"], saved  # no temporary file is left next to them
    assert json.loads((tmp_path / "p" / "oracle.json").read_text())["ongoing_trials"] == {"t0": "0"}
    assert json.loads((tmp_path / "p" / "trial_0" / "trial.json").read_text())["status"] == "RUNNING"


def test_the_chief_serves_the_oracle_through_kerasflows_loop():
    """`BaseTuner.search` starts the chief's oracle server with
    `oracle_chief.start_server`, whose loop sleeps 20 s between checks that the
    workers have left; kerasflow's copy (same server, same end condition) checks
    every 0.5 s and must still be what `search` calls."""
    from keras_tuner.src.distribute import oracle_chief
    from keras_tuner.src.engine import base_tuner

    from kerasflow.tune.tuners import _serve_oracle

    assert "oracle_chief.start_server(self.oracle)" in inspect.getsource(base_tuner.BaseTuner.search)
    assert oracle_chief.start_server is _serve_oracle
    module = inspect.getsource(oracle_chief)
    assert "self.stop_triggered = True" in module and "time.sleep(20)" in module  # the loop kerasflow copies
    assert "return len(oracle.ongoing_trials) == 0 and len(oracle.tuner_ids) == 0" in module


def test_a_cut_tuning_file_is_a_clear_error_naming_it(tmp_path):
    from click.testing import CliRunner

    from kerasflow.cli import cli

    sets = ["training.stages=[{name: main, epochs: 1, steps_per_epoch: 1, optimizer: {type: adam, learning_rate: "
            "{tune: choice, values: [0.01, 0.001]}}}]", "tuning={tuner: grid, max_trials: 1}"]
    args = ["tune", str(DIGITS_MLP), "--run-dir", str(tmp_path / "run"), "--quiet",
            *(arg for s in sets for arg in ("--set", s))]
    assert CliRunner().invoke(cli, args).exit_code == 0
    oracle = tmp_path / "run" / "keras_tuner" / "oracle.json"
    oracle.write_text("")  # what KerasTuner's own truncate-then-write left when killed in between
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"{oracle}: a killed search left this tuning file incomplete" in result.output
    assert "--restart" in result.output and "Traceback" not in result.output


def test_tf_idf_weights_computed_publicly_are_the_ones_keras_adapts():
    import keras
    import tensorflow as tf

    from kerasflow.data.stats import compute_stats
    from kerasflow.spec.loader import load_spec_dict

    docs = np.array(["the cat sat", "the dog sat down", "a cat and a dog", "the end", "cat cat cat", "down"])
    raw = {"kerasflow": 1, "name": "t", "data": {
        "source": {"type": "sklearn", "name": "digits"},
        "features": {"text": {"type": "text", "output_mode": "tf_idf", "max_tokens": 50}},
        "target": {"name": "label", "type": "category", "num_classes": 10}},
        "model": {"sequential": [{"layer": "dense", "units": 10, "activation": "softmax"}]},
        "training": {"loss": "sparse_categorical_crossentropy", "stages": [{"name": "main", "epochs": 1}]}}
    stats = compute_stats(load_spec_dict(raw).spec.data, {"text": docs})["text"]

    adapted = keras.layers.TextVectorization(max_tokens=50, output_mode="tf_idf")
    adapted.adapt(tf.data.Dataset.from_tensor_slices(docs).batch(2))
    rebuilt = keras.layers.TextVectorization(output_mode="tf_idf", vocabulary=stats["vocabulary"],
                                             idf_weights=stats["idf_weights"])
    assert stats["vocabulary"] == adapted.get_vocabulary(include_special_tokens=False)
    # Same TF-IDF vectors from the public rebuild as from Keras' own adapted layer (OOV column aside).
    np.testing.assert_allclose(np.asarray(rebuilt(docs))[:, 1:], np.asarray(adapted(docs))[:, 1:], rtol=1e-5)


def test_tf_sessions_still_make_callables_from_options():
    """The embedded server calls each signature through the private
    `Session._make_callable_from_options` (TF_SessionMakeCallable, fed by
    position): about a third of the public `make_callable`'s CPU per call
    (serve/servables.py). setup.cfg pins tensorflow<2.22."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        tf.identity(x * 2, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            call = session._make_callable_from_options(config_pb2.CallableOptions(feed=["x:0"], fetch=["y:0"]))
            (y,) = call(np.array([1.0, 2.5], np.float32))
    np.testing.assert_array_equal(y, [2.0, 5.0])
