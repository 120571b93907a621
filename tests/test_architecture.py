"""The shape the code keeps (read from the source, nothing imported): short functions with few
parameters in ``search/``, no import cycle, ``models/`` on torch alone, optuna and mlflow only
in ``search/``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "models", "data", "benchmarks", "docs")
MAX_LINES, MAX_PARAMS = 40, 6


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def runtime_imports(tree: ast.Module) -> set[str]:
    """Modules imported when the module runs: ``if TYPE_CHECKING:`` blocks left out."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def test_functions_in_search_are_short_and_take_few_parameters():
    too_big = []
    for name, tree in modules().items():
        if not name.startswith("search"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
                params = [p for p in params if p not in ("self", "cls")]
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES or len(params) > MAX_PARAMS:
                    too_big.append(f"{name}.{node.name}: {lines} lines, {len(params)} params")
    assert too_big == []


def test_no_module_imports_itself_back_at_run_time():
    trees = modules()
    graph = {m: {d for d in runtime_imports(t) if d in trees and d != m} for m, t in trees.items()}
    cycles, state = [], {}

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                walk(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_models_import_only_torch_and_the_standard_library():
    allowed = {"torch", "models", *sys.stdlib_module_names}
    for name, tree in modules().items():
        if name.split(".")[0] == "models":
            top = {n.split(".")[0] for n in runtime_imports(tree)}
            assert top <= allowed, f"{name} imports {sorted(top - allowed)}"


def test_only_search_imports_optuna_and_mlflow():
    for name, tree in modules().items():
        if name.split(".")[0] in ("models", "data"):
            top = {n.split(".")[0] for n in runtime_imports(tree)}
            assert not top & {"optuna", "mlflow"}, name


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers.py (and fixtures in conftest.py, which pytest
    hands out): a test module imported by another would run its import-time code twice."""
    crossing = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for imported in runtime_imports(ast.parse(path.read_text())):
            if imported.startswith(("tests.test_", "tests.conftest")):
                crossing.append(f"{path.name} imports {imported}")
    assert crossing == []


def test_no_test_calls_a_private_function_of_python_or_a_library():
    """``atexit._run_exitfuncs`` and the like change meaning between releases."""
    private = []
    libraries = ("atexit", "os", "sys", "multiprocessing", "optuna", "mlflow", "torch", "signal")
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                base = ast.unparse(node.value).split(".")[0]
                if base in libraries and not node.attr.startswith("__"):
                    private.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert private == []
