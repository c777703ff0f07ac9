"""Security of spec handling: a spec (or a run directory's copy of it) never
runs code without consent, and names that become paths stay in their folder."""

import json
import sys
import textwrap

import pytest
import yaml

from invalid_cases import BASE_YAML
from kerasflow.spec.errors import SpecError
from kerasflow.spec.imports import ENV
from kerasflow.spec.loader import load_spec

EVIL = "open({marker!r}, 'w').close()\n"


@pytest.fixture()
def evil_module(tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    (tmp_path / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delitem(sys.modules, "evil_mod", raising=False)  # an earlier import would hide a new one
    return marker


def _spec_with_imports(tmp_path) -> dict:
    data = yaml.safe_load(BASE_YAML)
    data["model"]["imports"] = ["evil_mod"]
    return data


def test_validate_does_not_import_model_imports(tmp_path, evil_module):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec_with_imports(tmp_path)))
    assert load_spec(path).spec.model.imports == ["evil_mod"]
    assert not evil_module.exists()


def test_consent_from_the_environment_imports(tmp_path, evil_module, monkeypatch):
    monkeypatch.setenv(ENV, "1")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec_with_imports(tmp_path)))
    load_spec(path)
    assert evil_module.exists()


def test_tampered_run_directory_spec_runs_no_code(tmp_path, evil_module):
    from kerasflow.train.rundir import read_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.resolved.yaml").write_text(yaml.safe_dump(_spec_with_imports(tmp_path)))
    (run / "stats.json").write_text(json.dumps({}))
    (run / "targets.json").write_text(json.dumps({}))
    try:
        read_run(run)
    except SpecError:
        pass  # whatever else the run lacks, the point is that nothing was imported
    assert not evil_module.exists()


@pytest.mark.parametrize("field", ["name", "stage", "model_name", "experiment", "run_name"])
def test_names_that_become_paths_cannot_escape(tmp_path, field):
    data = yaml.safe_load(BASE_YAML)
    where = {"name": data, "stage": data["training"]["stages"][0], "model_name": data.setdefault("export", {}),
             "experiment": data.setdefault("tracking", {}), "run_name": data.setdefault("tracking", {})}[field]
    where["name" if field == "stage" else field] = ".."
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="one path component"):
        load_spec(path)


def test_checkpoint_folder_of_a_dotdot_stage_is_refused(tmp_path):
    """The reported hole: stage `..` resolved checkpoints/<stage> to checkpoints/ itself and deleted it."""
    path = tmp_path / "spec.yaml"
    path.write_text(BASE_YAML.replace("    - name: main\n", "    - name: ..\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (problem,) = info.value.problems
    assert problem.path == "training.stages[0].name" and problem.location.line > 1
    assert textwrap.shorten(problem.message, 60).startswith("expected a name usable as one path component")
