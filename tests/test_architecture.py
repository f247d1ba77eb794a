"""Package structure rules, read from the source: no import cycle between packages, and
library code never imports the command line's console."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "facenormals3d"
#: The command-line layer (may import anything).
CLI = {"cli", "console", "commands", "__main__"}


def _unit(path: Path) -> str:
    """The package (first folder under facenormals3d/) or top-level module a file belongs to."""
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else path.stem


def _imports(path: Path) -> set[str]:
    """facenormals3d units imported anywhere in a file (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "facenormals3d" and len(parts) > 1:
                out.add(parts[1])
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        unit = _unit(path)
        graph.setdefault(unit, set()).update(u for u in _imports(path) if u != unit and u != "__init__")
    return graph


def test_no_import_cycle_between_packages():
    graph = {u: deps for u, deps in _graph().items() if u not in CLI | {"__init__"}}
    graph = {u: {d for d in deps if d in graph} for u, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for d in sorted(graph[u]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d] if d in stack else [u, d])
            elif d not in state:
                visit(d, stack + [d])
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            visit(u, [u])
    assert not cycles, f"import cycles between packages: {cycles}"


def test_library_code_does_not_import_the_console():
    offenders = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                       if _unit(p) not in CLI and "console" in _imports(p))
    assert not offenders, f"library modules importing facenormals3d.console: {offenders}"
