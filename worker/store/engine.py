"""Database engines: SQLite (WAL, immediate write transactions) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3, the driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# How long a statement waits for another connection's lock before StoreUnavailable (then a
# retry with back-off).  One C call: a worker's warm shutdown waits it out (docs/operations.md).
SQLITE_BUSY_SECONDS = 30.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, **kwargs)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, **kwargs)


def _sqlite_engine(url: str, database: str | None, **kwargs: Any) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    connect_args = {"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False}
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "do_connect")
    def _create_private(*_: Any) -> None:
        # Every document is in this file (issue 19 §12): created 0600 by whoever connects
        # first, whatever the umask (SQLite gives its -wal and -shm files the same mode).
        if database and database != ":memory:" and not database.startswith("file:"):
            with contextlib.suppress(FileExistsError):
                os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        _use_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two workers checking "is this hash
        # stored?" are serialised instead of failing with SQLITE_BUSY on lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cur: Any, timeout: float = 30.0) -> None:
    """Switch the database to WAL (a property of the file: once set, it stays).

    Processes opening a new database together (worker, publisher and watcher started at once)
    race to switch it: the loser holds a shared lock and needs an exclusive one while the
    winner holds its own, and SQLite answers that deadlock with SQLITE_BUSY at once, without
    waiting out busy_timeout.  The publisher died of it at start.  So: nothing to do if the
    file is in WAL already, and on "locked" try again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
