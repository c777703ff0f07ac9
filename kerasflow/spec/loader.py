"""Read spec YAML safely, keeping `file:line:col` for every value, then resolve
`extends`, `--set` overrides and `${...}` interpolation.

Only plain YAML is accepted: no python/object or custom tags, no merge keys,
no duplicate keys, a mapping at the root, and a bounded number of values so an
alias bomb fails fast instead of eating memory.
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

import yaml

from kerasflow.spec.errors import Location, Problem, SpecError, join_path

MAX_VALUES = 100_000
_STD_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_INTERP = re.compile(r"\$\{([^}]*)\}")
SOURCE_PATH_KEYS = ("path", "validation_path", "test_path")

Locations = dict[tuple, Location]


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


# ---------------------------------------------------------------- YAML -> python


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as `1e-4` as numbers
    (YAML 1.1 needs a dot: `1.0e-4`), as users of learning rates expect."""


_SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml_value(text: str) -> Any:
    """Parse a YAML value (e.g. from `--set`) with the same rules as spec files."""
    return yaml.load(text, Loader=_SpecLoader)


def parse_yaml(text: str, filename: str = "<string>") -> tuple[dict, Locations]:
    """Parse one YAML document into plain python with a location per path."""
    try:
        loader = _SpecLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise SpecError(_yaml_problem(exc, filename)) from None
    except yaml.YAMLError as exc:  # e.g. reader errors on control characters
        raise SpecError(Problem(path="", message=f"not valid YAML: {exc}", location=Location(filename, 1, 1))) from None
    if node is None:
        raise SpecError(Problem(path="", message="the file is empty", expected="a mapping of spec sections",
                                location=Location(filename, 1, 1)))
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise SpecError(Problem(path="", message="the document root must be a mapping", expected="key: value pairs",
                                received=kind, location=_loc(node, filename)))
    locs: Locations = {(): _loc(node, filename)}
    problems: list[Problem] = []
    budget = [MAX_VALUES]
    data = _convert(node, (), filename, locs, problems, budget, yaml.constructor.SafeConstructor())
    if problems:
        raise SpecError(problems)
    return data, locs


def _loc(node: yaml.Node, filename: str) -> Location:
    return Location(filename, node.start_mark.line + 1, node.start_mark.column + 1)


def _yaml_problem(exc: yaml.MarkedYAMLError, filename: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    location = Location(filename, mark.line + 1, mark.column + 1) if mark else None
    problem = exc.problem or str(exc)
    hint = None
    if "'\\t'" in problem or "\t" in problem:
        problem = "a tab character is used for indentation"
        hint = "YAML indents with spaces only; replace the tab with spaces"
    elif exc.context:
        problem = f"{exc.context}, {problem}" if "found" in problem else problem
    return Problem(path="", message=f"YAML syntax error: {problem}", location=location, hint=hint)


def _convert(node, path, filename, locs, problems, budget, constructor):
    budget[0] -= 1
    if budget[0] < 0:
        if budget[0] == -1:
            problems.append(Problem(path=join_path(path), message=f"the document expands to more than {MAX_VALUES} values",
                                    hint="anchors/aliases that expand exponentially (an alias bomb) are rejected",
                                    location=_loc(node, filename)))
        return None
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            problems.append(_tag_problem(node, path, filename))
            return None
        out: dict = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(Problem(path=join_path(path), message="YAML merge keys (<<) are not supported",
                                        hint="use `extends:` to reuse spec fragments", location=_loc(key_node, filename)))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STD_TAGS:
                problems.append(Problem(path=join_path(path), message="mapping keys must be plain scalars",
                                        location=_loc(key_node, filename)))
                continue
            key = constructor.construct_object(key_node)
            if isinstance(key, bool) or key is None or isinstance(key, float):
                key = key_node.value  # `on:`/`null:` as keys mean the words, not booleans
            if key in first_seen:
                first = first_seen[key]
                problems.append(Problem(path=join_path(path + (key,)), message=f"duplicate key `{key}`",
                                        hint=f"first defined at line {first.start_mark.line + 1}",
                                        location=_loc(key_node, filename)))
                continue
            first_seen[key] = key_node
            locs[path + (key,)] = _loc(key_node, filename)
            out[key] = _convert(value_node, path + (key,), filename, locs, problems, budget, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            problems.append(_tag_problem(node, path, filename))
            return None
        items = []
        for i, item in enumerate(node.value):
            locs[path + (i,)] = _loc(item, filename)
            items.append(_convert(item, path + (i,), filename, locs, problems, budget, constructor))
        return items
    if node.tag not in _STD_TAGS:
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # dates stay text; no spec field is a date
        problems.append(_tag_problem(node, path, filename))
        return None
    try:
        return constructor.construct_object(node)
    except yaml.YAMLError as exc:
        problems.append(Problem(path=join_path(path), message=f"invalid scalar: {exc}", location=_loc(node, filename)))
        return None


def _tag_problem(node: yaml.Node, path: tuple, filename: str) -> Problem:
    return Problem(path=join_path(path), message=f"YAML tag `{node.tag}` is not allowed",
                   expected="plain YAML values (no python/object or custom tags)",
                   hint="remove the tag; specs never construct python objects", location=_loc(node, filename))


# ---------------------------------------------------------------- extends


def read_file(path: Path, _stack: tuple[Path, ...] = (), _from: Location | None = None,
              _from_path: str = "extends") -> tuple[dict, Locations]:
    """Read a spec file and everything it `extends`, merged (bases first)."""
    path = path.resolve()
    if path in _stack:
        chain = " -> ".join(p.name for p in _stack + (path,))
        raise SpecError(Problem(path=_from_path, message=f"extends cycle: {chain}", location=_from,
                                hint="remove one of the `extends` entries"))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Problem(path=_from_path, message=f"file not found: {path}", location=_from)) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise SpecError(Problem(path=_from_path, message=f"cannot read {path}: {exc}", location=_from)) from None
    display = _display(path)
    data, locs = parse_yaml(text, display)
    _absolutize_source_paths(data, path.parent)
    extends = data.pop("extends", None)
    if extends is None:
        return data, locs
    entries = [extends] if isinstance(extends, str) else extends
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise SpecError(Problem(path="extends", message="invalid value", expected="a path or a list of paths",
                                received=repr(extends), location=locs.get(("extends",))))
    merged: dict = {}
    merged_locs: Locations = {}
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        where = locs.get(("extends", i), locs.get(("extends",)))
        try:
            base, base_locs = read_file(path.parent / entry, _stack + (path,), where, f"extends[{i}]" if isinstance(extends, list) else "extends")
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        merged = deep_merge(merged, base)
        merged_locs.update(base_locs)
    if problems:
        raise SpecError(problems)
    merged_locs.update({k: v for k, v in locs.items() if k[:1] != ("extends",)})
    return deep_merge(merged, data), merged_locs


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
            problems.append(Problem(path=key or item, message=f"bad --set `{item}`", expected="dotted.path=value",
                                    received=item, location=where))
            continue
        try:
            value = load_yaml_value(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            problems.append(Problem(path=key, message="the --set value is not valid YAML", received=text,
                                    hint=str(exc).splitlines()[0], location=where))
            continue
        if parts[-1] in SOURCE_PATH_KEYS and parts[:2] == ["data", "source"] and isinstance(value, str) \
                and not os.path.isabs(value):
            value = str(Path(value).resolve())
        problem = _set_path(data, parts, value, where)
        if problem:
            problems.append(problem)
        else:
            locs[tuple(int(p) if p.isdigit() else p for p in parts)] = where
    if problems:
        raise SpecError(problems)
    return data


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


def interpolate(data: Any, locs: Locations, env: dict[str, str] | None = None) -> Any:
    """Replace `${env:NAME}`, `${env:NAME,default}` and `${name}` (from `vars:`)."""
    env = dict(os.environ) if env is None else env
    variables = data.get("vars", {}) if isinstance(data, dict) else {}
    problems: list[Problem] = []

    def lookup(expr: str, path: tuple) -> Any:
        expr = expr.strip()
        if expr.startswith("env:"):
            name, _, default = expr[4:].partition(",")
            name = name.strip()
            if name in env:
                return env[name]
            if _:
                return default.strip()
            problems.append(Problem(path=join_path(path), message=f"environment variable `{name}` is not set",
                                    hint=f"export {name}=... or write `${{env:{name},default}}`",
                                    location=_locate(locs, path)))
            return None
        if isinstance(variables, dict) and expr in variables:
            return variables[expr]
        problems.append(Problem(path=join_path(path), message=f"unknown variable `${{{expr}}}`",
                                expected="${env:NAME}, ${env:NAME,default} or a key of `vars:`",
                                location=_locate(locs, path)))
        return None

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) if k != "vars" or path else v for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            whole = _INTERP.fullmatch(value.strip())
            if whole:  # keep the type of a value that is just one reference
                return lookup(whole.group(1), path)
            return _INTERP.sub(lambda m: str(lookup(m.group(1), path)), value)
        return value

    out = walk(data, ())
    if problems:
        raise SpecError(problems)
    return out


def _locate(locs: Locations, path: tuple) -> Location | None:
    while path and path not in locs:
        path = path[:-1]
    return locs.get(path)


# ---------------------------------------------------------------- entry points


def resolve(path: str | os.PathLike, overrides: Iterable[str] = ()) -> tuple[dict, Locations]:
    """The resolved dict of a spec file: extends merged, overrides applied, interpolated."""
    data, locs = read_file(Path(path))
    data = apply_overrides(data, overrides, locs)
    data = interpolate(data, locs)
    return data, locs


def load_spec(path: str | os.PathLike, overrides: Iterable[str] = ()) -> LoadedSpec:
    """Resolve and validate a spec file; raise `SpecError` with every problem."""
    from kerasflow.spec.schema import validate_spec

    raw, locs = resolve(path, overrides)
    spec = validate_spec(raw, locs)
    return LoadedSpec(spec=spec, raw=raw, locs=locs, path=Path(path).resolve())


def load_spec_dict(raw: dict, locs: Locations | None = None) -> LoadedSpec:
    """Validate an in-memory resolved dict (used by the tuner after filling markers)."""
    from kerasflow.spec.schema import validate_spec

    return LoadedSpec(spec=validate_spec(raw, locs or {}), raw=raw, locs=locs or {})
