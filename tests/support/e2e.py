"""What the end-to-end format tests share: the outcome of one stack's run (its events, and the
rows it stored) with look-ups by file name (a database per backend: tests/support/databases.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.stack import Stack
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
