"""Resolve a spec file: read it safely (`kerasflow.spec.yaml_source`), merge
what it `extends`, apply `--set` overrides and `${...}` interpolation.

What `extends` may reach: YAML spec files only (names ending `.yaml`/`.yml`),
given relative to the file that names them or as absolute paths, regular files
of at most `MAX_BYTES`, at most `MAX_EXTENDS_DEPTH` files deep and
`MAX_EXTENDS_FILES` files in all. Anything else (`/etc/shadow`, a FIFO, a
device, a directory) is refused before it is opened, so no error can echo the
contents of a file that is not a spec.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kerasflow.spec.errors import Location, Problem, SpecError, join_path, locate
from kerasflow.spec.yaml_source import (  # noqa: F401  (parse_yaml, load_yaml_value: public API)
    MAX_BYTES, MAX_DEPTH, MAX_VALUES, SPEC_SUFFIXES, Locations, load_yaml_value, parse_yaml, read_spec_text,
)

MAX_EXTENDS_DEPTH = 32
MAX_EXTENDS_FILES = 256
_INTERP = re.compile(r"\$\{([^}]*)\}")
SOURCE_PATH_KEYS = ("path", "validation_path", "test_path")


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus what produced it."""

    spec: Any  # kerasflow.spec.schema.Spec
    raw: dict  # the resolved dict (markers kept) that validated into `spec`
    locs: Locations = field(repr=False)
    path: Path | None = None

    @property
    def hash(self) -> str:
        return spec_hash(self.raw)


def spec_hash(raw: dict) -> str:
    """Content hash of a resolved spec (key order does not matter)."""
    blob = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- extends


def read_file(path: Path, _stack: tuple[Path, ...] = (), _from: Location | None = None,
              _from_path: str = "extends", _budget: list[int] | None = None) -> tuple[dict, Locations]:
    """Read a spec file and everything it `extends`, merged (bases first)."""
    budget = _budget if _budget is not None else [MAX_EXTENDS_FILES]
    path = Path(os.path.realpath(path))  # never raises, even on a symlink loop (then opening fails clearly)
    if path in _stack:
        chain = " -> ".join(p.name for p in _stack + (path,))
        raise SpecError(Problem(path=_from_path, message=f"extends cycle: {chain}", location=_from,
                                hint="remove one of the `extends` entries"))
    if len(_stack) > MAX_EXTENDS_DEPTH:
        raise SpecError(Problem(path=_from_path, message=f"`extends` chains more than {MAX_EXTENDS_DEPTH} files deep",
                                location=_from, hint="extend fewer levels of fragments"))
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(Problem(path=_from_path, message=f"`extends` reaches more than {MAX_EXTENDS_FILES} files",
                                location=_from, hint="a fragment extended along many paths is read each time"))
    display = _display(path)
    text = read_spec_text(path, key=_from_path if _stack else "", location=_from)
    data, locs = parse_yaml(text, display)
    _absolutize_source_paths(data, path.parent)
    extends = data.pop("extends", None)
    if extends is None:
        return data, locs
    entries = [extends] if isinstance(extends, str) else extends
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise SpecError(Problem(path="extends", message="invalid value", expected="a path or a list of paths",
                                received=repr(extends)[:80], location=locs.get(("extends",))))
    merged: dict = {}
    merged_locs: Locations = {}
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        where = locs.get(("extends", i), locs.get(("extends",)))
        key = f"extends[{i}]" if isinstance(extends, list) else "extends"
        try:
            target = _extends_target(path.parent, entry, key, where)
            base, base_locs = read_file(target, _stack + (path,), where, key, budget)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        merged = deep_merge(merged, base)
        merged_locs.update(base_locs)
    if problems:
        raise SpecError(problems)
    merged_locs.update({k: v for k, v in locs.items() if k[:1] != ("extends",)})
    return deep_merge(merged, data), merged_locs


def _extends_target(base: Path, entry: str, key: str, where: Location | None) -> Path:
    """The file an `extends` entry names, if it may be read (see the module docstring)."""
    target = base / entry  # an absolute entry replaces base
    real = Path(os.path.realpath(target))
    linked = real != Path(os.path.abspath(target))
    for name in (target.name, real.name):
        if not name.lower().endswith(SPEC_SUFFIXES):
            shown = entry if len(entry) <= 120 else entry[:60] + "..." + entry[-40:]
            raise SpecError(Problem(
                path=key, message=f"`{shown}` is not a spec file" + (f" (it links to {real})" if linked else ""),
                expected="a path to a .yaml or .yml spec (relative to this file, or absolute)",
                hint="`extends` only merges spec fragments; other files are never read", location=where))
    return target


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _absolutize_source_paths(data: dict, base: Path) -> None:
    """Data file paths are relative to the spec file that names them."""
    source = data.get("data", {}).get("source") if isinstance(data.get("data"), dict) else None
    if not isinstance(source, dict):
        return
    for key in SOURCE_PATH_KEYS:
        value = source.get(key)
        if isinstance(value, str) and value and "${" not in value and not os.path.isabs(value):
            source[key] = str((base / value).resolve())
        elif isinstance(value, list):
            source[key] = [str((base / v).resolve()) if isinstance(v, str) and not os.path.isabs(v) else v for v in value]


def deep_merge(base: Any, top: Any) -> Any:
    """Mappings merge key by key; anything else in `top` replaces `base`."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(top)


# ---------------------------------------------------------------- --set overrides


def apply_overrides(data: dict, overrides: Iterable[str], locs: Locations) -> dict:
    """Apply `a.b.c=value` overrides; values are parsed as YAML (`[1, 2]`, `true`, `1e-3`)."""
    problems: list[Problem] = []
    data = copy.deepcopy(data)
    for n, item in enumerate(overrides, start=1):
        where = Location(f"--set #{n}", 1, 1)
        key, sep, text = item.partition("=")
        parts = key.strip().split(".") if key.strip() else []
        if not sep or not parts or any(p == "" for p in parts):
            shown = item if len(item) <= 120 else item[:100] + "..."
            problems.append(Problem(path=(key or item)[:120], message=f"bad --set `{shown}`",
                                    expected="dotted.path=value", received=shown, location=where))
            continue
        if len(parts) > MAX_DEPTH:
            problems.append(Problem(path=".".join(parts[:4]) + "...", message=f"the --set path has {len(parts)} parts",
                                    expected=f"at most {MAX_DEPTH} (no spec nests that deep)", location=where))
            continue
        try:
            value = load_yaml_value(text, where.file, tuple(parts)) if text.strip() else ""
        except SpecError as exc:
            problems.extend(Problem(path=key, message="the --set value is not valid YAML" if "YAML syntax" in p.message
                                    else f"the --set value is refused: {p.message}",
                                    received=text if len(text) <= 80 else text[:60] + "...",
                                    hint=p.hint, location=where) for p in exc.problems)
            continue
        if parts[-1] in SOURCE_PATH_KEYS and parts[:2] == ["data", "source"] and isinstance(value, str) \
                and not os.path.isabs(value):
            value = str(Path(value).resolve())
        new = _first_new(data, parts)
        problem = _set_path(data, parts, value, where)
        if problem:
            problems.append(problem)
        else:  # what this --set created is located at it (not at the nearest key from a file)
            path = tuple(int(p) if p.isdigit() else p for p in parts)
            locs.update({path[:i]: where for i in range(min(new, len(path) - 1) + 1, len(path) + 1)})
    if problems:
        raise SpecError(problems)
    return data


def _first_new(data: dict, parts: list[str]) -> int:
    """How many leading parts of a --set path already exist in `data`."""
    cur: Any = data
    for i, part in enumerate(parts):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return i
    return len(parts)


def _set_path(data: dict, parts: list[str], value: Any, where: Location) -> Problem | None:
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        so_far = ".".join(parts[: i + 1])
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                return Problem(path=".".join(parts), message=f"bad --set path: `{so_far}` is not an index of a list "
                               f"of {len(cur)} items", expected=f"an index 0..{len(cur) - 1}", location=where)
            if last:
                cur[int(part)] = value
            else:
                cur = cur[int(part)]
        elif isinstance(cur, dict):
            if last:
                cur[part] = value
            else:
                cur = cur.setdefault(part, {})
        else:
            parent = ".".join(parts[:i])
            return Problem(path=".".join(parts), message=f"bad --set path: `{parent}` is a {type(cur).__name__}, "
                           f"not a mapping", received=repr(cur), location=where)
    return None


# ---------------------------------------------------------------- ${...}


MAX_VAR_CHAIN = 8


def interpolate(data: Any, locs: Locations, env: dict[str, str] | None = None) -> Any:
    """Replace `${env:NAME}`, `${env:NAME,default}` and `${name}` (from `vars:`).

    A variable may use other variables (at most `MAX_VAR_CHAIN` deep; a cycle
    is an error). A reference that is the whole value keeps the variable's type;
    inside text only a scalar can be used (a mapping or list there is an error).
    """
    env = dict(os.environ) if env is None else env
    variables = data.get("vars", {}) if isinstance(data, dict) else {}
    variables = variables if isinstance(variables, dict) else {}
    problems: list[Problem] = []
    resolved: dict[str, Any] = {}
    resolving: list[str] = []

    def problem(path: tuple, message: str, **kw) -> None:
        problems.append(Problem(path=join_path(path), message=message, location=locate(locs, path), **kw))

    def variable(name: str, path: tuple) -> Any:
        if name in resolved:
            return resolved[name]
        if name in resolving:
            chain = resolving[resolving.index(name):] + [name]
            problem(("vars", chain[0]), "variables refer to each other in a cycle: " +
                    " -> ".join(f"${{{c}}}" for c in chain), hint="give one of them a plain value")
            resolved.update({c: None for c in chain})
            return None
        if len(resolving) >= MAX_VAR_CHAIN:
            problem(path, f"variables refer to variables more than {MAX_VAR_CHAIN} deep",
                    received=" -> ".join(resolving + [name]))
            resolved[name] = None
            return None
        resolving.append(name)
        try:
            value = walk(variables[name], ("vars", name))
        finally:
            resolving.pop()
        resolved[name] = value
        return value

    def lookup(expr: str, path: tuple) -> Any:
        expr = expr.strip()
        if expr.startswith("env:"):
            name, comma, default = expr[4:].partition(",")
            name = name.strip()
            if name in env:
                return env[name]
            if comma:
                return default.strip()
            problem(path, f"environment variable `{name}` is not set",
                    hint=f"export {name}=... or write `${{env:{name},default}}`")
            return None
        if expr in variables:
            return variable(expr, path)
        problem(path, f"unknown variable `${{{expr}}}`", expected="${env:NAME}, ${env:NAME,default} or a key of `vars:`")
        return None

    def as_text(expr: str, path: tuple) -> str:
        reported = len(problems)
        value = lookup(expr, path)
        if value is None and len(problems) == reported:
            problem(path, f"`${{{expr.strip()}}}` is null, used inside text", expected="a string, number or boolean")
        if isinstance(value, (dict, list)):
            problem(path, f"`${{{expr.strip()}}}` is a {'mapping' if isinstance(value, dict) else 'list'} "
                    "used inside text", expected="a string, number or boolean variable inside text",
                    hint=f"use `${{{expr.strip()}}}` as the whole value to insert the {type(value).__name__}")
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) if k != "vars" or path else v for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            whole = _INTERP.fullmatch(value.strip())
            if whole:  # keep the type of a value that is just one reference
                return lookup(whole.group(1), path)
            return _INTERP.sub(lambda m: as_text(m.group(1), path), value)
        return value

    try:
        out = walk(data, ())
    except RecursionError:  # nested values inside chained variables; limits make this unreachable in practice
        raise SpecError(Problem(path="vars", message="variables nest too deeply")) from None
    if problems:
        raise SpecError(problems)
    return out


# ---------------------------------------------------------------- entry points


def resolve(path: str | os.PathLike, overrides: Iterable[str] = ()) -> tuple[dict, Locations]:
    """The resolved dict of a spec file: extends merged, overrides applied, interpolated."""
    data, locs = read_file(Path(path))
    data = apply_overrides(data, overrides, locs)
    data = interpolate(data, locs)
    return data, locs


def load_spec(path: str | os.PathLike, overrides: Iterable[str] = ()) -> LoadedSpec:
    """Resolve and validate a spec file; raise `SpecError` with every problem."""
    raw, locs = resolve(path, overrides)
    from kerasflow.spec.schema import validate_spec  # after resolving: a file refused early costs no schema build

    spec = validate_spec(raw, locs)
    return LoadedSpec(spec=spec, raw=raw, locs=locs, path=Path(path).resolve())


def load_spec_dict(raw: dict, locs: Locations | None = None) -> LoadedSpec:
    """Validate an in-memory resolved dict (used by the tuner after filling markers)."""
    from kerasflow.spec.schema import validate_spec

    return LoadedSpec(spec=validate_spec(raw, locs or {}), raw=raw, locs=locs or {})
