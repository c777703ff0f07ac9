"""A spec's `model.imports`: the only code a spec can bring in."""

from __future__ import annotations

import importlib

from kerasflow.spec.errors import Locations, Problem, SpecError, join_path, locate


def import_modules(modules: list, locs: Locations | None = None) -> None:
    """Import `modules` (they register custom layer or block types); raise one
    `SpecError` naming each module that fails, where the spec lists it."""
    problems = []
    for i, module in enumerate(modules):
        if not isinstance(module, str):
            continue  # the schema reports the wrong type
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module may fail in any way: report where it was named
            path = ("model", "imports", i)
            problems.append(Problem(path=join_path(path), message=f"cannot import `{module}`: {exc}",
                                    hint="install the module or add its directory to PYTHONPATH",
                                    location=locate(locs or {}, path)))
    if problems:
        raise SpecError(problems)
