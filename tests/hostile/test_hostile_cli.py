"""The hostile corpus, run in-process through the real `kerasflow` command:
every case exits non-zero with a clear message, never a traceback."""

from __future__ import annotations

import collections
import re

import pytest
from click.testing import CliRunner

from hostile_cases import all_cases
from kerasflow.cli import cli

CASES = all_cases()


def check_refused(result, case) -> None:
    out = result.output
    assert result.exit_code not in (0, None), f"accepted:\n{out}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out and "internal error" not in out, out
    for want in case.expect:
        found = want.search(out) if isinstance(want, re.Pattern) else want in out
        assert found, f"{want!r} not in:\n{out}"
    for secret in case.forbid:
        assert secret not in out, f"echoed {secret!r}:\n{out}"


def test_corpus_size_and_ids():
    counts = collections.Counter(c.cls for c in CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
    assert len(CASES) >= 300, counts


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_clearly(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = case.build(tmp_path)
    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    check_refused(result, case)


def _chain_spec(path, n: int, cycle: bool) -> None:
    """A chain of `n` dense nodes declared output-first (each node's input is
    declared after it); with `cycle`, the last node reads the first."""
    import yaml

    nodes = {"out": {"layer": "dense", "input": "n0", "units": 10, "activation": "softmax"}}
    for i in range(n - 1):
        nodes[f"n{i}"] = {"layer": "dense", "input": f"n{i + 1}", "units": 4}
    nodes[f"n{n - 1}"] = {"layer": "dense", "input": "n0" if cycle else "pixels", "units": 4}
    spec = {
        "kerasflow": 1, "name": "deep",
        "data": {"source": {"type": "sklearn", "name": "digits"},
                 "features": {"pixels": {"type": "numeric", "shape": [64]}},
                 "target": {"name": "label", "type": "category", "num_classes": 10}},
        "model": {"nodes": nodes, "outputs": {"label": "out"}},
        "training": {"loss": "sparse_categorical_crossentropy",
                     "stages": [{"name": "main", "epochs": 1, "optimizer": {"type": "adam"}}]},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_deep_graph_declared_output_first_validates(tmp_path):
    _chain_spec(tmp_path / "deep.yaml", 1500, cycle=False)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "deep.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok")


def test_a_cycle_through_a_deep_graph_is_named(tmp_path):
    _chain_spec(tmp_path / "cycle.yaml", 1500, cycle=True)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "cycle.yaml")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "cycle" in result.output and "n0" in result.output, result.output
