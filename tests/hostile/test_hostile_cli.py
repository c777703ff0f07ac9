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
