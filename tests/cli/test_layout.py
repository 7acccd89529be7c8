"""Issue 20 step 2: the CLI is a package whose subcommand modules share one context and never
import the root module (the old flat modules imported ``worker.cli._settings`` back: a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "worker"
ROOT_FILES = {WORKER / "cli" / "__init__.py", WORKER / "cli" / "__main__.py"}


def _imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_imports_the_cli_root() -> None:
    offenders = {
        str(path.relative_to(WORKER.parent)): sorted(
            name for name in _imports_of(path) if name == "worker.cli" or name.startswith("worker.cli._")
        )
        for path in WORKER.rglob("*.py")
        if path not in ROOT_FILES
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_subcommand_module_registers_its_commands() -> None:
    import click

    from worker.cli import main

    modules = sorted(p.stem for p in (WORKER / "cli").glob("*.py") if p.stem not in ("__init__", "__main__", "context"))
    for name in modules:
        module = __import__(f"worker.cli.{name}", fromlist=["COMMANDS"])
        for command in module.COMMANDS:
            assert isinstance(command, click.Command) and main.commands.get(command.name or "") is command, name
