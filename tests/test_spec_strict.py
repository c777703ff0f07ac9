"""The generated strict corpus (tests/strict_cases.py): every case fails
validation with a SpecError at the right dotted path, pointing into the file
(file:line:col), saying what was expected; a sample goes through the CLI to
check the exit code and that no traceback is printed."""

import subprocess
import sys

import pytest

from invalid_cases import BASE_YAML
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec
from strict_cases import CASES, apply_case


def test_corpus_size_and_ids():
    assert len(CASES) >= 200
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


def test_base_is_valid(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(apply_case({}))
    assert load_spec(path).spec.name == "base"


@pytest.mark.parametrize("changes,path,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_strict_case(tmp_path, changes, path, fragment):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(apply_case(changes))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    matching = [p for p in info.value.problems if p.path == path]
    assert matching, f"no problem at {path!r}; got:\n{info.value}"
    assert any(fragment in p.format() for p in matching), f"{fragment!r} not in:\n{info.value}"
    assert all(p.location is not None and p.location.file.endswith("spec.yaml") and p.location.line >= 1
               for p in matching), str(info.value)


SAMPLE = [c for i, c in enumerate(CASES) if i % 25 == 0]


@pytest.mark.parametrize("changes,path,fragment", [c[1:] for c in SAMPLE], ids=[c[0] for c in SAMPLE])
def test_cli_reports_strict_case_without_traceback(tmp_path, changes, path, fragment):
    (tmp_path / "spec.yaml").write_text(apply_case(changes))
    res = subprocess.run([sys.executable, "-m", "kerasflow.cli", "validate", "spec.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "spec.yaml:" in res.stderr and f"{path}:" in res.stderr and fragment in res.stderr


def test_base_yaml_is_the_shared_one():
    assert apply_case({}).startswith('"kerasflow": 1\n"name": "base"')
    assert "kerasflow: 1" in BASE_YAML


def test_keras_names_match_the_installed_keras():
    """spec/keras_names.py (TF-free) against Keras' own resolution, through its public API."""
    keras = pytest.importorskip("keras")
    from kerasflow.spec.keras_names import LOSSES, METRICS

    def resolves(get, name) -> bool:
        try:
            return get(name) is not None
        except (ValueError, TypeError):
            return False

    assert all(resolves(keras.losses.get, n) for n in LOSSES)
    assert all(resolves(keras.metrics.get, n) for n in METRICS)
    for module, names in ((keras.losses, LOSSES), (keras.metrics, METRICS)):
        public = [n for n in dir(module) if not n.startswith("_") and n not in ("Loss", "Metric", "Reduction")]
        missing = [n for n in public if resolves(module.get, n) and n not in names]
        assert not missing, f"Keras resolves {missing} from {module.__name__}: add them to spec/keras_names.py"
