"""The package's import graph has no cycle, and its edges point from the edges of the system (the
command line, the pytest plug-in) down towards the plug-in contract, which imports nothing of it.

The graph is read from the source (ast), not from a run, so a branch not taken still counts. What
counts as an edge `a -> b` (b a module of `conformance`):
- an import at module level, and an import inside a function: it runs when the function does, and a
  lazy import that only dodges a cycle at import time is still a cycle (a module that needs another
  to work depends on it whenever the import runs);
- not an import under `if TYPE_CHECKING:`: it never runs, and names types for annotations only (the
  contract names the case, knob and outcome types that way);
- `from conformance.x import y` is an edge to `conformance.x.y` where that is a module, else to
  `conformance.x`; the implicit import of a package's `__init__` before its submodules is Python's
  order of loading, not a dependency a module chooses, and is not an edge;
- plug-ins loaded through entry points (`importlib.import_module` in the registry) are no edges: the
  registry never names them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "conformance"
# The edges of the system: the command line and the pytest plug-in (its items and xdist service).
TOP = {"conformance.__main__", "conformance.cli", "conformance.plugin", "conformance.items", "conformance.service"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(tree: ast.AST) -> list[tuple[str, int]]:
    """(module of the package imported, line) for every import that runs, at any depth."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            found += [hit for branch in node.orelse for hit in imports(ast.Module(body=[branch], type_ignores=[]))]
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name in MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                target = target if target in MODULES else node.module
                if target in MODULES:
                    found.append((target, node.lineno))
        else:
            found += imports(node)
    return found


def graph() -> dict[str, dict[str, int]]:
    """module -> {module it imports: the first line that does}."""
    out: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if target != name:
                edges.setdefault(target, line)
        out[name] = edges
    return out


def cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as the modules along it (the first back to the start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, {})):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def describe(edges: dict[str, dict[str, int]], modules: list[str]) -> str:
    return " -> ".join(f"{a} (line {edges[a][b]})" for a, b in zip(modules, modules[1:], strict=False)) + f" -> {modules[-1]}"


def test_the_package_has_no_import_cycle():
    edges = graph()
    found = cycle(edges)
    assert found is None, f"import cycle: {describe(edges, found)}"


def test_the_cycle_finder_finds_a_lazy_import_that_closes_a_cycle():
    """The test above can fail: a graph with one lazy import back is a cycle (the form of the ones this
    package had: compact -> compare inside `replay`, compare -> digits -> compact at module level)."""
    source = "from conformance import digits\n\ndef replay():\n    from conformance.compare import difference\n"
    assert imports(ast.parse(source)) == [("conformance.digits", 1), ("conformance.compare", 4)]
    edges = {"compact": {"compare": 107}, "compare": {"digits": 34}, "digits": {"compact": 14}, "records": {"compact": 20}}
    assert cycle(edges) == ["compact", "compare", "digits", "compact"]
    assert cycle({"a": {"b": 1}, "b": {}, "c": {"a": 3, "b": 4}}) is None


def test_type_checking_imports_are_no_edges_and_lazy_ones_are():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from conformance.cases import Case\n"
    source += "\ndef f():\n    from conformance import registry\n"
    assert [t for t, _ in imports(ast.parse(source))] == ["conformance.registry"]


def test_the_contract_imports_nothing_of_the_package():
    """The bottom: every module may import it, so it may import none (its annotations name types under TYPE_CHECKING)."""
    assert graph()["conformance.contract"] == {}


def test_nothing_below_the_command_line_and_the_pytest_plugin_imports_them():
    edges = graph()
    reaching_up = {(a, b): line for a, targets in edges.items() if a not in TOP for b, line in targets.items() if b in TOP}
    assert not reaching_up, f"modules below the CLI and the pytest plug-in import them: {reaching_up}"
