"""The import graph a newcomer can draw from the folder names: a DAG, runtime at the bottom.

Order, bottom to top: ``edge_runtime`` (imports nothing of ours) <- ``train`` (data and
manifests in ``train.data``, then training) <- ``convert`` <- ``reproduce`` (the orchestrator)
and ``benchmarks`` (measures any layer). Every import counts, also the ones inside functions:
a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("edge_runtime", "train", "convert", "benchmarks")
TOP_MODULES = ("reproduce",)
#: Which of our packages each may import; anything else is a layering error.
ALLOWED = {
    "edge_runtime": set(),
    "train": {"edge_runtime"},
    "convert": {"edge_runtime", "train"},
    "benchmarks": {"edge_runtime", "train", "convert"},
    "reproduce": {"edge_runtime", "train", "convert"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            if "_vendor" not in path.parts:
                files[_module_name(path)] = path
    for mod in TOP_MODULES:
        files[mod] = REPO / f"{mod}.py"
    return files


def imports_of(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def _ours(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` refers to (longest known prefix), if any."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def module_graph() -> dict[str, set[str]]:
    known = _sources()
    graph = {}
    for name, path in known.items():
        deps = {_ours(i, known) for i in imports_of(name, path)}
        graph[name] = {d for d in deps if d and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_absolute_names(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from . import sibling\nfrom ..data import manifest\nimport numpy\n")
    found = imports_of("train.sub.m", path)
    assert {"train.sub.sibling", "train.data.manifest", "numpy"} <= found


def test_top_level_packages_form_a_dag_in_the_documented_order():
    wrong = sorted({(_top(a), _top(b), a, b) for a, deps in module_graph().items() for b in deps
                    if _top(b) != _top(a) and _top(b) not in ALLOWED[_top(a)]})
    assert not wrong, "imports against the layering (package -> package: module -> module):\n" + "\n".join(
        f"{pa} -> {pb}: {a} -> {b}" for pa, pb, a, b in wrong)
    packages = {}
    for a, deps in module_graph().items():
        packages.setdefault(_top(a), set()).update(_top(b) for b in deps if _top(b) != _top(a))
    assert _cycles(packages) == []


@pytest.mark.parametrize("package", ["train", "convert", "edge_runtime"])
def test_no_import_cycle_between_modules(package):
    graph = {a: {b for b in deps if _top(b) == package and b != package}
             for a, deps in module_graph().items() if _top(a) == package and a != package}
    assert _cycles(graph) == [], f"modules of {package} that import each other"
