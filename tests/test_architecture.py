"""The shape the code keeps (read from the source, nothing imported): short functions with few
parameters in ``search/``, no import cycle (annotations' imports included), ``models/`` on
torch alone, optuna only in ``search/``, MLflow only in ``search/tracking/``, ``search.run``
short and imported by nothing."""

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
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def runtime_imports(tree: ast.Module, annotations: bool = False) -> set[str]:
    """Modules imported when the module runs (``if TYPE_CHECKING:`` blocks left out), or with
    ``annotations`` every module it names in an import, those blocks included."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if (
            not annotations
            and isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
        ):
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


def cycles(annotations: bool) -> list[str]:
    """Every circle of imports among the project's modules, as ``a -> b -> a``."""
    trees = modules()
    graph = {
        m: {d for d in runtime_imports(t, annotations) if d in trees and d != m}
        for m, t in trees.items()
    }
    found, state = [], {}

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                found.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                walk(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    return found


def test_no_module_imports_itself_back_not_even_for_annotations():
    assert cycles(annotations=True) == []


def test_mlflow_is_imported_only_in_the_tracking_folder():
    """``search.viewers`` starts MLflow's server as a program and imports nothing of it."""
    outside = [
        name
        for name, tree in modules().items()
        if not name.startswith("search.tracking")
        and any(n.split(".")[0] == "mlflow" for n in runtime_imports(tree, annotations=True))
    ]
    assert outside == []


def test_the_command_is_short_and_nothing_imports_it():
    assert len((ROOT / "search" / "run.py").read_text().splitlines()) < 300
    importers = [
        name
        for name, tree in modules().items()
        if name.startswith("search") and "search.run" in runtime_imports(tree, True)
    ]
    assert importers == []


def truth_of(expression: ast.expr) -> list[ast.expr]:
    """What a condition tests the truth of, or compares: ``a and not b`` gives a and b,
    ``a is not None`` gives a."""
    if isinstance(expression, ast.BoolOp):
        return [e for value in expression.values for e in truth_of(value)]
    if isinstance(expression, ast.UnaryOp):
        return truth_of(expression.operand)
    if isinstance(expression, ast.Compare):
        return [expression.left, *expression.comparators]
    return [expression]


def test_tracking_is_never_tested_for_none_outside_its_folder():
    """Tracking off is its hooks absent: nothing in ``search/`` but ``search/tracking/`` tests
    a ``tracking`` (``run.tracking is None``, ``if tracking:``); ``config.tracking.enabled``
    is a setting, not a tracker."""
    checks = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        if "tracking" in path.relative_to(ROOT / "search").parts[:-1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            condition = node if isinstance(node, ast.Compare) else getattr(node, "test", None)
            for expression in truth_of(condition) if condition is not None else ():
                name = getattr(expression, "attr", getattr(expression, "id", ""))
                if name == "tracking":
                    checks.append(f"{path.name}:{node.lineno} {ast.unparse(condition)}")
    assert checks == []


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
