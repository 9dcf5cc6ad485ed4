"""The code's shape, measured: no module of connector/ over 300 lines, no function over
40, no class with more than 10 instance attributes, and no import cycle in connector/
and benchmarks/ (annotation-only imports counted too); benchmarks import no test module."""

from __future__ import annotations

import ast
import pathlib

import connector

ROOT = pathlib.Path(connector.__file__).parent.parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_ATTRIBUTES = 300, 40, 10


def sources(*packages: str) -> dict[str, pathlib.Path]:
    found = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


CONNECTOR = sources("connector")


def test_modules_functions_and_classes_stay_small():
    too_big = []
    for name, path in CONNECTOR.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"module {name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                too_big.append(f"function {name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
            if isinstance(node, ast.ClassDef) and len(attributes(node)) > MAX_ATTRIBUTES:
                too_big.append(f"class {name}.{node.name}: {len(attributes(node))} instance attributes")
    assert too_big == []


def attributes(cls: ast.ClassDef) -> set[str]:
    return {node.attr for node in ast.walk(cls) if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def imports(path: pathlib.Path, known: dict[str, pathlib.Path]) -> set[str]:
    """The project modules `path` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update([m for m in submodules if m in known] or [node.module])
    return found & set(known)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    known = sources("connector", "benchmarks")
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the detector itself


def test_benchmarks_import_no_test_module():
    for path in sources("benchmarks").values():
        named = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                 for alias in node.names} | {node.module or "" for node in ast.walk(ast.parse(path.read_text()))
                                             if isinstance(node, ast.ImportFrom)}
        assert not any(name == "tests" or name.startswith("tests.") for name in named), path
