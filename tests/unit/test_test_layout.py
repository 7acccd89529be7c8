"""The tests' own layout (issue 20 step 6): helpers are shared only through ``tests/support``,
a test module never imports another test module (nor conftest), tests live in the folder of
their kind, and a test that starts long-running processes is marked ``e2e``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import stack as stack_module
from tests.support.paths import REPO
from tests.support.stack import Stack

TESTS = REPO / "tests"
SUPPORT = TESTS / "support"
#: Fixtures that give a test a real Redis or database server: not for unit tests.
SERVER_FIXTURES = {"embedded_redis", "broker_url", "redis_client", "database_url", "postgres_url"}


def _modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def _tests_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``tests.*`` module ``path`` imports (at any depth), and every relative import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module and node.module.split(".")[0] == "tests":
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "tests" else [node.module]
                found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tests"]
    return found


def test_tests_import_shared_helpers_only_from_tests_support() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in _modules()
        for line, name in _tests_imports(path)
        if name != "tests.support" and not name.startswith("tests.support.")
    ]
    assert offenders == []


def test_every_module_outside_support_is_a_test_module() -> None:
    allowed = {"__init__.py", "conftest.py"}
    strays = [
        str(path.relative_to(REPO))
        for path in _modules()
        if SUPPORT not in path.parents and path.name not in allowed and not path.name.startswith("test_")
    ]
    assert strays == []


def test_support_holds_no_tests() -> None:
    tests = [
        f"{path.relative_to(REPO)}::{node.name}"
        for path in SUPPORT.rglob("*.py")
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name.lower().startswith("test")
    ]
    assert tests == []


def test_unit_tests_use_no_server_fixture_and_are_not_marked_e2e() -> None:
    problems = []
    for path in sorted((TESTS / "unit").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                used = SERVER_FIXTURES & {a.arg for a in node.args.args}
                problems += [f"{where}::{node.name} uses the {name} fixture" for name in sorted(used)]
            is_mark = (
                isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "mark"
            )
            if is_mark and node.attr == "e2e":
                problems.append(f"{where}:{node.lineno} is marked e2e")
    assert problems == []


def test_end_to_end_modules_are_marked_e2e_as_a_whole() -> None:
    unmarked = []
    for path in sorted((TESTS / "e2e").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        marks = [
            ast.unparse(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
        ]
        if not any("mark.e2e" in mark for mark in marks):
            unmarked.append(str(path.relative_to(REPO)))
    assert unmarked == []


def test_a_test_not_marked_e2e_cannot_start_a_long_running_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This test is not marked e2e: the stack refuses to start a worker for it (before any
    process starts), and would start a one-shot command."""
    assert stack_module.running_test_is_e2e is False
    stack = Stack(tmp_path, "redis://127.0.0.1:1/0", f"sqlite:///{tmp_path / 'db.sqlite'}")
    for command in sorted(stack_module.LONG_RUNNING):
        with pytest.raises(RuntimeError, match=r"mark this test @pytest\.mark\.e2e"):
            stack.start(command, command)
    assert stack.procs == {}
    monkeypatch.setattr(stack_module, "running_test_is_e2e", None)  # outside pytest: anything goes
    assert stack_module.running_test_is_e2e is None
