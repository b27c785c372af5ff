"""Who may import whom in ``sspo_verl/``: the README's Architecture table, held against every import of every
module (at module level and inside functions, ``importlib.import_module("sspo_verl...")`` included), plus no
import circle between files. Read statically with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "sspo_verl"
FRAMEWORKS = ("verl", "ray", "hydra", "omegaconf")


@dataclass(frozen=True)
class Layer:
    """One row of the README's table: its files (``core/`` a sub-package, ``train.py`` a module, ``__init__.py`` the
    package's own), the layers it may import besides itself, and whether it may import verl, Ray, Hydra, OmegaConf."""

    name: str
    files: tuple[str, ...]
    may_import: frozenset[str]
    frameworks: bool


def read_layers(readme: str) -> dict[str, Layer]:
    """The table of the ``## Architecture`` section whose header starts with ``| layer |``."""
    lines = readme.split("\n## Architecture\n", 1)[-1].split("\n## ", 1)[0].splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\|\s*layer\s*\|", line)), None)
    assert start is not None, "README.md's Architecture section has no table starting with '| layer |'"
    layers = {}
    for row in lines[start + 2:]:
        if not row.startswith("|"):
            break
        cells = [c.strip().replace("`", "") for c in row.strip("|").split("|")]
        name, files, may_import, frameworks = cells
        allowed = frozenset(re.findall(r"[\w.]+", may_import)) - {"nothing"}
        layers[name] = Layer(name, tuple(files.split()), allowed, frameworks == "yes")
    return layers


def module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module name ``path`` imports (absolute), with its line: import statements anywhere in the file and
    ``import_module`` / ``__import__`` calls on a string literal."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]  # resolved to base if no module
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            found.append((node.args[0].value, node.lineno))
    return found


def _owner(module: str, modules: set[str]) -> str | None:
    """The package module that ``module`` (``a.b.name`` of ``from a.b import name``) loads: its longest prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _layer_of(module: str, layers: dict[str, Layer]) -> str | None:
    rel = module.removeprefix(PACKAGE).lstrip(".")
    for layer in layers.values():
        for entry in layer.files:
            if entry == "__init__.py" and rel == "":
                return layer.name
            if entry.endswith("/") and (rel + ".").startswith(entry[:-1].replace("/", ".") + "."):
                return layer.name
            if entry.endswith(".py") and entry != "__init__.py" and rel == entry[:-3].replace("/", "."):
                return layer.name
    return None


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One loop through each group of modules that import each other (strongly connected, Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def violations(root: Path, layers: dict[str, Layer]) -> list[str]:
    """What in the package at ``root`` breaks the table: a module in no layer, an import of a layer its layer may not
    import, a framework import where the table says no, and files that import each other in a circle."""
    files = {module_of(p, root): p for p in sorted(root.rglob("*.py"))}
    found, graph = [], {m: set() for m in files}
    for module, path in files.items():
        mine = _layer_of(module, layers)
        where = path.relative_to(root.parent)
        if mine is None:
            found.append(f"{where}: in no layer of README.md's Architecture table; add it to one")
            continue
        for name, line in imported_names(path, module):
            top = name.split(".")[0]
            if top in FRAMEWORKS and not layers[mine].frameworks:
                found.append(f"{where}:{line}: layer {mine} imports {name} (the table says no verl, Ray, Hydra, "
                             "OmegaConf)")
            target = _owner(name, set(files)) if top == PACKAGE else None
            if target is None or target == module:
                continue
            graph[module].add(target)
            theirs = _layer_of(target, layers)
            if theirs != mine and theirs not in layers[mine].may_import:
                found.append(f"{where}:{line}: layer {mine} imports {target} (layer {theirs}); README.md's table "
                             f"lets {mine} import only {sorted(layers[mine].may_import) or 'nothing'}")
    found += [f"import circle: {' -> '.join(group + group[:1])}" for group in _circles(graph)]
    return found


LAYERS = read_layers((REPO / "README.md").read_text(encoding="utf-8"))


def test_every_import_in_the_package_follows_the_readme_table():
    assert violations(REPO / PACKAGE, LAYERS) == []


def test_the_table_names_known_layers_and_runs_one_way():
    graph = {name: set(layer.may_import) for name, layer in LAYERS.items()}
    for name, allowed in graph.items():
        assert allowed <= set(LAYERS), f"layer {name} may import unknown layers {sorted(allowed - set(LAYERS))}"
    assert _circles(graph) == []
    assert not LAYERS["core"].frameworks and LAYERS["core"].may_import == frozenset()


VIOLATIONS = {
    "framework in core": ("core/bad.py", "import torch\nfrom omegaconf import OmegaConf\n", "imports omegaconf"),
    "up, inside a function": ("core/bad.py", "def f():\n    from sspo_verl.adapter import config\n",
                              "layer core imports sspo_verl.adapter.config"),
    "up, by import_module": ("data/bad.py", "import importlib\n\n\ndef f():\n"
                                            "    return importlib.import_module('sspo_verl.train')\n",
                             "layer data imports sspo_verl.train"),
    "up, through the package face": ("patching.py", "from sspo_verl import SSPOPolicyLossConfig\n",
                                     "layer base imports sspo_verl (layer sspo_verl)"),
    "in no layer": ("versions.py", "VERSION = '0'\n", "sspo_verl/versions.py: in no layer"),
    "relative import up": ("reward/bad.py", "from ..data import prepare\n", "imports sspo_verl.data.prepare"),
    "circle": ("report/bad.py", "from sspo_verl.report import bad2\n", "import circle: sspo_verl.report.bad"),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_violating_module_is_found(tmp_path, case):
    root = tmp_path / PACKAGE
    shutil.copytree(REPO / PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(root, LAYERS) == []
    relative, source, expected = VIOLATIONS[case]
    path = root / relative
    path.write_text((path.read_text(encoding="utf-8") if path.exists() else "") + source, encoding="utf-8")
    if case == "circle":
        (root / "report" / "bad2.py").write_text("import sspo_verl.report.bad\n", encoding="utf-8")
    found = violations(root, LAYERS)
    assert any(expected in message for message in found), found
