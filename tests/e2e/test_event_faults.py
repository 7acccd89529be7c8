"""Event delivery under faults, with real processes (tests/support/stack.py): the publisher killed
with SIGKILL mid-batch, the embedded Redis killed and restarted mid-run, a webhook endpoint
down and then back.  In every case each outcome's event reaches every consumer, none is
lost, and repeats carry the same id.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.http import Receiver
from tests.support.stack import Stack
from tests.support.webhooks import SECRET, start_webhook_worker
from worker.broker import EmbeddedRedis
from worker.consumer import CloudEvent, consume
from worker.relay import webhooks
from worker.store.engine import make_engine
from worker.store.schema import Ingestion, OutboxRow, WebhookDelivery

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAST = {"SEEDWORKER_NER_MODEL": "", "SEEDWORKER_KEYWORDS": "false"}  # entities are not what these tests are about
WORDS = [
    "river",
    "council",
    "budget",
    "harbour",
    "election",
    "festival",
    "railway",
    "museum",
    "drought",
    "vaccine",
    "court",
    "bridge",
]


def _articles(n: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(60))
        out.append((f"story-{seed}-{i}.txt", f"Story {seed}-{i}\n\nLONDON (Reuters) - {body}.\n".encode()))
    return out


def _db_count(database_url: str, query: object) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(query) or 0)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def _outbox_ids(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(OutboxRow.event_id)))
    finally:
        engine.dispose()


def _unpublished(database_url: str) -> int:
    return _db_count(database_url, select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None)))


def _start(stack: Stack, *, publisher: bool = True) -> Stack:
    stack.inbox.mkdir(parents=True, exist_ok=True)
    stack.start("worker", "worker", "--concurrency=2", f"--node-name=w1@{stack.root.name}")
    stack.start("watcher", "watch", "--watcher-id=test-watcher")
    if publisher:
        stack.start("publisher", "publish")
    stack.wait_for_worker()
    return stack


def _stream_counts(stack: Stack) -> Counter[str]:
    return Counter(e["id"] for e in stack.events())


def test_publisher_killed_mid_batch_loses_no_event(tmp_path: Path, broker_url: str, database_url: str) -> None:
    stack = _start(
        Stack(tmp_path, broker_url, database_url, {**FAST, "SEEDWORKER_PUBLISH_BATCH": "1"}), publisher=False
    )
    try:
        inputs = _articles(30, seed=1)
        for name, data in inputs:
            stack.drop(name, data)
        # Committed, not yet published: the publisher is not running.
        stack.wait_for(lambda: _unpublished(database_url) == len(inputs), 120, "every outcome in the outbox")
        assert stack.events() == []

        stack.start("publisher", "publish")
        client = stack.redis()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (client.exists(stack.stream) and client.xlen(stack.stream)):
            time.sleep(0.001)
        stack.kill("publisher")  # SIGKILL, as soon as it has published something
        published_at_kill = int(client.xlen(stack.stream))
        left_at_kill = _unpublished(database_url)
        assert published_at_kill >= 1 and left_at_kill >= 1, "the kill did not land mid-way"

        stack.start("publisher", "publish")
        stack.wait_for(lambda: len(_stream_counts(stack)) == len(inputs), 60, "every event on the stream")
        stack.wait_for(lambda: _unpublished(database_url) == 0, 30, "the outbox drained")
        counts = _stream_counts(stack)
        assert set(counts) == _outbox_ids(database_url)  # nothing lost, nothing invented
        assert _db_count(database_url, select(func.count()).select_from(Ingestion)) == len(inputs)
        repeats = sum(counts.values()) - len(counts)
        assert repeats <= 1  # batch of 1: at most the row in flight at the kill comes twice
        client.close()
    finally:
        stack.stop()


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own (the session's is shared), on a short socket path so its URL
    survives a restart; ``always`` so a SIGKILL loses no acknowledged write."""
    directory = Path(tempfile.mkdtemp(prefix="swr", dir="/tmp"))
    server = EmbeddedRedis(directory, appendfsync="always")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_redis_killed_and_restarted_mid_run_loses_no_event(tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    url = own_redis.url
    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    stack = _start(Stack(tmp_path, url, database_url, dict(FAST)))
    groups = ("indexer", "audit")  # two consumer groups: every event must reach both
    seen: dict[str, Counter[str]] = {g: Counter() for g in groups}
    lock = threading.Lock()
    stop = threading.Event()

    def consumer_for(group: str) -> threading.Thread:
        def handler(event: CloudEvent) -> None:
            with lock:
                seen[group][event.id] += 1

        kwargs = {"group": group, "stream": stack.stream, "redis_url": url, "stop": stop, "block_ms": 200}
        return threading.Thread(
            target=consume, args=(handler,), kwargs={**kwargs, "handle_signals": False}, daemon=True
        )

    consumers = [consumer_for(g) for g in groups]
    for thread in consumers:
        thread.start()
    try:
        first, second = _articles(6, seed=2), _articles(6, seed=3)
        for name, data in first:
            stack.drop(name, data)
        stack.wait_for(lambda: all(len(c) == len(first) for c in seen.values()), 120, "the first events consumed")

        own_redis.kill()
        for name, data in second:  # dropped while Redis is down: the watcher keeps the claims
            stack.drop(name, data)
        time.sleep(2)
        assert own_redis.start() == url

        total = len(first) + len(second)

        def all_consumed() -> bool:
            stack.revive()  # the supervisor's job in `seedworker run`: see Stack.revive
            return all(len(c) == total for c in seen.values())

        stack.wait_for(all_consumed, 180, "every event consumed by both groups")
        stack.wait_for(lambda: _unpublished(database_url) == 0, 30, "the outbox drained")
        assert set(seen["indexer"]) == set(seen["audit"]) == _outbox_ids(database_url) == set(_stream_counts(stack))
        assert _db_count(database_url, select(func.count()).select_from(Ingestion)) == total
    finally:
        stop.set()
        for thread in consumers:
            thread.join(10)
        stack.stop()


def test_webhook_endpoint_down_then_back_receives_every_event(
    tmp_path: Path, broker_url: str, receiver_down_for_a_while: Receiver
) -> None:
    receiver = receiver_down_for_a_while
    database_url = f"sqlite:///{tmp_path / 'seedworker.db'}"
    endpoint = {"url": receiver.url("/hook"), "secret": SECRET, "name": "hook"}
    env = {
        **FAST,
        "SEEDWORKER_WEBHOOKS": json.dumps([endpoint]),
        "SEEDWORKER_WEBHOOK_BACKOFF": "0.5",
        "SEEDWORKER_WEBHOOK_BACKOFF_CAP": "2",
        "SEEDWORKER_WEBHOOK_MAX_ATTEMPTS": "30",
    }
    stack = _start(Stack(tmp_path, broker_url, database_url, env))
    start_webhook_worker(stack)
    try:
        inputs = _articles(8, seed=4)
        for name, data in inputs:
            stack.drop(name, data)
        stack.wait_for(lambda: len(receiver.all("/hook")) >= len(inputs), 120, "every event attempted while down")
        assert receiver.ok("/hook") == []
        receiver.fail = lambda path, n: False  # the endpoint recovers

        stack.wait_for(lambda: len(_stream_counts(stack)) == len(inputs), 60, "every event on the stream")
        expected = set(_stream_counts(stack))
        stack.wait_for(
            lambda: {r.event["id"] for r in receiver.ok("/hook")} == expected,
            120,
            "every event delivered after recovery",
        )
        for r in receiver.ok("/hook"):
            h = {k.lower(): v for k, v in r.headers.items()}
            assert webhooks.verify(SECRET, h["x-seedworker-timestamp"], r.body, h["x-seedworker-signature"])
        engine = make_engine(database_url)
        with engine.connect() as conn:
            statuses = Counter(conn.scalars(select(WebhookDelivery.status)))
        engine.dispose()
        assert statuses == {"delivered": len(inputs)}
    finally:
        stack.stop()


@pytest.fixture
def receiver_down_for_a_while() -> Iterator[Receiver]:
    r = Receiver(fail=lambda path, n: True).start()
    yield r
    r.stop()
