"""The layout shows the architecture: no import cycles, the pure core imports only itself,
and the simulator and the service are leaves that the engine's other parts never import."""

from __future__ import annotations

import ast
from pathlib import Path

import rules_engine

ROOT = Path(rules_engine.__file__).parent
APPS = {"rules_engine.commands", "rules_engine.demo", "rules_engine.cli", "rules_engine.__main__"}
"""The command-line applications: they wire the engine, the service and the simulator together."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The project modules `name` imports (outside `if TYPE_CHECKING:` blocks). A parent
    package that Python initialises on the way to a submodule is not counted."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # a submodule by name, else a name from the module itself
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_module_imports_itself_back() -> None:
    """Tarjan's strongly connected components: every one is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for name in sorted(GRAPH):
        if name not in index:
            connect(name)
    assert cycles == []


def test_packages_depend_on_each_other_in_one_direction() -> None:
    edges = {(_package(a), _package(b)) for a, targets in GRAPH.items() for b in targets if _package(a) != _package(b)}
    both_ways = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
    assert both_ways == []


def test_the_simulator_and_the_service_are_leaves() -> None:
    for name, targets in GRAPH.items():
        if _package(name) in APPS or name.startswith(("rules_engine.sim", "rules_engine.service")):
            continue
        bad = sorted(t for t in targets if t.startswith(("rules_engine.sim", "rules_engine.service")))
        assert bad == [], f"{name} imports {bad}"


def test_the_service_does_not_import_the_simulator() -> None:
    for name, targets in GRAPH.items():
        if name.startswith("rules_engine.service"):
            assert not [t for t in targets if t.startswith("rules_engine.sim")], name


def test_the_core_imports_only_the_core() -> None:
    for name, targets in GRAPH.items():
        if name.startswith("rules_engine.core"):
            assert all(t.startswith("rules_engine.core") for t in targets), (name, targets)
