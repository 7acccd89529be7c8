"""The outbox, its one owner: events written in the same transaction as the change they
describe, read back in ``seq`` order by the relay (``worker/relay/``).

Every row is written by :func:`emit` inside the caller's transaction (the repository's
outcomes, tagging's ``document.retagged``); the publisher reads :func:`pending` rows, marks
them published (:func:`mark_published`) after they reached the stream, and :func:`purge`
drops published rows past retention; :func:`replay_batch` reads history back for
``seedworker events replay``; :func:`lag` is what ``seedworker status`` and the metrics
collector report.  The table itself is ``schema.OutboxRow``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from sqlalchemy import ColumnElement, Connection, Subquery, delete, func, insert, inspect, or_, select, update
from sqlalchemy.orm import Session

from worker.store.schema import OutboxRow, WebhookDelivery, table_of

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from worker.events.cloudevents import CloudEvent


class Sessions(Protocol):
    """What the outbox needs of a store: transactions (``DocumentStore.session``)."""

    def session(self) -> AbstractContextManager[Session]: ...


__all__ = [
    "OutboxEntry",
    "OutboxLag",
    "OutboxRow",
    "emit",
    "held",
    "lag",
    "mark_published",
    "next_due",
    "pending",
    "purge",
]

_INSERT = insert(table_of(OutboxRow))
_ENTRY_COLUMNS = (OutboxRow.seq, OutboxRow.event_id, OutboxRow.type, OutboxRow.subject, OutboxRow.payload)


class OutboxEntry(NamedTuple):
    """One outbox row as the relay moves it: the stream entry's fields plus its ``seq``."""

    seq: int
    event_id: str
    type: str
    subject: str
    payload: str


class OutboxLag(NamedTuple):
    unpublished: int  # owed to the stream now (held events are not lag)
    oldest_age_seconds: float  # 0 when nothing waits
    held: int = 0  # held until their embargo lifts (SEEDWORKER_EMBARGO=hold)


# -- writing (inside the caller's transaction) ----------------------------------------------------
def emit(s: Session, event: CloudEvent, *, not_before: dt.datetime | None = None) -> None:
    """Write ``event`` to the outbox in the session's transaction (Core insert: the write path).
    ``not_before``: the relay holds it until then (an embargo under ``SEEDWORKER_EMBARGO=hold``)."""
    s.connection().execute(
        _INSERT,
        {
            "event_id": event.id,
            "type": event.type,
            "subject": event.subject,
            "payload": json.dumps(event.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")),
            "not_before": not_before,
        },
    )


def emitted(s: Session, event_id: str) -> bool:
    """True when an event with this id is in the outbox already (ids are derived, so a repeat
    of the same change has the same id)."""
    return s.scalar(select(OutboxRow.seq).where(OutboxRow.event_id == event_id)) is not None


# -- the publisher's side -------------------------------------------------------------------------
def held(now: dt.datetime) -> ColumnElement[bool]:
    """An outbox row held for an embargo at ``now`` (its ``not_before`` still ahead)."""
    return OutboxRow.not_before > now


def _due(now: dt.datetime) -> tuple[Subquery, tuple[ColumnElement[bool], ...]]:
    """What makes a row one the publisher may take ``now``: its own ``not_before`` has passed
    (or it has none), and no earlier unpublished row of the same subject is still held -- a
    held ``document.stored`` keeps that document's later events (a delete, a retag, a
    duplicate of it) behind it, so they cannot overtake it on the stream.  Events of other
    subjects pass.  Returns the held subjects (each with its first held ``seq``: a small
    table, read through ``ix_outbox_held``, since only held rows have a time ahead) to
    outer-join on ``subject``, and the conditions."""
    held_subjects = (
        select(OutboxRow.subject, func.min(OutboxRow.seq).label("first_held"))
        .where(held(now), OutboxRow.published_at.is_(None))
        .group_by(OutboxRow.subject)
        .subquery("held")
    )
    conditions = (
        or_(OutboxRow.not_before.is_(None), OutboxRow.not_before <= now),
        or_(held_subjects.c.first_held.is_(None), OutboxRow.seq < held_subjects.c.first_held),
    )
    return held_subjects, conditions


def pending(store: Sessions, limit: int, now: dt.datetime | None = None) -> list[OutboxEntry]:
    """The oldest ``limit`` unpublished entries the relay may take ``now``, in ``seq`` order
    (held ones and those queued behind them left out: see ``_due``)."""
    held_subjects, due = _due(now or dt.datetime.now(dt.UTC))
    with store.session() as s:
        rows = s.execute(
            select(*_ENTRY_COLUMNS)
            .outerjoin(held_subjects, held_subjects.c.subject == OutboxRow.subject)
            .where(OutboxRow.published_at.is_(None), *due)
            .order_by(OutboxRow.seq)
            .limit(limit)
        ).all()
    return [OutboxEntry(*r) for r in rows]


def next_due(store: Sessions, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the earliest held row's time comes (None: nothing is held)."""
    now = now or dt.datetime.now(dt.UTC)
    with store.session() as s:
        due = s.scalar(select(func.min(OutboxRow.not_before)).where(OutboxRow.published_at.is_(None), held(now)))
    return due.replace(tzinfo=dt.UTC) if due is not None and due.tzinfo is None else due  # SQLite: naive UTC


def mark_published(store: Sessions, entries: Sequence[OutboxEntry], when: dt.datetime | None = None) -> None:
    with store.session() as s:
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.seq.in_([e.seq for e in entries]))
            .values(published_at=when or dt.datetime.now(dt.UTC))
        )


def purge(
    store: Sessions,
    cutoff: dt.datetime,
    *,
    batch: int = 1000,
    max_batches: int = 20,
    stop: threading.Event | None = None,
) -> int:
    """Delete published rows older than ``cutoff``, ``batch`` at a time; returns how many.
    Delivered webhook rows age out with them (failed ones stay for the operator)."""
    purged = 0
    for _ in range(max_batches):
        with store.session() as s:
            seqs = list(
                s.scalars(
                    select(OutboxRow.seq)
                    .where(OutboxRow.published_at.is_not(None), OutboxRow.published_at < cutoff)
                    .order_by(OutboxRow.seq)
                    .limit(batch)
                )
            )
            if seqs:
                s.execute(delete(OutboxRow).where(OutboxRow.seq.in_(seqs)))
        purged += len(seqs)
        if len(seqs) < batch or (stop is not None and stop.is_set()):
            break
    _purge_delivered(store, cutoff, batch, max_batches, stop)
    return purged


def _purge_delivered(
    store: Sessions, cutoff: dt.datetime, batch: int, max_batches: int, stop: threading.Event | None
) -> None:
    for _ in range(max_batches):
        with store.session() as s:
            keys = s.execute(
                select(WebhookDelivery.event_id, WebhookDelivery.endpoint)
                .where(WebhookDelivery.status == "delivered", WebhookDelivery.updated_at < cutoff)
                .limit(batch)
            ).all()
            for event_id, endpoint in keys:
                s.execute(
                    delete(WebhookDelivery).where(
                        WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint == endpoint
                    )
                )
        if len(keys) < batch or (stop is not None and stop.is_set()):
            return


# -- history and lag --------------------------------------------------------------------------------
def replay_batch(
    store: Sessions, *, since: dt.datetime, after_seq: int, types: Iterable[str] = (), limit: int = 500
) -> list[OutboxEntry]:
    """Entries created at or after ``since`` with ``seq > after_seq`` (of ``types``, if any), in order."""
    query = (
        select(*_ENTRY_COLUMNS)
        .where(OutboxRow.created_at >= since, OutboxRow.seq > after_seq)
        .order_by(OutboxRow.seq)
        .limit(limit)
    )
    wanted = list(types)
    if wanted:
        query = query.where(OutboxRow.type.in_(wanted))
    with store.session() as s:
        return [OutboxEntry(*r) for r in s.execute(query).all()]


def lag(conn: Connection | Session, now: dt.datetime | None = None) -> OutboxLag:
    """How many events wait for the publisher and how old the oldest is (the publisher's lag).
    Events held for an embargo are not lag: counted apart and left out of the age.  A database
    from before migration 0003 (``seedworker status`` never migrates) has no ``not_before``."""
    now = now or dt.datetime.now(dt.UTC)
    owed: list[ColumnElement[bool]] = [OutboxRow.published_at.is_(None)]
    held_count = 0
    bind = conn.connection() if isinstance(conn, Session) else conn
    if "not_before" in {c["name"] for c in inspect(bind).get_columns(OutboxRow.__tablename__)}:
        held_count = int(conn.scalar(select(func.count()).where(*owed, held(now))) or 0)
        owed.append(or_(OutboxRow.not_before.is_(None), ~held(now)))
    count, oldest = conn.execute(select(func.count(), func.min(OutboxRow.created_at)).where(*owed)).one()
    if oldest is None:
        return OutboxLag(int(count), 0.0, held_count)
    if isinstance(oldest, str):  # SQLite without type affinity
        oldest = dt.datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    age = max(0.0, float((now - oldest).total_seconds()))
    return OutboxLag(int(count), round(age, 3), held_count)
