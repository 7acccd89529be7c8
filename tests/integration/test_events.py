"""The outbox relay (fencing, retention, replay), the emitted shape and the stream readers,
against the real embedded Redis on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.support.store import batch as _batch
from tests.support.store import new_store as _store
from worker.consumer import read_events
from worker.errors import LeaseLost
from worker.relay.publisher import LEASE_SUFFIX, OutboxPublisher, notify_committed
from worker.relay.replay import parse_since, replay
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


# -- fencing: a publisher that lost its lease cannot append ---------------------------------------
def test_publisher_without_the_lease_appends_nothing(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    store.persist_document(*_batch("story", "k1"))
    holder, other = _publisher(store, redis_client, identity="a"), _publisher(store, redis_client, identity="b")
    assert holder.hold_lease()
    with pytest.raises(LeaseLost):
        other.publish_once()
    assert redis_client.xlen("test:events") == 0
    assert store.counts()["outbox_unpublished"] == 1


def test_stalled_publisher_cannot_append_a_stale_batch_after_a_takeover(
    database_url: str, redis_client: redis.Redis
) -> None:
    """A reads a batch, stalls past its lease; B takes over and publishes more; A wakes up."""
    store = _store(database_url)
    first = store.persist_document(*_batch("story one", "k1")).document_id
    a = _publisher(store, redis_client, identity="a", lease_seconds=0.2)
    b = _publisher(store, redis_client, identity="b")
    assert a.hold_lease()
    stale = a.pending()
    time.sleep(0.3)  # A's lease expires while it is stalled
    second = store.persist_document(*_batch("story two", "k2")).document_id
    assert b.hold_lease()
    assert b.publish_once() == 2
    with pytest.raises(LeaseLost):
        a.append(stale)
    subjects = [f[b"subject"].decode() for _, f in redis_client.xrange("test:events")]
    assert subjects == [first, second]


def test_run_loop_survives_losing_the_lease(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    redis_client.set("test:events" + LEASE_SUFFIX, "someone-else", px=600)
    pub = _publisher(store, redis_client, idle_poll=0.05, lease_seconds=0.6)
    thread = threading.Thread(target=pub.run, daemon=True)
    thread.start()
    try:
        store.persist_document(*_batch("story", "k1"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and redis_client.xlen("test:events") == 0:
            time.sleep(0.05)
        assert redis_client.xlen("test:events") == 1  # taken over once the other lease expired
    finally:
        pub.stop_event.set()
        thread.join(5)


# -- retention --------------------------------------------------------------------------------------
def test_stream_is_trimmed_by_age(database_url: str, redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline()
    for i in range(300):  # entries from 1970: far older than any max age
        pipe.xadd("test:events", {"id": f"old{i}"}, id=f"{1000 + i}-0")
    pipe.execute()
    for i in range(5):
        redis_client.xadd("test:events", {"id": f"new{i}"})
    pub = _publisher(_store(database_url), redis_client, stream_max_age=3600)
    assert pub.trim_stream() >= 200  # whole radix-tree nodes of old entries (approximate trim)
    left = [f[b"id"].decode() for _, f in redis_client.xrange("test:events")]
    assert left[-5:] == [f"new{i}" for i in range(5)]
    assert len(left) <= 105


def test_outbox_purges_old_published_rows_in_batches(database_url: str, redis_client: redis.Redis) -> None:
    from sqlalchemy import func, select, update

    from worker.store.schema import OutboxRow

    store = _store(database_url)
    for i in range(7):
        store.persist_document(*_batch(f"story {i}", f"k{i}"))
    pub = _publisher(store, redis_client, outbox_retention=3600, purge_batch=2)
    assert pub.publish_once() == 7
    store.persist_document(*_batch("unpublished story", "k-late"))
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with store.session() as s:
        s.execute(update(OutboxRow).where(OutboxRow.seq <= 5).values(published_at=long_ago))
    assert pub.purge_outbox() == 5
    with store.session() as s:
        left = s.execute(select(OutboxRow.seq, OutboxRow.published_at).order_by(OutboxRow.seq)).all()
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 3
    assert [seq for seq, _ in left] == [6, 7, 8] and left[-1][1] is None


def test_delivered_webhook_rows_age_out_failed_ones_stay(database_url: str, redis_client: redis.Redis) -> None:
    from sqlalchemy import select

    from worker.store.schema import WebhookDelivery

    store = _store(database_url)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with store.session() as s:
        for event_id, status, when in [("e1", "delivered", old), ("e2", "failed", old), ("e3", "delivered", None)]:
            row = WebhookDelivery(event_id=event_id, endpoint="ep", event_type="t", status=status, attempts=1)
            if when:
                row.updated_at = when
            s.add(row)
    _publisher(store, redis_client, outbox_retention=3600, purge_batch=1).purge_outbox()
    with store.session() as s:
        assert sorted(s.scalars(select(WebhookDelivery.event_id))) == ["e2", "e3"]


# -- replay ---------------------------------------------------------------------------------------------
def test_replay_republishes_history_with_the_same_ids(database_url: str, redis_client: redis.Redis) -> None:
    store = _store(database_url)
    for i in range(3):
        store.persist_document(*_batch(f"story {i}", f"k{i}"))
    store.persist_document(*_batch("story 0", "k-dup"))  # a duplicate
    _publisher(store, redis_client).publish_once()
    published = [f[b"id"] for _, f in redis_client.xrange("test:events")]

    since = parse_since("1h")
    assert replay(store, redis_client, "replay:new", since=since, batch=2) == 4
    assert [f[b"id"] for _, f in redis_client.xrange("replay:new")] == published
    assert replay(store, redis_client, "replay:dups", since=since, types=["document.duplicate"]) == 1
    [(_, dup)] = redis_client.xrange("replay:dups")
    assert dup[b"type"] == b"org.seedworker.document.duplicate" and dup[b"id"] == published[-1]
    assert replay(store, redis_client, "replay:none", since=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == 0


def test_parse_since_accepts_durations_and_dates() -> None:
    now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_since("15m", now) == now - dt.timedelta(minutes=15)
    assert parse_since("7d", now) == now - dt.timedelta(days=7)
    assert parse_since("2026-02-01", now) == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert parse_since("2026-02-01T10:00:00+01:00", now).utcoffset() == dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday", now)


def test_replay_command(database_url: str, broker_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from worker.cli import main

    store = _store(database_url)
    store.persist_document(*_batch("story", "k1"))
    env = {
        "SEEDWORKER_BROKER_URL": broker_url,
        "SEEDWORKER_DATABASE_URL": database_url,
        "SEEDWORKER_DATA_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["events", "replay", "--since", "1d", "--to-stream", "replay:cli"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["replayed"] == 1  # after any log lines
    assert redis_client.xlen("replay:cli") == 1
    bad = CliRunner().invoke(main, ["events", "replay", "--since", "soon"], env=env)
    assert bad.exit_code == 2 and "duration" in bad.output


# -- shape: what the store emits validates against the shipped schemas --------------------------
def test_emitted_events_validate_against_the_shipped_schemas(database_url: str, redis_client: redis.Redis) -> None:
    import jsonschema

    from worker.events.contract import load_shipped
    from worker.models import FileSummary

    store = _store(database_url)
    store.persist_document(*_batch("story", "k1"))
    store.persist_document(*_batch("story", "k2"))
    store.persist_failure(
        key="k3", summary=FileSummary.of("x.bin", b"\0"), source="test", reason="binary", message="binary content"
    )
    _publisher(store, redis_client).publish_once()
    schemas = load_shipped()
    events = [json.loads(f[b"event"]) for _, f in redis_client.xrange("test:events")]
    assert [e["type"] for e in events] == [
        "org.seedworker.document.stored",
        "org.seedworker.document.duplicate",
        "org.seedworker.document.failed",
    ]
    for event in events:
        schema = schemas[event["type"].removeprefix("org.seedworker.")]
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event)
        data_schema = schemas[event["type"].removeprefix("org.seedworker.") + ".data"]
        assert event["dataschema"] == data_schema["$id"]
        jsonschema.Draft202012Validator(data_schema, format_checker=jsonschema.FormatChecker()).validate(event["data"])
