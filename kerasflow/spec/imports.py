"""A spec's `model.imports`: the only code a spec can bring in, and only with
the user's explicit consent (`--allow-imports`, or KERASFLOW_ALLOW_IMPORTS=1):
a spec is untrusted input (a shared file, a run directory's
spec.resolved.yaml), and importing a module runs it."""

import importlib
import os

from kerasflow.spec.errors import Locations, Problem, SpecError, join_path, locate

ENV = "KERASFLOW_ALLOW_IMPORTS"
HOW_TO_ALLOW = f"pass --allow-imports (or set {ENV}=1) if you trust the module"


def allow_imports() -> None:
    """Consent to importing `model.imports`, for this process and the processes
    it starts (tuning workers, multi-worker training)."""
    os.environ[ENV] = "1"


def imports_allowed() -> bool:
    return os.environ.get(ENV) == "1"


def import_modules(modules: list, locs: Locations | None = None) -> None:
    """Import `modules` (they register custom layer or block types); raise one
    `SpecError` naming each module refused or failing, where the spec lists it."""
    problems = []
    allowed = imports_allowed()
    for i, module in enumerate(modules):
        if not isinstance(module, str):
            continue  # the schema reports the wrong type
        path = ("model", "imports", i)
        if not allowed:
            problems.append(Problem(path=join_path(path), message=f"importing `{module}` would run its code: refused "
                                    "without your consent", hint=HOW_TO_ALLOW, location=locate(locs or {}, path)))
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module may fail in any way: report where it was named
            problems.append(Problem(path=join_path(path), message=f"cannot import `{module}`: {exc}",
                                    hint="install the module or add its directory to PYTHONPATH",
                                    location=locate(locs or {}, path)))
    if problems:
        raise SpecError(problems)
