"""Every invalid spec of the corpus fails with a SpecError naming the path and what is wrong."""

from __future__ import annotations

import copy

import pytest
import yaml

from invalid_cases import BASE_YAML, CASES, DELETE
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec


def _apply(case: dict) -> str:
    if "text" in case:
        return case["text"]
    data = yaml.safe_load(BASE_YAML)
    for dotted in case.get("drop", []):
        *parents, last = dotted.split(".")
        cur = data
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        del cur[last]
    for dotted, value in case.get("set", {}).items():
        *parents, last = dotted.split(".")
        cur = data
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur.setdefault(p, {})
        if value is DELETE:
            cur.pop(last, None)
        elif isinstance(cur, list):
            cur[int(last)] = copy.deepcopy(value)
        else:
            cur[last] = copy.deepcopy(value)
    return yaml.safe_dump(data, sort_keys=False)


def test_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES), "case ids must be unique"


def test_base_spec_is_valid(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(BASE_YAML)
    assert load_spec(path).spec.name == "base"


@pytest.mark.parametrize("case,path,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec(tmp_path, case, path, fragment):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(_apply(case))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    problems = info.value.problems
    if path is not None:
        matching = [p for p in problems if p.path == path]
        assert matching, f"no problem at {path!r}; got:\n{info.value}"
    else:
        matching = problems
    assert any(fragment in p.format() for p in matching), f"{fragment!r} not in:\n{info.value}"
    # Every problem points back into the file.
    assert all(p.location is not None and p.location.file.endswith("spec.yaml") for p in matching), str(info.value)


def test_all_problems_are_reported_at_once(tmp_path):
    data = yaml.safe_load(BASE_YAML)
    data["data"]["batch_size"] = 0
    data["model"]["nodes"]["h1"]["layer"] = "dnse"
    data["training"]["stages"][0]["epochs"] = -1
    data["extra"] = 1
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    paths = {p.path for p in info.value.problems}
    assert {"data.batch_size", "model.nodes.h1.layer", "training.stages[0].epochs", "extra"} <= paths


def test_error_points_at_line_and_column(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(BASE_YAML.replace("units: 64,", "units: -64,"))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    (problem,) = info.value.problems
    line = BASE_YAML.splitlines().index("    h2:  {layer: dense, input: h1, units: 64, activation: relu}") + 1
    assert problem.location.line == line
    assert str(problem.format()).startswith(f"{problem.location.file}:{line}:")
    assert "received: -64" in problem.format()


def test_unknown_key_named_like_the_type_hides_no_other_problem(tmp_path):
    data = yaml.safe_load(BASE_YAML)
    data["data"]["features"]["pixels"].update({"numeric": 1, "normalise": True})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    paths = {p.path for p in info.value.problems}
    assert {"data.features.pixels.numeric", "data.features.pixels.normalise"} <= paths, str(info.value)
