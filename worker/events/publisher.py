"""The outbox relay: moves committed events from the database to the Redis Stream.

At-least-once: rows are XADDed, then marked published.  A crash in between republishes the
same rows with the same event ids; consumers drop repeats by id.  One publisher is active at
a time (a Redis lease), which keeps events in commit order; any number may stand by.
Workers PUBLISH a wake-up after each commit, so an event reaches the stream within
milliseconds; a poll every ``idle_poll`` seconds covers missed wake-ups.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
from sqlalchemy import select, update

from worker.errors import StoreUnavailable
from worker.logs import get_logger
from worker.store.repository import DocumentStore
from worker.store.schema import OutboxRow

log = get_logger(__name__)

WAKEUP_CHANNEL_SUFFIX = ":wakeup"
LEASE_SUFFIX = ":publisher-lease"


def wakeup_channel(stream: str) -> str:
    return stream + WAKEUP_CHANNEL_SUFFIX


@dataclass
class OutboxPublisher:
    store: DocumentStore
    redis: redis.Redis
    stream: str
    maxlen: int = 1_000_000
    batch: int = 500
    idle_poll: float = 0.5
    lease_seconds: float = 10.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    stop_event: threading.Event = field(default_factory=threading.Event)

    @property
    def _lease_key(self) -> str:
        return self.stream + LEASE_SUFFIX

    def hold_lease(self) -> bool:
        """Take or renew the publisher lease; False while another publisher holds it."""
        ms = int(self.lease_seconds * 1000)
        if self.redis.set(self._lease_key, self.identity, nx=True, px=ms):
            return True
        holder = self.redis.get(self._lease_key)
        if holder is not None and holder.decode() == self.identity:
            self.redis.pexpire(self._lease_key, ms)
            return True
        return False

    def release_lease(self) -> None:
        holder = self.redis.get(self._lease_key)
        if holder is not None and holder.decode() == self.identity:
            self.redis.delete(self._lease_key)

    def publish_once(self) -> int:
        """Move one batch; returns how many events were published."""
        with self.store.session() as s:
            rows = s.execute(
                select(OutboxRow.seq, OutboxRow.event_id, OutboxRow.type, OutboxRow.subject, OutboxRow.payload)
                .where(OutboxRow.published_at.is_(None))
                .order_by(OutboxRow.seq)
                .limit(self.batch)
            ).all()
        if not rows:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for _, event_id, type_, subject, payload in rows:
            pipe.xadd(
                self.stream,
                {"id": event_id, "type": type_, "subject": subject, "event": payload},
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.execute()
        with self.store.session() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.seq.in_([r[0] for r in rows]))
                .values(published_at=dt.datetime.now(dt.UTC))
            )
        log.debug("published", count=len(rows), last_seq=rows[-1][0])
        return len(rows)

    def run(self) -> None:
        """Publish until ``stop_event`` is set; survives Redis and database outages."""
        pubsub = None
        log.info("publisher started", stream=self.stream, identity=self.identity)
        while not self.stop_event.is_set():
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(wakeup_channel(self.stream))
                if not self.hold_lease():
                    self.stop_event.wait(self.lease_seconds / 3)
                    continue
                while not self.stop_event.is_set() and self.publish_once() >= self.batch:
                    self.hold_lease()
                self._sleep_until_woken(pubsub)
            except (redis.RedisError, OSError, StoreUnavailable) as exc:
                log.warning("publisher waiting for its dependencies", error=str(exc))
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()
                pubsub = None
                self.stop_event.wait(1.0)
        with contextlib.suppress(redis.RedisError, OSError):
            self.release_lease()
        log.info("publisher stopped")

    def _sleep_until_woken(self, pubsub: redis.client.PubSub) -> None:
        """Until a worker says "committed", the poll interval passes, or we are stopped."""
        deadline = time.monotonic() + self.idle_poll
        while not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if pubsub.get_message(timeout=min(left, 0.25)) is not None:
                while pubsub.get_message(timeout=0) is not None:  # drain the burst
                    pass
                return


def notify_committed(client: redis.Redis, stream: str) -> None:
    """Wake the publisher; best effort, the publisher polls anyway."""
    with contextlib.suppress(redis.RedisError, OSError):
        client.publish(wakeup_channel(stream), b"1")


def wait_for_publication(store: DocumentStore, timeout: float) -> bool:
    """Testing/ops helper: wait until the outbox is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.counts()["outbox_unpublished"] == 0:
            return True
        time.sleep(0.05)
    return False
