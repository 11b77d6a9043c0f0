"""The runtime's modules import one another in one direction only: no import cycles.

Every import statement counts, wherever it is: at module level, under ``TYPE_CHECKING``, or
inside a function. Those last two would hide a loop from the interpreter, not remove it.
Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` first; like other
import linters, this test counts only the module an import names.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"
PACKAGE = "workflowkit"
# The runtime and the modules workflow code calls into.
CHECKED = ("runtime", "context", "registry", "streams", "primitives")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in (SRC / PACKAGE).rglob("*.py")}


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: level 1 is the package itself, 2 its parent, ...
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` names the module pkg.mod when there is one.
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            )
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def checked(name: str) -> bool:
    return any(
        name == f"{PACKAGE}.{prefix}" or name.startswith(f"{PACKAGE}.{prefix}.")
        for prefix in CHECKED
    )


def test_the_graph_sees_imports_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import serde\n"
        "if TYPE_CHECKING:\n"
        "    from .runtime.executor import RunExecutor\n"
        "def later():\n"
        "    from .worlds import postgres\n"
    )
    found = imported(f"{PACKAGE}.module", module, modules())
    expected = {f"{PACKAGE}.{name}" for name in ("serde", "runtime.executor", "worlds.postgres")}
    assert found == expected


def test_no_import_cycles_in_the_runtime() -> None:
    tangled = [c for c in cycles(import_graph()) if any(checked(name) for name in c)]
    assert tangled == []
