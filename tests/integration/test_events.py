"""The outbox relay and the stream readers against the real embedded Redis."""

from __future__ import annotations

import json
import threading

import redis

from tests.integration.test_store import _batch, _store
from worker.events.consumer import read_events
from worker.events.publisher import OutboxPublisher, notify_committed
from worker.store.repository import DocumentStore


def _publisher(store: DocumentStore, client: redis.Redis, **kw: object) -> OutboxPublisher:
    return OutboxPublisher(store=store, redis=client, stream="test:events", **kw)  # type: ignore[arg-type]


def test_outbox_rows_reach_the_stream_in_commit_order_once(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    ids = [store.persist_document(*_batch(f"story number {i}", f"k{i}")).document_id for i in range(5)]
    pub = _publisher(store, redis_client, batch=2)
    assert pub.publish_once() == 2
    assert pub.publish_once() == 2
    assert pub.publish_once() == 1
    assert pub.publish_once() == 0
    subjects = [f[b"subject"].decode() for _, f in redis_client.xrange("test:events")]
    assert subjects == ids


def test_crash_between_xadd_and_mark_republishes_same_ids(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    store.persist_document(*_batch("story", "k1"))
    pub = _publisher(store, redis_client)
    pub.publish_once()
    # Simulate the crash: the rows were added but never marked as published.
    from sqlalchemy import update

    from worker.store.schema import OutboxRow

    with store.session() as s:
        s.execute(update(OutboxRow).values(published_at=None))
    pub.publish_once()
    entries = redis_client.xrange("test:events")
    assert len(entries) == 2
    assert entries[0][1][b"id"] == entries[1][1][b"id"]  # a repeat consumers can drop by id


def test_only_one_publisher_holds_the_lease(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    a, b = _publisher(store, redis_client, identity="a"), _publisher(store, redis_client, identity="b")
    assert a.hold_lease() and not b.hold_lease()
    a.release_lease()
    assert b.hold_lease()


def test_running_publisher_wakes_on_notify(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    pub = _publisher(store, redis_client, idle_poll=30.0)
    thread = threading.Thread(target=pub.run, daemon=True)
    thread.start()
    try:
        store.persist_document(*_batch("story", "k1"))
        stop = threading.Event()
        timer = threading.Timer(10, stop.set)
        timer.start()
        notify_committed(redis_client, "test:events")
        got = next(read_events(redis_client, "test:events", start="0", stop=stop, block_ms=200), None)
        timer.cancel()
        assert got is not None and got[1]["type"] == "org.seedworker.document.stored"
    finally:
        pub.stop_event.set()
        thread.join(5)


def test_group_reader_redelivers_unacked_message_to_same_consumer(redis_client: redis.Redis) -> None:
    redis_client.xadd("test:events", {"id": "e1", "event": json.dumps({"id": "e1"})})
    redis_client.xadd("test:events", {"id": "e2", "event": json.dumps({"id": "e2"})})
    reader = read_events(redis_client, "test:events", group="g", consumer="c", start="0", follow=False)
    first = next(reader)
    assert first[1]["id"] == "e1"
    reader.close()  # the consumer dies while handling e1: no XACK
    again = [e["id"] for _, e in read_events(redis_client, "test:events", group="g", consumer="c", follow=False)]
    assert again == ["e1", "e2"]
    assert [e for e in read_events(redis_client, "test:events", group="g", consumer="c", follow=False)] == []
