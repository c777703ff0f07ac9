"""Every spec shipped in the repository validates; the generated docs are current;
README's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from kerasflow.spec.loader import load_spec, read_file

PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))
FRAGMENTS = sorted((REPO / "specs").rglob("*.yaml"))


@pytest.mark.parametrize("path", PIPELINES, ids=[p.name for p in PIPELINES])
def test_pipeline_validates(path):
    loaded = load_spec(path)
    assert loaded.spec.stages, f"{path.name} declares no stages"


@pytest.mark.parametrize("path", FRAGMENTS, ids=[str(p.relative_to(REPO / "specs")) for p in FRAGMENTS])
def test_fragment_sections_validate(path):
    """A fragment is a partial spec: each section it holds validates on its own."""
    from pydantic import ValidationError

    from kerasflow.spec.schema import Spec

    data, _ = read_file(path)
    assert data, f"{path} is empty"
    for key, value in data.items():
        field = Spec.model_fields[key]  # an unknown section name fails here
        if key in ("kerasflow", "name", "seed", "description", "stages", "vars"):
            continue
        try:
            from pydantic import TypeAdapter

            TypeAdapter(field.annotation).validate_python(value)
        except ValidationError as exc:  # pragma: no cover - shown on failure
            pytest.fail(f"{path}: section {key!r} is invalid:\n{exc}")


def _extended(path: Path, seen: set) -> set:
    """Every file `path` extends, transitively."""
    import yaml

    ext = (yaml.safe_load(path.read_text()) or {}).get("extends") or []
    for name in [ext] if isinstance(ext, str) else ext:
        target = (path.parent / name).resolve()
        if target not in seen:
            seen.add(target)
            _extended(target, seen)
    return seen


def test_every_fragment_is_used_by_a_pipeline_or_documented():
    used: set = set()
    for p in PIPELINES:
        _extended(p, used)
    listed = (REPO / "docs" / "fragments.md").read_text()
    unused = [str(f.relative_to(REPO)) for f in FRAGMENTS
              if f.resolve() not in used and f"`{f.relative_to(REPO)}`" not in listed]
    assert not unused, f"neither extended by a pipeline nor listed in docs/fragments.md: {unused}"
    assert len(used & {f.resolve() for f in FRAGMENTS}) >= 10  # the gallery composes fragments


def test_spec_reference_is_current():
    from kerasflow.api import reference

    doc = REPO / "docs" / "spec-reference.md"
    assert doc.exists() and doc.read_text() == reference(), (
        "docs/spec-reference.md is stale: run `kerasflow schema --reference --out docs/spec-reference.md`")


def test_every_key_of_every_schema_type_is_described_in_the_reference():
    """Nested types too (regularizers, schedules, callbacks' options, augmentation,
    the tuning objective): each has a section and each of its keys a description."""
    from kerasflow.spec.reference import documented_models, nested_models, render_reference

    documented = documented_models()
    undescribed = [f"{m.__name__}.{name}" for m in documented for name, field in m.model_fields.items()
                   if name not in ("type", "layer", "block", "tune") and not (field.description or "").strip()]
    assert not undescribed, f"fields without a description: {undescribed}"
    named = {n for m in documented for f in m.model_fields.values() for n in nested_models(f.annotation)}
    undocumented = [m.__name__ for m in named - set(documented) if not m.__name__.startswith(("Tune", "ChoiceOf"))]
    assert not undocumented, f"types with no reference section: {undocumented}"
    reference = render_reference()
    for section in ("`Regularizer`", "`CosineSchedule`", "`EarlyStopping`", "`Augmentation`", "`Objective`"):
        assert f"### {section}" in reference, section


def test_the_reference_says_which_verbs_run_multi_worker():
    """`kerasflow run` trains multi_worker specs too (tests/test_multi_worker.py); the reference must say so."""
    from kerasflow.spec.training_schema import TrainingSpec

    text = TrainingSpec.model_fields["distribution"].description
    assert "`kerasflow train` and `kerasflow run`" in text and "only" not in text


def test_ci_runs_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    install, test = 'python -m pip install -e ".[test,hub]"', "python -m pytest"
    assert 'pip install -e ".[test,hub]" && python -m pytest' in readme
    assert install in ci and ci.rstrip().endswith(test)
