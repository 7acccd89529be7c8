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
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import stack
from tests.support.databases import postgres_database
from tests.support.paths import EXAMPLE
from worker.broker import EmbeddedRedis, connect

for _name in [k for k in os.environ if k.upper().startswith("SEEDWORKER_")]:
    del os.environ[_name]
# The per-user default instance (worker/instance.py) of every test and of the processes it
# starts is the session's own, never the developer's ~/.local/share/seedworker.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="seedworker-test-xdg-")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the test's fixtures: whether it may start long-running processes (support/stack.py)."""
    stack.running_test_is_e2e = item.get_closest_marker("e2e") is not None


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'seedworker.db'}"
    return str(request.getfixturevalue("postgres_url"))
