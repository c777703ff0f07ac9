"""The spec verbs as a user runs them: separate processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from invalid_cases import BASE_YAML


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kerasflow.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_validate_ok(tmp_path):
    (tmp_path / "s.yaml").write_text(BASE_YAML)
    res = run("validate", str(tmp_path / "s.yaml"))
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout and "base" in res.stdout


def test_validate_reports_every_file_and_problem_without_traceback(tmp_path):
    (tmp_path / "good.yaml").write_text(BASE_YAML)
    (tmp_path / "bad.yaml").write_text(BASE_YAML.replace("units: 64", "units: -1").replace("layer: dense, input: pixels", "layer: dnse, input: pixels"))
    res = run("validate", str(tmp_path / "good.yaml"), str(tmp_path / "bad.yaml"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "2 problems" in res.stderr
    assert "bad.yaml:12:" in res.stderr and "did you mean `dense`?" in res.stderr
    assert "model.nodes.h2.units" in res.stderr


def test_validate_missing_file_is_clean_error(tmp_path):
    res = run("validate", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "file not found" in res.stderr and "Traceback" not in res.stderr


def test_a_profiled_command_still_writes_its_profile(tmp_path):
    """The command line ends without the interpreter's teardown, except under a
    profiler, which writes its report after the command returns."""
    import pstats

    (tmp_path / "s.yaml").write_text(BASE_YAML)
    profile = tmp_path / "validate.prof"
    res = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "kerasflow.cli", "validate",
                          str(tmp_path / "s.yaml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "ok" in res.stdout
    assert any(name == "load_spec" for _, _, name in pstats.Stats(str(profile)).stats)


def test_validate_imports_no_tensorflow_keras_or_mlflow(tmp_path):
    (tmp_path / "s.yaml").write_text(BASE_YAML)
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerasflow.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['validate', {str(tmp_path / 's.yaml')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mlflow', 'keras_tuner'))\n"
        "print(heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("verb", ["plan", "train", "tune", "run"])
def test_spec_errors_come_before_heavy_imports(tmp_path, verb):
    """A typo in a spec is reported in well under a second: no verb imports TensorFlow,
    KerasTuner or MLflow before the spec is read and validated (tune took ~13 s to say
    "file not found")."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE_YAML.replace("training:", "trainingg:", 1))
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerasflow.cli import cli\n"
        f"r = CliRunner().invoke(cli, [{verb!r}, {str(bad)!r}])\n"
        "assert r.exit_code == 2 and 'trainingg' in r.output, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mlflow', 'keras_tuner'))\n"
        "print(heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_render_fills_defaults_and_applies_set(tmp_path):
    (tmp_path / "s.yaml").write_text(BASE_YAML)
    res = run("render", str(tmp_path / "s.yaml"), "--set", "training.stages.0.epochs=3")
    assert res.returncode == 0, res.stderr
    rendered = yaml.safe_load(res.stdout)
    assert rendered["training"]["stages"][0]["epochs"] == 3
    assert rendered["tracking"]["alias"] == "champion"  # a default, filled in
    # what render prints validates again to the same thing
    (tmp_path / "r.yaml").write_text(res.stdout)
    assert run("validate", str(tmp_path / "r.yaml")).returncode == 0


def test_schema_describes_layers_for_editors(tmp_path):
    res = run("schema", "--out", str(tmp_path / "schema.json"))
    assert res.returncode == 0, res.stderr
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert schema["title"] == "kerasflow spec"
    dense = schema["$defs"]["Dense"]
    assert dense["properties"]["layer"] == {"const": "dense", "description": dense["properties"]["layer"]["description"]}
    assert "units" in dense["required"]
    assert "extends" in schema["properties"]


def test_schema_validates_a_real_spec_with_jsonschema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from kerasflow.api import json_schema

    jsonschema.validate(yaml.safe_load(BASE_YAML), json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**yaml.safe_load(BASE_YAML), "unknown": 1}, json_schema())


@pytest.mark.parametrize("template", ["mlp", "cnn", "rnn", "transformer"])
def test_init_writes_a_valid_spec(tmp_path, template):
    res = run("init", "myexp", "--template", template, "--dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    res = run("validate", str(tmp_path / "myexp.yaml"))
    assert res.returncode == 0, res.stderr
    again = run("init", "myexp", "--dir", str(tmp_path))
    assert again.returncode == 2 and "file exists" in again.stderr


def test_version():
    res = run("--version")
    assert res.returncode == 0 and "kerasflow" in res.stdout
