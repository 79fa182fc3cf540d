"""The package's import graph, read from the sources: layers point one way and nothing imports in a circle.

The data flow is config -> workload -> cluster -> engine (scheduler, KV cache, latency model) -> metrics -> report.
Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import that closes a circle is
still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "blis_sim"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports (a ``from X import y`` counts as X.y when that is a module)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known and "." in t:  # an attribute of a module: the module
                t = t.rsplit(".", 1)[0]
            if t in known and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    # a sanity check of the reader itself: known edges are found
    assert "blis_sim.step" in GRAPH["blis_sim.latency.base"]
    assert "blis_sim.engine.scheduler" in GRAPH["blis_sim.engine.instance"]
    assert "blis_sim.cluster.simulator" in GRAPH["blis_sim.api"]


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("latency", "engine"),  # latency models price a StepRecord (blis_sim.step); they never see the engine
        ("latency", "cluster"),
        ("metrics", "engine"),  # metrics read InstanceCounters, never an instance
        ("metrics", "cluster"),
        ("kv", "engine"),
        ("engine", "cluster"),
        ("engine", "api"),
        ("workload", "evaluate"),
        ("latency", "evaluate"),
        ("config", "engine"),
        ("config", "cluster"),
    ],
)
def test_layers_point_one_way(lower, upper):
    prefix, target = f"{PACKAGE}.{lower}", f"{PACKAGE}.{upper}"
    offending = sorted(
        f"{m} -> {dep}"
        for m, deps in GRAPH.items()
        if m == prefix or m.startswith(prefix + ".")
        for dep in deps
        if dep == target or dep.startswith(target + ".")
    )
    assert offending == []
