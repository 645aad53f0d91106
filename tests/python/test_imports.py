"""The package's import graph: no module imports another of ours inside a function, and nothing
imports in a circle. A function-level import of one of our modules is how a cycle hides (it works
until someone moves it to the top), so both are checked on the source, without importing it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "python" / "perfsage"
PACKAGE = "perfsage"


def _module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path = PACKAGE_DIR) -> Dict[str, Path]:
    return {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name a ``from ... import`` names (before its imported names)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.AST, module: str, is_package: bool, known: Set[str]) -> List[str]:
    """Our modules an import statement loads: ``from a import b`` loads ``a.b`` when that is a
    module of ours, else ``a`` (whose ``__init__`` defines ``b``)."""
    names: List[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        for alias in node.names:
            child = f"{base}.{alias.name}"
            names.append(child if child in known else base)
    return [n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(tree: ast.Module) -> List[Tuple[ast.AST, bool]]:
    """Every import statement with whether it runs at import time (module level, outside
    ``if TYPE_CHECKING:``; ``if __name__ == "__main__":`` blocks count as functions)."""
    found: List[Tuple[ast.AST, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, top))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never runs; only for type checkers
            elif isinstance(child, ast.If) and "__main__" in ast.dump(child.test):
                visit(child, False)
            else:
                visit(child, top)

    visit(tree, True)
    return found


def import_graph(root: Path = PACKAGE_DIR) -> Tuple[Dict[str, Set[str]], List[str]]:
    """``{module: modules it imports at import time}`` and the function-level imports of our
    modules, as ``"file:line: module imports target"``."""
    modules = _modules(root)
    # The compiled extension (_core) is a module too; it has a stub next to it.
    known = set(modules) | {_module_name(path, root) for path in root.rglob("*.pyi")}
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    hidden: List[str] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, top in _walk(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if top:
                    graph[module].add(target)
                else:
                    hidden.append(f"{path.relative_to(root.parent)}:{node.lineno}: {module} imports {target}")
    return graph, sorted(set(hidden))


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle as a list of modules (first == last), or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_function_level_imports_of_our_modules() -> None:
    _, hidden = import_graph()
    assert not hidden, "import these at the top of the file (move the helper down if that cycles):\n" + "\n".join(hidden)


def test_no_import_cycles() -> None:
    graph, _ = import_graph()
    assert len(graph) > 30  # the whole package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_catch_a_cycle_and_a_hidden_import(tmp_path: Path) -> None:
    # The checks must be able to fail: a two-module package with both faults.
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("from .sub import b\n\ndef f():\n    from . import sub\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("from ..a import f\n")
    graph, hidden = import_graph(package)
    assert find_cycle(graph) == ["perfsage.a", "perfsage.sub.b", "perfsage.a"]
    assert hidden == ["perfsage/a.py:4: perfsage.a imports perfsage.sub"]


# The optional extras (label: pyarrow, Vela, LiteRT; dask: distributed) and matplotlib, which only
# the evaluation's plots need: perfsage imports them when a feature that needs them runs.
OPTIONAL = ("pyarrow", "ethosu", "ai_edge_litert", "distributed", "matplotlib")

_WITHOUT_OPTIONAL = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {optional!r}:
            raise ImportError(f"No module named {{name!r}} (hidden by the test)")
sys.meta_path.insert(0, Missing())
import perfsage, perfsage.cli, perfsage.datasets, perfsage.evaluation, perfsage.labelers
assert perfsage.cli.main(["spaces"]) == 0
print(sorted(m for m in sys.modules if m.split(".")[0] in {optional!r}))
"""


def test_package_and_command_line_import_without_the_optional_extras() -> None:
    code = _WITHOUT_OPTIONAL.format(optional=OPTIONAL)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
