"""kerasflow's own import graph, read with `ast` (no TensorFlow): no import
cycle between kerasflow modules, and no module using another module's
`_private` names. Imports inside functions count: a lazy import is still a
dependency."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "kerasflow"

# Known exceptions: none. Add one only with a comment saying who removes it.
ALLOWED_CYCLES: list[set[str]] = []
ALLOWED_PRIVATE: set[str] = set()
# What spec/ may import besides spec/: nothing (it stays TF-free and below model/).
ALLOWED_SPEC_IMPORTS: set[str] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The kerasflow module `name` refers to (a module, or the module defining it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(kerasflow modules `module` imports, uses of other modules' private names)."""
    tree = ast.parse(MODULES[module].read_text())
    edges: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> kerasflow module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kerasflow"):
                    target = _resolve(alias.name)
                    edges.add(target)
                    aliases[alias.asname or alias.name.split(".")[0]] = target if alias.asname else "kerasflow"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerasflow"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    edges.add(submodule)
                    aliases[alias.asname or alias.name] = submodule
                    continue
                source = _resolve(node.module)
                edges.add(source)
                if alias.name.startswith("_") and not alias.name.startswith("__") and source != module:
                    private.append(f"{module} imports {source}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and aliases[node.value.id] != module):
            private.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    edges.discard(module)
    edges.discard(None)
    return edges, private


GRAPH = {m: _imports(m)[0] for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_walk_sees_the_package():
    assert len(MODULES) > 80
    assert "kerasflow.train.engine" in GRAPH["kerasflow.train.stages"]
    assert "kerasflow.runs.rundir" in GRAPH["kerasflow.runs"]


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_kerasflow_modules():
    unexpected = [sorted(c) for c in _cycles(GRAPH) if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert not unexpected, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in unexpected)


def test_the_pipeline_never_imports_the_api():
    assert "kerasflow.api" not in GRAPH["kerasflow.pipeline"]


def test_no_module_uses_another_modules_private_names():
    found = [use for module in MODULES for use in _imports(module)[1] if use not in ALLOWED_PRIVATE]
    assert not found, "\n".join(found)


def test_spec_depends_on_no_other_kerasflow_package():
    outside = sorted({f"{m} -> {t}" for m, targets in GRAPH.items() if m.startswith("kerasflow.spec")
                      for t in targets if not t.startswith("kerasflow.spec") and t not in ALLOWED_SPEC_IMPORTS
                      and t != "kerasflow"})
    assert not outside, "\n".join(outside)


def test_one_home_for_locating_a_path_in_the_spec_file():
    """Finding a key path's file:line:col is defined once (`spec.errors.locate`), so every
    error points at the same place for the same key."""
    homes = [f"{p.relative_to(REPO)}:{node.name}" for p in (REPO / "kerasflow").rglob("*.py")
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "locate"]
    assert homes == ["kerasflow/spec/errors.py:locate"]
