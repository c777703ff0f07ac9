"""One error type for every user-facing spec problem.

A `SpecError` carries all problems found, each with the source location, the
dotted spec path, what was expected, what was received and a fix if known.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    path: str
    message: str
    expected: str | None = None
    received: str | None = None
    hint: str | None = None
    location: Location | None = None

    def format(self) -> str:
        where = f"{self.location}: " if self.location else ""
        head = f"{where}{self.path or '<root>'}: {self.message}"
        lines = [head]
        if self.expected is not None:
            lines.append(f"    expected: {self.expected}")
        if self.received is not None:
            lines.append(f"    received: {self.received}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


class SpecError(Exception):
    """Raised with every problem found in a spec (or in data/model built from it)."""

    def __init__(self, problems: Problem | Sequence[Problem] | str, *, path: str = ""):
        if isinstance(problems, str):
            problems = [Problem(path=path, message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__(self.format())

    def format(self) -> str:
        n = len(self.problems)
        header = f"{n} problem{'s' if n != 1 else ''} in spec:"
        return "\n".join([header] + [p.format() for p in self.problems])

    def __str__(self) -> str:
        return self.format()


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Closest registered names to `name` (difflib ratio >= 0.6)."""
    return difflib.get_close_matches(str(name), sorted(set(map(str, candidates))), n=n, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = suggest(name, candidates)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"


Locations = dict[tuple, Location]


def locate(locs: Locations, path: Sequence[object]) -> Location | None:
    """The location of `path`, or of its nearest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in locs:
            return locs[path]
        path = path[:-1]
    return locs.get(())


def join_path(parts: Sequence[object]) -> str:
    """('model', 'nodes', 'h2', 'units') -> 'model.nodes.h2.units'; list indexes as [i]."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out
