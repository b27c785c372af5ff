"""The adapter's modules import each other without a cycle, at module level (no import tucked into a function to
dodge one); the single exception is the entry point, which imports inside the call whose failures it logs."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import sspo_verl.adapter

PACKAGE = "sspo_verl.adapter"
LOGGED_ENTRY_POINT = "sspo_verl.adapter.plugin"


def _adapter_imports(tree: ast.AST, at_module_level: bool) -> set[str]:
    """Adapter modules imported by ``tree``'s statements at module level (or inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and at_module_level:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            names = [node.module] if node.module != PACKAGE else [f"{PACKAGE}.{a.name}" for a in node.names]
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return found


def _modules() -> dict[str, ast.Module]:
    root = Path(sspo_verl.adapter.__file__).parent
    return {
        f"{PACKAGE}.{m.name}": ast.parse((root / f"{m.name}.py").read_text(encoding="utf-8"))
        for m in pkgutil.iter_modules([str(root)])
    }


def _function_bodies(tree: ast.Module) -> list[ast.AST]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_import_cycle_between_adapter_modules():
    modules = _modules()
    graph = {}
    for name, tree in modules.items():
        top = set()
        for stmt in tree.body:  # module-level statements only (functions are checked below)
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top |= _adapter_imports(stmt, at_module_level=True)
        graph[name] = top & set(modules)
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in graph[node]:
            assert state.get(dep) != "open", "import cycle: " + " -> ".join(path + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert graph[f"{PACKAGE}.actor_config"] <= {f"{PACKAGE}.config"}  # the leaf the loss and diagnostics share


def test_no_adapter_import_inside_a_function_but_in_the_entry_point():
    for name, tree in _modules().items():
        inside = set().union(*(_adapter_imports(f, at_module_level=False) for f in _function_bodies(tree)))
        if name == LOGGED_ENTRY_POINT:
            continue
        assert not inside, f"{name} imports {sorted(inside)} inside a function"
