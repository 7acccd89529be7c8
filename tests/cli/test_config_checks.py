"""Issue 17 §3: configuration errors stop at the door.  ``run`` and ``config`` check what any
process checks at start and print one line per problem; a child that stops on its
configuration stops ``run`` instead of being restarted forever."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli import one_line_error, seedworker, user_env
from tests.support.databases import POSTGRES_URL
from worker.settings import Settings
from worker.supervisor import Child, Supervisor


def test_config_reports_a_missing_taxonomy(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), taxonomy_path="/nonexistent.toml")
    done = seedworker("config", cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert "SEEDWORKER_TAXONOMY_PATH" in done.stdout  # the settings are still shown
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "/nonexistent.toml" in lines[0], done.stderr


def test_run_refuses_a_missing_taxonomy_before_starting_anything(tmp_path: Path) -> None:
    env = user_env(
        tmp_path, data_dir=str(tmp_path / "data"), inbox=str(tmp_path / "inbox"), taxonomy_path="/nonexistent.toml"
    )
    line = one_line_error(seedworker("run", cwd=tmp_path, env=env, timeout=120), 2)
    assert "/nonexistent.toml" in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "inbox").exists()  # no Redis, no database, no lock


def test_run_with_flower_refuses_an_open_address_without_a_password(tmp_path: Path) -> None:
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), flower_address="0.0.0.0", ner_model="")
    line = one_line_error(seedworker("run", "--flower", cwd=tmp_path, env=env, timeout=120), 2)
    assert "without SEEDWORKER_FLOWER_BASIC_AUTH" in line
    assert not (tmp_path / "data" / "redis").exists()


@pytest.mark.postgres
def test_run_refuses_a_database_that_does_not_answer(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL).set(database="seedworker_no_such_db").render_as_string(hide_password=False)
    env = user_env(tmp_path, data_dir=str(tmp_path / "data"), database_url=url, ner_model="")
    line = one_line_error(seedworker("run", cwd=tmp_path, env=env, timeout=120), 1)
    if line.startswith("{"):  # not a terminal: run's stderr is JSON lines (docs/operations.md)
        line = json.loads(line)["event"]
    assert 'database "seedworker_no_such_db" does not exist' in line
    assert not (tmp_path / "data" / "redis").exists()


def test_a_child_stopped_by_its_configuration_stops_the_supervisor(tmp_path: Path) -> None:
    """A real process exiting with the configuration exit code (2) is not restarted."""
    sup = Supervisor(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    sup.children = [Child("watcher", [sys.executable, "-c", "import sys; sys.exit(2)"], {})]
    sup.children[0].start()
    done = threading.Event()
    started = time.monotonic()
    threading.Thread(target=lambda: (sup.watch_children(), done.set()), daemon=True).start()
    try:
        assert done.wait(60), "the supervisor kept going"
    finally:
        sup.stop_event.set()
    assert time.monotonic() - started < 30
    assert sup.children[0].restarts == 0 and "watcher stopped on a configuration error" in sup.failure


def test_a_child_that_crashes_otherwise_is_still_restarted(tmp_path: Path) -> None:
    sup = Supervisor(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    sup.children = [Child("publisher", [sys.executable, "-c", "import sys; sys.exit(1)"], {})]
    sup.children[0].start()
    threading.Thread(target=sup.watch_children, daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while sup.children[0].restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sup.stop_event.set()
    assert sup.children[0].restarts >= 1 and not sup.failure
