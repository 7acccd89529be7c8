"""Urgency, genre, pubstatus and embargo in the store and the event, and
``SEEDWORKER_EMBARGO=hold``: the held event's time is on its outbox row, other documents'
events pass it, the same document's later events wait behind it.  On SQLite and PostgreSQL
with the real embedded Redis; the last tests run the real publisher process (tests/stack.py),
killed and restarted while it holds an event."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from tests.support.stack import Stack
from tests.support.store import batch as _batch
from worker.models import PipelineBatch, StageItem
from worker.relay.publisher import OutboxPublisher, notify_committed
from worker.store.engine import make_engine
from worker.store.migrations import upgrade
from worker.store.repository import DocumentStore
from worker.store.schema import Document, OutboxRow

STREAM = "test:events"


def _store(url: str, embargo: str) -> DocumentStore:
    upgrade(url)
    return DocumentStore(make_engine(url), event_source="urn:test", embargo=embargo)


def _news(text: str, key: str, embargo: dt.datetime | None) -> tuple[PipelineBatch, StageItem, bytes]:
    """A stored item as an agency sent it: urgency, genre, status and (maybe) an embargo."""
    batch, item, raw = _batch(text, key)
    news = {"urgency": 2, "genre": "genre:Current", "pubstatus": "usable", "embargoed_until": embargo}
    return batch, item.model_copy(update={"document": item.document.model_copy(update=news)}), raw


def _publisher(store: DocumentStore, client: redis.Redis, **kw: Any) -> OutboxPublisher:
    return OutboxPublisher(store=store, redis=client, stream=STREAM, **kw)


def _stream(client: redis.Redis, stream: str = STREAM) -> list[tuple[str, str]]:
    """(type, subject) of every event on the stream, in stream order."""
    return [
        (json.loads(f[b"event"])["type"].removeprefix("org.seedworker."), f[b"subject"].decode())
        for _, f in client.xrange(stream)
    ]


def _soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _wait_until(when: dt.datetime) -> None:
    time.sleep(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)


# -- the fields -------------------------------------------------------------------------------
def test_news_fields_are_columns_and_event_data(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url, "publish")
    embargo = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    doc_id = store.persist_document(*_news("Agency story", "k1", embargo)).document_id
    assert doc_id is not None
    with store.session() as s:
        row = s.get(Document, doc_id)
        assert row is not None
        assert (row.urgency, row.genre, row.pubstatus) == (2, "genre:Current", "usable")
        assert (row.embargoed_until or embargo).replace(tzinfo=dt.UTC) == embargo  # SQLite gives naive UTC back
        assert s.scalar(select(OutboxRow.not_before)) is None  # publish mode: nothing is held
    _publisher(store, redis_client).publish_once()
    (_, fields), *_ = redis_client.xrange(STREAM)
    data = json.loads(fields[b"event"])["data"]
    assert (data["urgency"], data["genre"], data["pubstatus"]) == (2, "genre:Current", "usable")
    assert dt.datetime.fromisoformat(data["embargoed_until"]) == embargo


def test_a_plain_document_has_null_news_fields(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url, "hold")
    store.persist_document(*_batch("A plain story", "k1"))
    assert _publisher(store, redis_client).publish_once() == 1  # hold mode holds only embargoed items
    data = json.loads(redis_client.xrange(STREAM)[0][1][b"event"])["data"]
    assert [data[k] for k in ("urgency", "genre", "pubstatus", "embargoed_until")] == [None] * 4


# -- hold: ordering, in-process ---------------------------------------------------------------
def test_a_held_event_waits_for_its_time_and_other_documents_pass(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url, "hold")
    embargo = _soon(6.0)  # ample for two writes and a publish on a loaded machine
    held = store.persist_document(*_news("Embargoed results of the study", "k-held", embargo)).document_id
    other = store.persist_document(*_batch("An unrelated story filed later", "k-other")).document_id
    pub = _publisher(store, redis_client)
    assert pub.publish_once() == 1
    assert dt.datetime.now(dt.UTC) < embargo, "the machine was too slow to see the hold"
    assert _stream(redis_client) == [("document.stored", other)]
    assert store.counts()["outbox_unpublished"] == 1  # the held one
    _wait_until(embargo)
    assert pub.publish_once() == 1
    assert _stream(redis_client) == [("document.stored", other), ("document.stored", held)]
    assert pub.publish_once() == 0


def test_later_events_of_a_held_document_never_overtake_it(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url, "hold")
    embargo = _soon(8.0)
    held = store.persist_document(*_news("Embargoed budget figures", "k-held", embargo)).document_id
    assert held is not None
    copy = store.persist_document(*_batch("Embargoed budget figures", "k-copy"))  # an exact duplicate of it
    assert copy.duplicate_of == held
    before = store.persist_document(*_batch("Weather for the weekend", "k-before")).document_id
    store.delete([held], reason="withdrawn by the agency")
    after = store.persist_document(*_batch("Match report from the cup", "k-after")).document_id
    pub = _publisher(store, redis_client)
    while pub.publish_once():
        pass
    assert dt.datetime.now(dt.UTC) < embargo, "the machine was too slow to see the hold"
    assert _stream(redis_client) == [("document.stored", before), ("document.stored", after)]
    _wait_until(embargo)
    while pub.publish_once():
        pass
    assert _stream(redis_client)[2:] == [
        ("document.stored", held),
        ("document.duplicate", held),
        ("document.deleted", held),
    ]


def test_the_idle_wait_ends_when_the_earliest_held_event_falls_due(
    database_url: str, redis_client: redis.Redis
) -> None:
    store = _store(database_url, "hold")
    pub = _publisher(store, redis_client, idle_poll=600.0)
    assert pub.next_due() is None and pub._idle_seconds() == 600.0
    late, soon = _soon(3600), _soon(60)
    store.persist_document(*_news("Held for an hour", "k-late", late))
    store.persist_document(*_news("Held for a minute", "k-soon", soon))
    due = pub.next_due()
    assert due is not None and abs((due - soon).total_seconds()) < 0.001
    assert 0.05 <= pub._idle_seconds() <= 60  # bounded by the due time, not the 600 s poll
    assert _publisher(store, redis_client, idle_poll=0.5)._idle_seconds() == 0.5  # and by the poll


# -- the real publisher process ---------------------------------------------------------------
def _publisher_process(tmp_path: Path, broker_url: str, store: DocumentStore, database_url: str) -> Stack:
    """The publisher process, running: a first event (``ready``) reached the stream, so the
    embargo of the test starts counting once the process has started, not before."""
    stack = Stack(tmp_path, broker_url, database_url)
    stack.start("publisher", "publish")
    ready = store.persist_document(*_batch("The publisher is running", "k-ready")).document_id
    _wake(stack)
    stack.wait_for(lambda: ready in _stored_subjects(stack), 60, "the publisher's first event")
    return stack


def _wake(stack: Stack) -> None:
    client = stack.redis()
    notify_committed(client, stack.stream)
    client.close()


def _stored_subjects(stack: Stack) -> list[str]:
    return [e["subject"] for e in stack.events() if e["type"] == "org.seedworker.document.stored"]


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_publisher_process_holds_an_embargo_and_publishes_it_when_it_lifts(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    store = _store(database_url, "hold")
    stack = _publisher_process(tmp_path, broker_url, store, database_url)
    try:
        embargo = _soon(8.0)  # room for a loaded machine between the write and the check
        held = store.persist_document(*_news("Embargoed election poll", "k-held", embargo)).document_id
        other = store.persist_document(*_batch("Traffic news from the ring road", "k-other")).document_id
        _wake(stack)
        stack.wait_for(lambda: other in _stored_subjects(stack), 30, "the other document's event")
        seen = _stored_subjects(stack)
        assert dt.datetime.now(dt.UTC) < embargo, "the machine was too slow to see the hold"
        assert held not in seen
        stack.wait_for(lambda: held in _stored_subjects(stack), 30, "the held event after its embargo")
        seen = dt.datetime.now(dt.UTC)
        assert seen >= embargo
        assert (seen - embargo).total_seconds() < 5  # promptly, not at some later poll or restart
        assert _stored_subjects(stack)[1:] == [other, held]
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_publisher_killed_while_holding_publishes_the_event_after_restart(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    store = _store(database_url, "hold")
    stack = _publisher_process(tmp_path, broker_url, store, database_url)
    try:
        embargo = _soon(10.0)  # runs out while the dead publisher's 10 s lease does
        held = store.persist_document(*_news("Embargoed court ruling", "k-held", embargo)).document_id
        marker = store.persist_document(*_batch("Published at once", "k-marker")).document_id
        _wake(stack)
        stack.wait_for(lambda: marker in _stored_subjects(stack), 30, "the publisher running")
        stack.kill("publisher")  # SIGKILL while it holds the embargoed event
        seen = _stored_subjects(stack)
        assert dt.datetime.now(dt.UTC) < embargo, "the machine was too slow to kill it while holding"
        assert held not in seen
        _wait_until(embargo)
        assert held not in _stored_subjects(stack)  # nothing else publishes it
        stack.start("publisher", "publish")  # takes over once the dead one's lease expires
        stack.wait_for(lambda: held in _stored_subjects(stack), 45, "the held event from the restarted publisher")
        # at-least-once: a publisher killed between XADD and marking its batch published has it
        # sent again by the next one, so an event may repeat; the order of first sight may not change
        assert list(dict.fromkeys(_stored_subjects(stack)))[1:] == [marker, held]
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_publish_mode_emits_at_once_saying_embargoed_until(tmp_path: Path, broker_url: str, database_url: str) -> None:
    store = _store(database_url, "publish")
    stack = _publisher_process(tmp_path, broker_url, store, database_url)
    try:
        embargo = _soon(3600)
        doc_id = store.persist_document(*_news("Embargoed until tomorrow", "k1", embargo)).document_id
        _wake(stack)
        (event,) = stack.wait_for_events(1, 30, subject=str(doc_id))
        assert dt.datetime.fromisoformat(event["data"]["embargoed_until"]) == embargo
        assert dt.datetime.now(dt.UTC) < embargo
    finally:
        stack.stop()


# -- status and metrics -----------------------------------------------------------------------
def test_a_held_event_is_held_in_status_and_metrics_not_publisher_lag(
    tmp_path: Path, database_url: str, broker_url: str
) -> None:
    from worker.metrics_server import SystemCollector
    from worker.settings import Settings
    from worker.status import database_status

    store = _store(database_url, "hold")
    store.persist_document(*_news("Held for an hour", "k-held", _soon(3600)))
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "data")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    assert database_status(settings, now=later)["outbox"] == {"unpublished": 0, "held": 1, "oldest_age_seconds": 0.0}
    store.persist_document(*_batch("A story the publisher owes", "k-owed"))
    outbox = database_status(settings, now=later)["outbox"]
    assert (outbox["unpublished"], outbox["held"]) == (1, 1) and outbox["oldest_age_seconds"] > 0
    values = {
        sample.name: sample.value
        for family in SystemCollector(settings, broker_url).collect()
        for sample in family.samples
    }
    assert values["seedworker_outbox_held"] == 1 and values["seedworker_outbox_unpublished"] == 1


def test_status_reads_a_database_from_before_the_embargo_migration(tmp_path: Path, database_url: str) -> None:
    from worker.settings import Settings
    from worker.status import database_status

    upgrade(database_url, "0002_fulltext")
    settings = Settings(_env_file=None, database_url=database_url, data_dir=tmp_path / "data")
    assert database_status(settings)["outbox"] == {"unpublished": 0, "held": 0, "oldest_age_seconds": 0.0}
