"""Shared fixtures: the project's own embedded Redis, SQLite and PostgreSQL databases.

* No test uses a Redis it did not start: the session starts the embedded server (the same
  code `seedworker run` uses) in a temporary directory and every test gets it flushed.
* ``database_url`` runs a test once on SQLite and once on PostgreSQL.  PostgreSQL is
  skipped when unreachable on a developer machine and a failure in CI (``CI=true``).
  Each test gets a database of its own, dropped afterwards.
* SEEDWORKER_* variables of the developer's shell are removed, so tests see only what
  they set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.broker import EmbeddedRedis, connect

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "examples" / "articles"
EXAMPLE = CORPUS / "000_fd88bd66912dc591.txt"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

for _name in [k for k in os.environ if k.upper().startswith("SEEDWORKER_")]:
    del os.environ[_name]
# The per-user default instance (worker/instance.py) of every test and of the processes it
# starts is the session's own, never the developer's ~/.local/share/seedworker.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="seedworker-test-xdg-")


@pytest.fixture(scope="session")
def example_bytes() -> bytes:
    if not EXAMPLE.exists():
        pytest.fail(f"the example corpus file is missing: {EXAMPLE}")
    return EXAMPLE.read_bytes()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def broker_url(embedded_redis: EmbeddedRedis) -> Iterator[str]:
    """The session's embedded Redis, flushed before and after the test."""
    if not embedded_redis.is_running():  # a chaos test may have stopped it
        embedded_redis.start()
    client = connect(embedded_redis.url)
    client.flushall()
    yield embedded_redis.url
    with contextlib.suppress(redis.RedisError):
        client.flushall()
    client.close()


@pytest.fixture
def redis_client(broker_url: str) -> Iterator[redis.Redis]:
    client = connect(broker_url)
    yield client
    client.close()


def _postgres_admin() -> object:
    import psycopg

    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable at {POSTGRES_URL} in CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    from sqlalchemy.engine import make_url

    admin = _postgres_admin()
    name = f"seedworker_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    admin.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'seedworker.db'}"
    return str(request.getfixturevalue("postgres_url"))
