"""The layer's packages show its architecture, and its imports point one way.

    core ◄── vendors            (the model and the vendor protocols; no AWS, no storage)
     ▲  ▲
     │  infra                   (AWS clients and their failures, observability, settings;
     │    ▲                      observability is a leaf every part may log through)
     │    ▲
    store                       (every item layout and every write of it)
     ▲
    ingest · outbox · commands · sweep · client    (the roles; none imports another;
                                                   client is what apps and the CLI read through)

Around the layer, packages by role, each where it runs (docs/architecture.md):

    devicegate_cli ──► devicegate_local (names at start-up, the rest lazily) ──► the layer
          └─────────► devicegate_onprem (lazily)         (a distribution of its own: stdlib + websockets)
    devicegate_console ──► devicegate_cli (its target options), the layer (through reads.py only)
          ▲ started by `devicegate console` (by module name: the CLI imports none of it)

Every import counts, including those inside functions: a cycle hidden in a function body is a
cycle all the same, only found later.
"""

from __future__ import annotations

import ast
import sys
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
    "client": {"core", "infra", "store", "vendors"},  # vendors: their names, for the fleet's list
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


# --- the packages around the layer ---------------------------------------------------------------

AROUND = {"devicegate_cli": ROOT / "cli", "devicegate_local": ROOT / "local", "devicegate_onprem": ROOT / "onprem",
          "devicegate_console": ROOT / "console"}


def _imported(path: Path, module_level_only: bool = False) -> set[str]:
    """Every module `path` imports (with `from x import y`, also x.y), at any depth or only at module level."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _package_imports(package: str, module_level_only: bool = False) -> dict[str, set[str]]:
    folder = AROUND[package] / package if package in AROUND else LAYER
    files = sorted(folder.rglob("*.py"))
    assert files, f"no modules under {folder}"
    return {str(path.relative_to(ROOT)): _imported(path, module_level_only) for path in files}


def _of(imported: set[str], *packages: str) -> list[str]:
    return sorted(name for name in imported if name.split(".")[0] in packages)


def test_the_layer_imports_nothing_around_it():
    # Given every import of the layer, those inside functions included
    found = {path: _of(names, *AROUND) for path, names in _package_imports("devicegate").items()}
    # Then none reaches the CLI, the local emulation or the on-prem tools: Lambda ships none of them
    assert {path: names for path, names in found.items() if names} == {}


def test_the_onprem_tools_import_nothing_of_the_project():
    # Given every import of devicegate_onprem, those inside functions included
    found = {path: _of(names, "devicegate", "devicegate_cli", "devicegate_local", "devicegate_console")
             for path, names in _package_imports("devicegate_onprem").items()}
    # Then none reaches the rest of the project: the distribution installs alone on a customer's machine
    assert {path: names for path, names in found.items() if names} == {}


def test_the_onprem_tools_load_with_the_standard_library_and_websockets():
    # Given what devicegate_onprem's modules import when loaded (a function may import more for an
    # option, like boto3 for `mqtt-bridge config --stack`, and says so when it is missing)
    allowed = set(sys.stdlib_module_names) | {"websockets", "devicegate_onprem"}
    found = {path: sorted(n for n in names if n.split(".")[0] not in allowed)
             for path, names in _package_imports("devicegate_onprem", module_level_only=True).items()}
    # Then that is all they need: pyproject's one dependency
    assert {path: names for path, names in found.items() if names} == {}


def test_the_local_emulation_never_imports_the_cli():
    # Given every import of devicegate_local, those inside functions included
    found = {path: _of(names, "devicegate_cli", "devicegate_onprem", "devicegate_console")
             for path, names in _package_imports("devicegate_local").items()}
    # Then it stands below the CLI, which starts it, never beside or above it
    assert {path: names for path, names in found.items() if names} == {}


def test_the_cli_starts_without_the_local_extra():
    # Given what the CLI's modules import when loaded
    found = {path: _of(names, "devicegate_local") for path, names in _package_imports("devicegate_cli", True).items()}
    # Then of the emulation only its names (standard library), the rest inside the commands that
    # target the local stack: the base dependencies are enough to query a deployment
    beyond = {path: [n for n in names if n != "devicegate_local" and n.split(".")[:2] != ["devicegate_local", "names"]]
              for path, names in found.items()}
    assert {path: names for path, names in beyond.items() if names} == {}
    names = _imported(AROUND["devicegate_local"] / "devicegate_local" / "names.py", module_level_only=True)
    assert sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names) == []


def test_the_cli_imports_none_of_the_console():
    # Given every import of devicegate_cli, those inside functions included
    found = {path: _of(names, "devicegate_console") for path, names in _package_imports("devicegate_cli").items()}
    # Then none: `devicegate console` loads it by name (main.py), so the query commands start
    # without Starlette, Jinja2 and uvicorn, and the console may build on the CLI's target options
    assert {path: names for path, names in found.items() if names} == {}


def test_the_console_reads_the_layer_in_one_module():
    # Given every import of devicegate_console, those inside functions included
    found = {path: _of(names, "devicegate") for path, names in _package_imports("devicegate_console").items()}
    # Then only reads.py reaches the layer (its queries, its vendor list), so moving the console
    # onto the typed client (devicegate.client) is a change of that one file
    assert sorted(path for path, names in found.items() if names) == ["console/devicegate_console/reads.py"]
