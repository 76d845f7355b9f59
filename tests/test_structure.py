"""The layout's rules, read from the source (DESIGN.md, "Suggested layout"): dependencies point one way,
``atommem_env`` <- policies <- training <- its Ray layer / the controller <- scripts; no import cycle,
not even through imports inside functions; no library module imports a script; no module imports
another module's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("atommem_env", "agents")
SCRIPTS = ("experiments", "benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*packages: str) -> dict[str, Path]:
    return {module_name(p): p for package in packages for p in sorted((ROOT / package).rglob("*.py"))}


ALL = modules(*LIBRARY, *SCRIPTS)


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def target(module: str, name: str | None) -> str | None:
    """The module of ours an import reaches (``from pkg import mod`` reaches ``pkg.mod``), or None."""
    if name is not None and f"{module}.{name}" in ALL:
        return f"{module}.{name}"
    return module if module in ALL else None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in ALL}
    for name, path in ALL.items():
        for module, imported, _ in imports(path):
            reached = target(module, imported)
            if reached is not None and reached != name:
                edges[name].add(reached)
    return edges


def layer(module: str) -> tuple[int, str]:
    """(height, lane): a module may import from lower heights and from its own lane only."""
    if module.startswith("atommem_env"):
        return 0, "env"
    if module.startswith("agents.training.ray"):
        return 3, "ray"
    if module.startswith("agents.controller"):
        return 3, "controller"
    if module.startswith("agents.training"):
        return 2, "training"
    if module.startswith("agents"):
        return 1, "policies"
    if module.startswith("benchmarks"):
        return 4, "benchmarks"  # benchmark scripts share their helpers (common, trace, reference_store)
    return 4, module  # an entry point: its own lane (scripts do not import scripts)


def test_the_source_tree_is_found():
    assert {"atommem_env.env", "agents.base", "agents.training.runs", "agents.training.ray.run",
            "agents.controller.env", "experiments.ray_train"} <= set(ALL)


def test_dependencies_point_one_way():
    wrong = []
    for name, reached in graph().items():
        height, lane = layer(name)
        for other in reached:
            other_height, other_lane = layer(other)
            if other_height > height or (other_height == height and other_lane != lane):
                wrong.append(f"{name} imports {other}")
    assert wrong == []


def test_no_library_module_imports_a_script_or_a_test():
    wrong = [f"{name}:{line} imports {module}" for name, path in modules(*LIBRARY).items()
             for module, _, line in imports(path) if module.split(".")[0] in (*SCRIPTS, "tests")]
    assert wrong == []


def test_there_is_no_import_cycle():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    # A package's __init__ importing its own modules is not a cycle of dependencies.
    cycles = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert cycles == []


def test_no_module_imports_another_modules_private_name():
    wrong = [f"{name}:{line} imports {module}.{imported}" for name, path in ALL.items()
             for module, imported, line in imports(path)
             if imported and imported.startswith("_") and not imported.startswith("__") and module != name]
    assert wrong == []


SCRIPTS = sorted(p.name for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_thin(script):
    """An entry point parses a config, calls the library and prints: no classes of its own, a few functions."""
    tree = ast.parse((ROOT / "experiments" / script).read_text(encoding="utf-8"))
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert classes == [] and len(functions) <= 3, (classes, functions)
