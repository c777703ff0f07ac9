"""Read spec YAML safely: bounded bytes, bounded nodes, bounded depth, plain
tags only, and `file:line:col` for every value.

A spec is untrusted input. Everything here fails with a `SpecError` before it
can hang or exhaust memory: only regular files are opened (a FIFO or
`/dev/zero` would block or never end), at most `MAX_BYTES` are read before
parsing, nodes are counted and nesting is bounded while the document is
composed (so a huge or deeply nested file stops early instead of after a full
parse), an anchor may not contain an alias to itself, and aliases are expanded
against a budget (an alias bomb stops at `MAX_VALUES`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from kerasflow.spec.errors import Location, Locations, Problem, SpecError, join_path

MAX_BYTES = 512 * 1024  # realistic specs are a few KB; a 1000-node graph is ~60 KB
MAX_VALUES = 50_000  # a 1000-node graph is ~5000 values; composing costs ~20 us per value
MAX_DEPTH = 64  # real specs nest < 10 levels; Python's own recursion stops near 330 YAML levels
SPEC_SUFFIXES = (".yaml", ".yml")

_STD_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
}
_TAG_WORDS = {"tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
              "tag:yaml.org,2002:bool": "true or false", "tag:yaml.org,2002:null": "null"}


# ---------------------------------------------------------------- files


def read_spec_text(path: Path, *, key: str = "", location: Location | None = None) -> str:
    """The text of the spec file at `path`, or a SpecError saying why not.

    Only regular files up to `MAX_BYTES` are read; the check happens on the
    open descriptor (opened non-blocking, so a FIFO cannot block the open).
    """

    def refuse(message: str, hint: str | None = None, expected: str | None = None) -> SpecError:
        return SpecError(Problem(path=key, message=message, hint=hint, expected=expected, location=location))

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refuse(*_os_reason(exc, path)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise refuse(f"{path} is {kind}, not a spec file", expected="a regular .yaml file",
                         hint="FIFOs, devices and sockets are refused: they may never end")
        if info.st_size > MAX_BYTES:
            raise refuse(f"{path} is {info.st_size} bytes, larger than the {MAX_BYTES}-byte limit for a spec",
                         hint="a spec describes data, it does not hold it; keep data in data files")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            blob = fh.read(MAX_BYTES + 1)  # the file may grow after fstat
    except OSError as exc:
        raise refuse(*_os_reason(exc, path)) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(blob) > MAX_BYTES:
        raise refuse(f"{path} is larger than the {MAX_BYTES}-byte limit for a spec")
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
                     hint="specs are UTF-8 YAML; is this a binary file?") from None


def _os_reason(exc: OSError, path: Path) -> tuple[str, str | None]:
    reasons = {
        errno.ENOENT: ("file not found", None),
        errno.EACCES: ("permission denied", "check the file's permissions"),
        errno.EISDIR: ("is a directory", "give a .yaml file"),
        errno.ELOOP: ("too many levels of symbolic links (a symlink loop?)", "fix or remove the link"),
        errno.ENAMETOOLONG: ("the file name is too long", "a path component holds at most 255 bytes"),
        errno.ENOTDIR: ("a component of the path is not a directory", None),
    }
    message, hint = reasons.get(exc.errno, (exc.strerror or type(exc).__name__, None))
    shown = str(path) if len(str(path)) <= 200 else str(path)[:100] + "..." + str(path)[-60:]
    return f"{message}: {shown}", hint


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


# ---------------------------------------------------------------- YAML -> nodes


class _Refused(yaml.MarkedYAMLError):
    """A limit or rule of this loader (not a YAML syntax error)."""

    def __init__(self, message: str, mark, hint: str | None = None):
        super().__init__(problem=message, problem_mark=mark)
        self.hint = hint


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats such as `1e-4` as numbers (YAML
    1.1 needs a dot: `1.0e-4`), as users of learning rates expect, and counts
    nodes and depth while composing."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._open_anchors: list[str] = []

    def compose_node(self, parent, index):
        event = self.peek_event()
        self._nodes += 1
        if self._nodes > MAX_VALUES:
            raise _Refused(f"the document has more than {MAX_VALUES} values", event.start_mark,
                           hint="a spec describes data, it does not hold it")
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _Refused(f"alias `*{event.anchor}` is used inside its own anchor `&{event.anchor}`",
                               event.start_mark, hint="a value cannot contain itself; copy the part you need")
            return super().compose_node(parent, index)
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if not collection:
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"values nest deeper than {MAX_DEPTH} levels", event.start_mark,
                           hint="a spec nests a few levels; flatten the structure")
        self._depth += 1
        self._open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.pop()


_SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _compose(text: str, filename: str) -> yaml.Node | None:
    try:
        loader = _SpecLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise SpecError(Problem(path="", message=exc.problem, hint=exc.hint, location=_mark(exc.problem_mark,
                                                                                             filename))) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError(_yaml_problem(exc, filename)) from None
    except yaml.YAMLError as exc:  # e.g. reader errors on control characters
        raise SpecError(Problem(path="", message=f"not valid YAML: {_first_line(exc)}",
                                location=Location(filename, 1, 1))) from None
    except RecursionError:  # the depth limit sits well below this; kept so no input can crash
        raise SpecError(Problem(path="", message="values nest too deeply", location=Location(filename, 1, 1))) from None


def parse_yaml(text: str, filename: str = "<string>") -> tuple[dict, Locations]:
    """Parse one YAML document into plain python with a location per path."""
    if len(text) > MAX_BYTES:
        raise SpecError(Problem(path="", message=f"the text is longer than the {MAX_BYTES}-character limit",
                                location=Location(filename, 1, 1)))
    node = _compose(text, filename)
    if node is None:
        raise SpecError(Problem(path="", message="the file is empty", expected="a mapping of spec sections",
                                location=Location(filename, 1, 1)))
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise SpecError(Problem(path="", message="the document root must be a mapping", expected="key: value pairs",
                                received=kind, location=_loc(node, filename)))
    return _to_python(node, (), filename)


def load_yaml_value(text: str, filename: str = "<value>", path: tuple = ()) -> Any:
    """Parse a YAML value (e.g. from `--set`) with the same rules as spec files."""
    node = _compose(text, filename)
    if node is None:
        return None
    value, _ = _to_python(node, path, filename)
    return value


def _to_python(node: yaml.Node, path: tuple, filename: str) -> tuple[Any, Locations]:
    locs: Locations = {path: _loc(node, filename)}
    problems: list[Problem] = []
    data = _Converter(filename, locs, problems).convert(node, path)
    if problems:
        raise SpecError(problems)
    return data, locs


def _loc(node: yaml.Node, filename: str) -> Location:
    return _mark(node.start_mark, filename)


def _mark(mark, filename: str) -> Location | None:
    return Location(filename, mark.line + 1, mark.column + 1) if mark is not None else None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _yaml_problem(exc: yaml.MarkedYAMLError, filename: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    location = _mark(mark, filename)
    # Never str(exc): it quotes the offending source line, which may come from a file that is not a spec.
    problem = exc.problem or "invalid YAML"
    hint = None
    if "'\\t'" in problem or "\t" in problem:
        problem = "a tab character is used for indentation"
        hint = "YAML indents with spaces only; replace the tab with spaces"
    elif exc.context:
        problem = f"{exc.context}, {problem}" if "found" in problem else problem
    return Problem(path="", message=f"YAML syntax error: {problem}", location=location, hint=hint)


# ---------------------------------------------------------------- nodes -> python


class _Converter:
    """Nodes to plain python, expanding aliases against a value budget."""

    def __init__(self, filename: str, locs: Locations, problems: list[Problem]):
        self.filename = filename
        self.locs = locs
        self.problems = problems
        self.budget = MAX_VALUES
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: tuple) -> Any:
        self.budget -= 1
        if self.budget < 0:
            if self.budget == -1:
                self.problems.append(Problem(
                    path=join_path(path), message=f"the document expands to more than {MAX_VALUES} values",
                    hint="anchors/aliases that expand exponentially (an alias bomb) are rejected",
                    location=_loc(node, self.filename)))
            return None
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and len(path) >= MAX_DEPTH:
            # Aliases nested in aliases can exceed the depth that composing allowed.
            self.problems.append(Problem(path=join_path(path[:8]) + "...", message=f"values nest deeper than "
                                         f"{MAX_DEPTH} levels once aliases are expanded",
                                         location=_loc(node, self.filename)))
            self.budget = -2  # stop: one message is enough
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.problems.append(_tag_problem(node, path, self.filename))
                return None
            items = []
            for i, item in enumerate(node.value):
                self.locs[path + (i,)] = _loc(item, self.filename)
                items.append(self.convert(item, path + (i,)))
            return items
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: tuple) -> dict | None:
        if node.tag != "tag:yaml.org,2002:map":
            self.problems.append(_tag_problem(node, path, self.filename))
            return None
        out: dict = {}
        first_seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(Problem(path=join_path(path), message="YAML merge keys (<<) are not supported",
                                             hint="use `extends:` to reuse spec fragments",
                                             location=_loc(key_node, self.filename)))
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STD_TAGS:
                self.problems.append(Problem(path=join_path(path), message="mapping keys must be plain scalars",
                                             location=_loc(key_node, self.filename)))
                continue
            key = self._scalar(key_node, path)
            if isinstance(key, bool) or key is None or isinstance(key, float):
                key = key_node.value  # `on:`/`null:` as keys mean the words, not booleans
            if key in first_seen:
                first = first_seen[key]
                self.problems.append(Problem(path=join_path(path + (key,)), message=f"duplicate key `{key}`",
                                             hint=f"first defined at line {first.start_mark.line + 1}",
                                             location=_loc(key_node, self.filename)))
                continue
            first_seen[key] = key_node
            self.locs[path + (key,)] = _loc(key_node, self.filename)
            out[key] = self.convert(value_node, path + (key,))
        return out

    def _scalar(self, node: yaml.Node, path: tuple) -> Any:
        if node.tag not in _STD_TAGS:
            if node.tag == "tag:yaml.org,2002:timestamp":
                return node.value  # dates stay text; no spec field is a date
            self.problems.append(_tag_problem(node, path, self.filename))
            return None
        try:
            return self.constructor.construct_object(node)
        except Exception:  # PyYAML raises ValueError, KeyError, IndexError (`!!float ""`) ...
            # An explicit tag on a value that is not of that type: `!!float abc`, `!!bool maybe`.
            self.problems.append(Problem(path=join_path(path), message=f"`{node.value[:40]}` is not "
                                         f"{_TAG_WORDS.get(node.tag, node.tag)}",
                                         expected=f"a value matching its tag `{node.tag.rsplit(':', 1)[-1]}`",
                                         hint="remove the `!!` tag or fix the value",
                                         location=_loc(node, self.filename)))
            return None


def _tag_problem(node: yaml.Node, path: tuple, filename: str) -> Problem:
    return Problem(path=join_path(path), message=f"YAML tag `{node.tag}` is not allowed",
                   expected="plain YAML values (no python/object or custom tags)",
                   hint="remove the tag; specs never construct python objects", location=_loc(node, filename))
