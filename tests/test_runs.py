"""The run directory type: every verb reading a run (evaluate, predict, export,
resume) reports a corrupt file by name and what is wrong, never a traceback;
and `train`, `tune`, `run` check shapes as `plan` does before touching data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DIGITS_MLP

from kerasflow.cli import cli

SETS = ["training.stages.0.epochs=1", "data.batch_size=128"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished run of the digits MLP, copied by each test before it breaks a file."""
    from kerasflow.spec.loader import load_spec
    from kerasflow.train.stages import train

    run_dir = tmp_path_factory.mktemp("runs") / "run"
    train(load_spec(DIGITS_MLP, SETS), run_dir=run_dir, quiet=True)
    return run_dir


def _broken(trained: Path, tmp_path: Path, name: str, text: str | bytes) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return run


def _resized_spec(trained: Path) -> str:
    """The run's own spec with wider hidden layers: valid, but model.keras no longer fits it."""
    return (trained / "spec.resolved.yaml").read_text().replace("units: 128", "units: 96")


CORRUPT = {
    # name: (file, new content or a function of the trained run, words the message must hold)
    "stats-not-json": ("stats.json", "{not json", "not valid JSON"),
    "stats-wrong-kind": ("stats.json", "[1, 2]", "wrong kind of value"),
    "stats-wrong-entry": ("stats.json", '{"pixels": 3}', "the entry of `pixels` is not an object"),
    "spec-not-yaml": ("spec.resolved.yaml", "a: [1, 2\nb: {", "not valid YAML"),
    "spec-not-a-mapping": ("spec.resolved.yaml", "- 1\n- 2\n", "wrong kind of value"),
    "spec-invalid": ("spec.resolved.yaml", "kerasflow: 1\nname: x\n", "data"),
    "model-garbage": ("model.keras", b"\x00garbage" * 100, "weights cannot be loaded"),
    "weights-do-not-fit": ("spec.resolved.yaml", _resized_spec, "model.keras"),
    "targets-wrong-kind": ("targets.json", '["label"]', "wrong kind of value"),
    "targets-wrong-names": ("targets.json", '{"digit": {"type": "category"}}', "its targets are not the spec's"),
    "targets-no-type": ("targets.json", '{"label": 3}', "the entry of `label` has no `type`"),
    "targets-bad-classes": ("targets.json", '{"label": {"type": "category", "num_classes": "ten"}}',
                            "num_classes` is not a positive integer"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_corrupt_run_file_is_named_without_a_traceback(trained, tmp_path, case):
    name, content, words = CORRUPT[case]
    run = _broken(trained, tmp_path, name, content(trained) if callable(content) else content)
    culprit = "model.keras" if case == "weights-do-not-fit" else name
    for args in (["evaluate", str(run)], ["export", str(run), "--base-path", str(tmp_path / "models")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert culprit in result.output and words in result.output, result.output
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("name, text, words", [
    ("state.json", "{", "not valid JSON"),
    ("state.json", "[]", "wrong kind of value"),
])
def test_a_corrupt_state_file_stops_resume_by_name(trained, tmp_path, name, text, words):
    run = _broken(trained, tmp_path, name, text)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{run / name}: corrupt run file: " in result.output and words in result.output


@pytest.mark.slow
def test_corrupt_metrics_stop_export_by_name(trained, tmp_path):
    run = _broken(trained, tmp_path, "metrics.json", '{"test_accuracy": "high"}')
    result = CliRunner().invoke(cli, ["export", str(run), "--base-path", str(tmp_path / "models")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "metrics.json: corrupt run file: metric `test_accuracy` is not a number" in result.output


# ------------------------------------------------------------ shape checks before data

IMAGE_WITHOUT_FLATTEN = ["data.features={image: {type: image, height: 8, width: 8, channels: 1, rescale: 0.0625}}",
                         "model={sequential: [{layer: dense, units: 10, activation: softmax}]}"]


@pytest.mark.parametrize("verb, extra", [
    ("train", []),
    ("tune", ["--set", "training.stages.0.epochs={tune: choice, values: [1, 2]}",
              "--set", "tuning={tuner: random, objective: val_accuracy, max_trials: 1}"]),
    ("run", ["--set", "stages=[validate, train]"]),
])
def test_a_dense_head_on_an_image_fails_before_any_data_is_read(tmp_path, monkeypatch, verb, extra):
    import kerasflow.data.pipeline as pipeline

    def no_data(*args, **kwargs):
        raise AssertionError("data was prepared before the shape check")

    monkeypatch.setattr(pipeline, "prepare_data", no_data)
    monkeypatch.chdir(tmp_path)
    sets = [a for s in IMAGE_WITHOUT_FLATTEN for a in ("--set", s)]
    result = CliRunner().invoke(cli, [verb, str(DIGITS_MLP), *sets, *extra])
    assert result.exit_code == 2, result.output
    assert "model.outputs.label: the model's output cannot fit the category target `label`" in result.output
    assert "expected: shape (batch, 10)" in result.output and "received: shape (batch, 8, 8, 10)" in result.output
    assert "flatten" in result.output and "Traceback" not in result.output


def test_the_run_table_lists_every_pipeline_stage_once():
    from kerasflow.pipeline import STAGES
    from kerasflow.spec.schema import PIPELINE_STAGES

    assert tuple(s.name for s in STAGES) == PIPELINE_STAGES


def test_state_and_metrics_of_a_fresh_directory_are_empty(tmp_path):
    from kerasflow.runs import RunDir

    run = RunDir(tmp_path / "new")
    assert run.state() == {} and run.metrics() == {}
    run.path.mkdir()
    run.write_state({"stages": {}, "epoch": 0})
    assert json.loads((run / "state.json").read_text()) == run.state() == {"stages": {}, "epoch": 0}
