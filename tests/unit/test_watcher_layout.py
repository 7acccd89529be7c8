"""Issue 20 step 5: the watcher is a package of its jobs, and its loop stays small: the loop
runs the jobs and does none of their work (no file system, no watchdog, no message building)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "worker" / "watcher"
JOBS = {"detect", "observer", "claims", "reading", "sending", "outcomes", "replies", "loop", "roots"}


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_the_watcher_is_a_package_of_its_jobs_none_over_400_lines() -> None:
    modules = {p.stem: _lines(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert set(modules) == JOBS
    assert {name: n for name, n in modules.items() if n > 400} == {}


def test_the_loop_module_stays_about_150_lines_and_imports_no_file_system_or_watchdog_internals() -> None:
    loop = PACKAGE / "loop.py"
    assert _lines(loop) <= 180
    imported: set[str] = set()
    for node in ast.walk(ast.parse(loop.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not imported & {"os", "shutil", "stat", "worker.inbox.fs", "watchdog.events", "watchdog.observers"}


def test_producers_can_use_the_send_path_without_loading_watchdog() -> None:
    import subprocess
    import sys

    code = "import sys, worker.client, tasks.ingest; print(sorted(m for m in sys.modules if m.startswith('watchdog')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
