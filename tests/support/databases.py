"""The test PostgreSQL server: its address, whether this is CI (where it must answer), an
administrative connection, and a database of a test's own on either backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: ``params`` of a fixture that runs its tests once per backend.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_admin() -> Any:
    """An autocommit connection to the test server: skips the test when it is unreachable on a
    developer machine, fails it in CI."""
    import psycopg

    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_URL} in CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    from sqlalchemy.engine import make_url

    admin = postgres_admin()
    name = f"seedworker_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def database(backend: str, root: Path) -> Iterator[str]:
    """A database URL of this test's own: a SQLite file under ``root`` or a fresh PostgreSQL
    database."""
    if backend == "sqlite":
        yield f"sqlite:///{root / 'seedworker.db'}"
        return
    with postgres_database() as url:
        yield url
