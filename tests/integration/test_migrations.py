"""Alembic on SQLite and PostgreSQL: upgrade, idempotence, concurrent starters, stamping of
``create_all`` databases, downgrade, and no drift between the models and the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import inspect, text

from worker.store.engine import make_engine
from worker.store.migrations import (
    BASELINE,
    current,
    downgrade,
    head_revision,
    schema_diff,
    upgrade,
)
from worker.store.schema import SCHEMA_REVISION, Base

REPO = Path(__file__).resolve().parents[2]


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return schema_diff(conn)
    finally:
        engine.dispose()


def test_upgrade_builds_the_models_schema_without_drift(database_url: str) -> None:
    upgrade(database_url)
    assert current(database_url) == (head_revision(),)
    assert set(Base.metadata.tables) <= _tables(database_url)
    # Fails when someone changes worker/store/schema.py without
    # `python -m worker.store.migrations regenerate`.
    assert _diff(database_url) == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    before = _tables(database_url)
    upgrade(database_url)
    assert _tables(database_url) == before
    assert current(database_url) == (head_revision(),)


def test_create_all_database_is_stamped_not_recreated(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO blobs (sha256, size, data, created_at) VALUES ('x', 1, :d, :t)"),
                {"d": b"x", "t": "2026-01-01 00:00:00+00:00"},
            )
    finally:
        engine.dispose()
    assert current(database_url) == ()
    upgrade(database_url)
    assert current(database_url) == (head_revision(),)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM blobs")).scalar() == 1
    finally:
        engine.dispose()
    assert _diff(database_url) == []


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, BASELINE)
    assert current(database_url) == (BASELINE,)
    downgrade(database_url, "base")
    assert current(database_url) == ()
    assert not (set(Base.metadata.tables) & _tables(database_url))
    upgrade(database_url)
    assert current(database_url) == (head_revision(),)


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Worker, publisher and watcher run ensure_schema at the same moment."""
    code = "import sys; from worker.store.migrations import upgrade; upgrade(sys.argv[1])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, database_url], cwd=REPO, env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    deadline = time.monotonic() + 120
    for proc in procs:
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.returncode == 0, err.decode()
    assert current(database_url) == (head_revision(),)
    assert _diff(database_url) == []


def test_the_code_knows_its_schema_revision_without_alembic() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_ensure_schema_loads_alembic_only_when_there_is_something_to_do(database_url: str, tmp_path: Path) -> None:
    """A fresh database is migrated; at head, a start is one SELECT and Alembic is never
    imported (its ~14 MB would ride into every worker child); an older revision is upgraded."""
    code = (
        "import sys; from worker.settings import Settings; from worker.store.schema_check import ensure_schema; "
        "ensure_schema(Settings(_env_file=None, database_url=sys.argv[1], data_dir=sys.argv[2])); "
        "print('alembic' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}

    def start() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, database_url, str(tmp_path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    assert start() == "True"  # migrated
    assert current(database_url) == (head_revision(),)
    assert start() == "False"  # at head: nothing imported
    downgrade(database_url, BASELINE)
    assert start() == "True"
    assert current(database_url) == (head_revision(),)
    assert _diff(database_url) == []


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDWORKER_")}
    env["SEEDWORKER_DATABASE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert _cli(url, "current").stdout.strip() == "<none>"
    checked = _cli(url, "check")
    assert checked.returncode == 1 and "not at head" in checked.stdout
    assert _cli(url, "upgrade", BASELINE).returncode == 0
    assert _cli(url, "current").stdout.strip() == BASELINE
    up = _cli(url, "upgrade")
    assert up.returncode == 0, up.stderr
    assert _cli(url, "current").stdout.strip() == head_revision()
    checked = _cli(url, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_regenerate_is_deterministic() -> None:
    """The baseline renders identically whatever the hash seed (sets, dict order)."""
    code = "from worker.store.migrations.__main__ import render_baseline; print(render_baseline())"
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.append(
            subprocess.run(
                [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
            ).stdout
        )
    assert outs[0] == outs[1]
    assert 'op.create_table(\n        "documents"' in outs[0] or "'documents'" in outs[0] or '"documents"' in outs[0]


def test_db_check_names_what_a_database_lacks(tmp_path: Path) -> None:
    """A database "at head" built from an older baseline: check says what differs."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE ingestions"))
    finally:
        engine.dispose()
    upgrade(url)  # at head already: nothing to run, a warning about the drift
    checked = _cli(url, "check")
    assert checked.returncode == 1
    assert "drift: add_table ingestions" in checked.stdout


def test_partial_create_all_database_is_completed_and_stamped(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        Base.metadata.tables["outbox"].create(engine)  # e.g. only the publisher's table existed
    finally:
        engine.dispose()
    upgrade(database_url)
    assert current(database_url) == (head_revision(),)
    assert _diff(database_url) == []
