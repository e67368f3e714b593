"""The layer's packages show its architecture, and its imports point one way.

    core ◄── vendors            (the model and the vendor protocols; no AWS, no storage)
     ▲  ▲
     │  infra                   (AWS clients and their failures, observability, settings;
     │    ▲                      observability is a leaf every part may log through)
     │    ▲
    store                       (every item layout and every write of it)
     ▲
    ingest · outbox · commands · sweep    (the roles; none imports another)

Every import counts, including those inside functions: a cycle hidden in a function body is a
cycle all the same, only found later.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

LAYER = ROOT / "layers" / "devicegate" / "devicegate"

#: What each part of the layer may import from the layer (itself always).
ALLOWED = {
    "core": {"infra.observability"},
    "infra": {"core"},
    "vendors": {"core", "infra.observability"},
    "store": {"core", "infra"},
    "ingest": {"core", "infra", "store", "vendors"},
    "outbox": {"core", "infra", "store", "vendors"},
    "commands": {"core", "infra", "store", "vendors"},
    "sweep": {"core", "infra", "store", "vendors"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(LAYER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every devicegate module `path` imports, at any depth of its code."""
    found: set[str] = set()
    package = _module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "devicegate" or node.module.startswith("devicegate."):
                # `from devicegate.store import keys` imports devicegate.store.keys
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in _modules() else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{package}: relative import (use absolute ones, they show the layer)")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("devicegate."))
    return found - {package}


_MODULES: dict[str, Path] = {}


def _modules() -> dict[str, Path]:
    if not _MODULES:
        _MODULES.update({_module_name(p): p for p in LAYER.rglob("*.py")})
    return _MODULES


def _part(module: str) -> str:
    """core, infra.aws, store, vendors, ... of a module (infra modules are told apart)."""
    parts = module.split(".")[1:]
    if not parts:
        return ""
    return ".".join(parts[:2]) if parts[0] == "infra" else parts[0]


def _graph() -> dict[str, set[str]]:
    return {module: {i for i in _imports(path) if i in _modules()} for module, path in _modules().items()}


def test_every_module_belongs_to_a_part_of_the_layer():
    # Given every module of the layer
    loose = sorted(m for m in _modules() if m != "devicegate" and _part(m).split(".")[0] not in ALLOWED)
    # Then each lives in one of the parts above: a new module says where it belongs
    assert loose == []


def test_imports_point_one_way():
    # Given every import between modules of the layer, those inside functions included
    wrong = []
    for module, imported in _graph().items():
        mine = _part(module)
        allowed = ALLOWED.get(mine.split(".")[0], set())
        for other in imported:
            theirs = _part(other)
            if theirs.split(".")[0] == mine.split(".")[0] or theirs == "":
                continue
            if theirs not in allowed and theirs.split(".")[0] not in allowed:
                wrong.append(f"{module} -> {other}")
    # Then each goes down the picture in the docstring, never up or across the roles
    assert wrong == []


def test_observability_is_a_leaf():
    # Given the logger, tracer and metrics every part may use
    # Then it imports nothing of the layer, so logging from core cannot pull AWS or storage in
    assert _graph()["devicegate.infra.observability"] == set()


def test_there_is_no_import_cycle():
    # Given the import graph of the layer
    graph = _graph()
    # When its strongly connected components are found (Tarjan)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    # Then there is none (a package's __init__ importing its own modules would be one too)
    assert cycles == []
