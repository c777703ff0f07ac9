"""Loader: extends, --set overrides, interpolation, locations."""

from __future__ import annotations

import pytest

from invalid_cases import BASE_YAML
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec, resolve


def write(path, text):
    path.write_text(text)
    return path


def test_extends_deep_merges_with_file_on_top(tmp_path):
    write(tmp_path / "base.yaml", BASE_YAML)
    write(tmp_path / "fragments.yaml", "training:\n  stages:\n    - {name: long, epochs: 50}\n")
    top = write(tmp_path / "top.yaml", "extends: [base.yaml, fragments.yaml]\nname: top\ndata:\n  batch_size: 16\n")
    loaded = load_spec(top)
    assert loaded.spec.name == "top"
    assert loaded.spec.data.batch_size == 16
    assert loaded.spec.data.features["pixels"].normalize is True  # kept from base
    assert [s.name for s in loaded.spec.training.stages] == ["long"]  # lists replace


def test_extends_relative_to_including_file(tmp_path):
    (tmp_path / "specs").mkdir()
    write(tmp_path / "specs" / "base.yaml", BASE_YAML)
    top = write(tmp_path / "pipe.yaml", "extends: specs/base.yaml\nname: pipe\n")
    assert load_spec(top).spec.name == "pipe"


def test_extends_cycle(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: [a.yaml]\n")
    with pytest.raises(SpecError, match=r"extends cycle: a.yaml -> b.yaml -> a.yaml"):
        load_spec(tmp_path / "a.yaml")


def test_extends_missing_file_points_at_entry(tmp_path):
    top = write(tmp_path / "top.yaml", "kerasflow: 1\nextends:\n  - nothere.yaml\n")
    with pytest.raises(SpecError) as info:
        load_spec(top)
    (problem,) = info.value.problems
    assert problem.path == "extends[0]" and "file not found" in problem.message
    assert (problem.location.line, problem.location.col) == (3, 5)


def test_extends_error_in_base_names_base_file(tmp_path):
    write(tmp_path / "base.yaml", BASE_YAML.replace("batch_size: 64", "batch_size: -1"))
    top = write(tmp_path / "top.yaml", "extends: base.yaml\nname: top\n")
    with pytest.raises(SpecError) as info:
        load_spec(top)
    assert info.value.problems[0].location.file.endswith("base.yaml")


def test_set_overrides_parse_yaml_values(tmp_path):
    spec = write(tmp_path / "s.yaml", BASE_YAML)
    loaded = load_spec(spec, ["training.stages.0.epochs=2", "data.features.pixels.shape=[64]",
                              "model.nodes.h2.activation=tanh", "training.stages.0.optimizer.learning_rate=1e-2"])
    assert loaded.spec.training.stages[0].epochs == 2
    assert loaded.spec.model.nodes["h2"].activation == "tanh"
    assert loaded.spec.training.stages[0].optimizer.learning_rate == pytest.approx(0.01)


@pytest.mark.parametrize("override,fragment", [
    ("training.stages.5.epochs=2", "not an index of a list of 1 items"),
    ("name.first=3", "`name` is a str, not a mapping"),
    ("noequals", "bad --set"),
    ("a..b=1", "bad --set"),
    ("=1", "bad --set"),
    ("data.batch_size=[unclosed", "not valid YAML"),
])
def test_bad_set_path(tmp_path, override, fragment):
    spec = write(tmp_path / "s.yaml", BASE_YAML)
    with pytest.raises(SpecError, match="--set|bad") as info:
        load_spec(spec, [override])
    assert fragment in str(info.value)


def test_set_unknown_key_is_a_schema_error(tmp_path):
    spec = write(tmp_path / "s.yaml", BASE_YAML)
    with pytest.raises(SpecError) as info:
        load_spec(spec, ["training.stages.0.epochz=2"])
    (problem,) = info.value.problems
    assert problem.path == "training.stages[0].epochz" and "--set #1" in str(problem.location)


def test_a_mapping_created_by_set_is_located_at_the_set(tmp_path):
    # model.nodes.h9 does not exist: the error is the --set's, not the `model:` line's of the file
    spec = write(tmp_path / "s.yaml", BASE_YAML)
    with pytest.raises(SpecError) as info:
        load_spec(spec, ["training.epochs=3", "model.nodes.h9.units=8"])
    problems = {p.path: str(p.location) for p in info.value.problems}
    assert problems == {"training.epochs": "--set #1:1:1", "model.nodes.h9": "--set #2:1:1"}


def test_env_and_vars_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("KF_EXPERIMENT", "from-env")
    text = BASE_YAML + "vars: {width: 32}\ntracking: {experiment: '${env:KF_EXPERIMENT}', run_name: 'w${width}'}\n"
    text = text.replace("units: 64,", "units: '${width}',")
    loaded = load_spec(write(tmp_path / "s.yaml", text))
    assert loaded.spec.tracking.experiment == "from-env"
    assert loaded.spec.tracking.run_name == "w32"
    assert loaded.spec.model.nodes["h2"].units == 32  # a whole-value reference keeps its type


def test_env_default_and_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("KF_NOPE", raising=False)
    ok = write(tmp_path / "ok.yaml", BASE_YAML + "tracking: {experiment: '${env:KF_NOPE,fallback}'}\n")
    assert load_spec(ok).spec.tracking.experiment == "fallback"
    bad = write(tmp_path / "bad.yaml", BASE_YAML + "tracking: {experiment: '${env:KF_NOPE}'}\n")
    with pytest.raises(SpecError, match="environment variable `KF_NOPE` is not set") as info:
        load_spec(bad)
    assert info.value.problems[0].path == "tracking.experiment"


def test_source_paths_are_relative_to_the_spec_file(tmp_path):
    (tmp_path / "sub").mkdir()
    text = BASE_YAML.replace("source: {type: sklearn, name: digits}", "source: {type: csv, path: data.csv}")
    raw, _ = resolve(write(tmp_path / "sub" / "s.yaml", text))
    assert raw["data"]["source"]["path"] == str((tmp_path / "sub" / "data.csv").resolve())


def test_spec_is_frozen(tmp_path):
    loaded = load_spec(write(tmp_path / "s.yaml", BASE_YAML))
    with pytest.raises(Exception):
        loaded.spec.name = "other"


def test_hash_ignores_key_order_but_not_values(tmp_path):
    import yaml

    data = yaml.safe_load(BASE_YAML)
    reordered = dict(reversed(list(data.items())))
    a = load_spec(write(tmp_path / "a.yaml", BASE_YAML))
    b = load_spec(write(tmp_path / "b.yaml", yaml.safe_dump(reordered, sort_keys=False)))
    assert a.hash == b.hash
    assert load_spec(tmp_path / "a.yaml", ["seed=7"]).hash != a.hash


def test_exponent_floats_are_numbers_like_yaml_1_2(tmp_path):
    text = BASE_YAML.replace("learning_rate: 0.001", "learning_rate: {tune: float, min: 1e-4, max: 1E-2, sampling: log}")
    loaded = load_spec(write(tmp_path / "s.yaml", text), ["training.stages.0.optimizer.clipnorm=1e0"])
    opt = loaded.spec.training.stages[0].optimizer
    assert opt.learning_rate.min == pytest.approx(1e-4) and opt.clipnorm == 1.0
