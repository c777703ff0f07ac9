"""Whatever YAML a user writes, the loader answers with a Spec or a SpecError, nothing else."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invalid_cases import BASE_YAML
from kerasflow.spec.errors import SpecError
from kerasflow.spec.loader import load_spec, parse_yaml
from kerasflow.spec.schema import validate_spec

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["dense", "tune", "int", "adam", "pixels", "h1", "${env:X}"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=20)
BASE = yaml.safe_load(BASE_YAML)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(BASE) if p]


def _mutate(data, path, value, mode):
    import copy

    data = copy.deepcopy(data)
    cur = data
    for p in path[:-1]:
        cur = cur[p]
    if mode == "delete":
        del cur[path[-1]]
    elif mode == "extra" and isinstance(cur, dict):
        cur[str(value)[:10] or "x"] = value
    else:
        cur[path[-1]] = value
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("abc:-[]{}!&*#|>'\"\t\n %@`,?0123456789")), max_size=80))
def test_random_text_only_raises_spec_error(text):
    try:
        data, locs = parse_yaml(text, "fuzz.yaml")
    except SpecError as exc:
        _assert_reported(exc)
        return
    try:
        spec = validate_spec(data, locs)
    except SpecError as exc:
        _assert_reported(exc)
    else:
        assert spec.name and spec.training.stages  # accepted text is a whole spec


def _assert_reported(exc: SpecError) -> None:
    """A SpecError names at least one problem, each with a message, as the CLI prints it."""
    assert exc.problems and all(p.message for p in exc.problems)
    assert all(p.message in str(exc) for p in exc.problems)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values, mode=st.sampled_from(["replace", "delete", "extra"]))
def test_mutated_valid_spec_only_raises_spec_error(path, value, mode):
    mutated = _mutate(BASE, path, value, mode)
    try:
        text = yaml.safe_dump(mutated, sort_keys=False)
    except yaml.YAMLError:
        return
    try:
        data, locs = parse_yaml(text, "fuzz.yaml")
        validate_spec(data, locs)
    except SpecError as exc:
        _assert_reported(exc)


@settings(max_examples=40, deadline=None)
@given(overrides=st.lists(st.text(alphabet=st.sampled_from(list("abdegmnst._=0123[]{}:, ")), max_size=24), max_size=3))
def test_random_set_overrides_only_raise_spec_error(tmp_path_factory, overrides):
    path = tmp_path_factory.mktemp("s") / "s.yaml"
    path.write_text(BASE_YAML)
    try:
        loaded = load_spec(path, overrides)
    except SpecError as exc:
        _assert_reported(exc)
    else:
        assert loaded.spec.name and loaded.hash  # accepted overrides leave a whole spec
