"""What the end-to-end format tests share: one stack per module and backend on the session's
embedded Redis, a wait until every dropped file is archived or failed, and the outcome of the
run (its events, and the rows it stored) with look-ups by file name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.databases import database
from tests.support.stack import Stack, files_under
from worker.broker import EmbeddedRedis, connect
from worker.store.engine import make_engine
from worker.store.schema import Document


@dataclass
class Run:
    stack: Stack
    database_url: str
    dropped: dict[str, bytes]
    events: list[dict[str, Any]] = field(default_factory=list)

    def events_for(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["filename"] == name]

    def event(self, name: str) -> dict[str, Any]:
        [event] = self.events_for(name)
        return event

    def document(self, name: str) -> Document:
        rows = self.rows(Document, filename=name)
        assert len(rows) == 1, f"{len(rows)} documents named {name!r}"
        return rows[0]  # type: ignore[no-any-return]

    def rows_of(self, name: str) -> list[Document]:
        """Every document stored from one file (a feed, a news message, an email)."""
        return self.rows(Document, filename=name)

    def rows(self, model: type, **where: Any) -> list[Any]:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                query = select(model)
                for key, value in where.items():
                    query = query.where(getattr(model, key) == value)
                rows = list(session.scalars(query))
                session.expunge_all()
                return rows
        finally:
            engine.dispose()


@contextmanager
def module_stack(
    name: str, backend: str, tmp_path_factory: pytest.TempPathFactory, embedded_redis: EmbeddedRedis, **env: str
) -> Iterator[Stack]:
    """A stack (not started) on a database of its own and the session's embedded Redis, which
    is flushed before and after; stopped when the block ends.  For module-scoped fixtures,
    which cannot use the function-scoped ``broker_url``."""
    root = tmp_path_factory.mktemp(f"{name}-{backend}")
    if not embedded_redis.is_running():  # a chaos test may have stopped it
        embedded_redis.start()
    connect(embedded_redis.url).flushall()
    with database(backend, root) as database_url:
        stack = Stack(root, embedded_redis.url, database_url, extra_env=env)
        try:
            yield stack
        finally:
            stack.stop()
            connect(embedded_redis.url).flushall()


def wait_settled(stack: Stack, files: int, timeout: float = 60) -> None:
    """Until ``files`` files are archived or in failed/ with their .error.json, and none is
    left in the processing area."""
    processing = stack.inbox / ".seedworker-processing"
    stack.wait_for(
        lambda: (
            len([p for p in stack.archive.rglob("*") if p.is_file()]) + len(list(stack.failed.glob("*.error.json")))
            >= files
            and not files_under(processing)
        ),
        timeout=timeout,
        what="every file archived or failed",
    )
