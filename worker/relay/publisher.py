"""The outbox relay: moves committed events from the database to the Redis Stream.

At-least-once: rows are XADDed, then marked published.  A crash in between republishes the
same rows with the same event ids; consumers drop repeats by id.

Order: one publisher is active at a time (a Redis lease) and publishes unpublished rows in
``seq`` order.  The lease is a *fence*, not only a courtesy: the XADDs of a batch run in one
Lua script that first checks, inside Redis, that no other publisher holds the lease (and
takes or renews it).  A publisher that stalled past its lease (GC pause, slow database, network) and
wakes up after another took over cannot append its stale batch behind newer events; it
gets ``LeaseLost`` and starts over.  Events of one document are written by transactions
that follow each other, so ``seq`` order is their order.

Held events (``SEEDWORKER_EMBARGO=hold``): a row whose ``not_before`` lies in the future is
skipped, and so is every later row of the same subject (one document's events keep their
order); other rows pass it.  It is published in the first round after its time, so on the
stream it comes after the events committed while it was held.  The time is in the row, so
a restarted publisher holds and releases it the same way; the idle wait is cut short when
a held row falls due before the next poll.

Workers PUBLISH a wake-up after each commit, so an event reaches the stream within
milliseconds; a poll every ``idle_poll`` seconds covers missed wake-ups.  Every
``retention_interval`` the active publisher trims the stream by age (XTRIM MINID) and
purges published outbox rows (and delivered webhook rows) older than ``outbox_retention``
in batches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from worker.errors import LeaseLost, RetryableError
from worker.logs import get_logger
from worker.store import outbox
from worker.store.outbox import OutboxEntry
from worker.store.repository import DocumentStore

if TYPE_CHECKING:
    from worker.settings import Settings

log = get_logger(__name__)

WAKEUP_CHANNEL_SUFFIX = ":wakeup"
_MIN_IDLE = 0.05  # seconds: the shortest idle wait, even when a held row falls due sooner
LEASE_SUFFIX = ":publisher-lease"

# KEYS: lease; ARGV: identity, lease ms.  Take the lease if free, renew it if ours.
_HOLD_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease, stream; ARGV: identity, lease ms, maxlen, then (id, type, subject, event) per row.
_FENCED_XADD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return redis.error_reply('LEASELOST publisher lease held by another publisher')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local n = 0
for i = 4, #ARGV, 4 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
    'id', ARGV[i], 'type', ARGV[i + 1], 'subject', ARGV[i + 2], 'event', ARGV[i + 3])
  n = n + 1
end
return n
"""


#: Called with each batch after it reached the stream and before it is marked published
#: (the webhook dispatcher); a crash in between repeats the call with the same entries.
AfterPublish = Callable[[Sequence[OutboxEntry]], object]


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
    stream_max_age: float = 0.0  # seconds; 0 = trim by length only
    outbox_retention: float = 7 * 24 * 3600.0  # seconds; 0 = keep published rows forever
    retention_interval: float = 60.0
    purge_batch: int = 1000
    after_publish: AfterPublish | None = None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}")
    stop_event: threading.Event = field(default_factory=threading.Event)
    _next_maintenance: float = 0.0
    _scripts: dict[str, Any] = field(default_factory=dict, repr=False)

    def _script(self, source: str) -> Any:
        """EVALSHA with a reload after a Redis restart (redis-py's Script)."""
        if source not in self._scripts:
            self._scripts[source] = self.redis.register_script(source)
        return self._scripts[source]

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: DocumentStore,
        client: redis.Redis,
        *,
        after_publish: AfterPublish | None,
        **kw: Any,
    ) -> OutboxPublisher:
        """The publisher as configured; ``after_publish`` is the webhook dispatcher's ``dispatch``
        when endpoints are set (``worker.relay.relay_from_settings`` wires them)."""
        return cls(
            store=store,
            redis=client,
            stream=settings.event_stream,
            maxlen=settings.stream_maxlen,
            batch=settings.publish_batch,
            stream_max_age=settings.stream_max_age,
            outbox_retention=settings.outbox_retention,
            retention_interval=settings.retention_interval,
            after_publish=after_publish,
            **kw,
        )

    @property
    def _lease_key(self) -> str:
        return self.stream + LEASE_SUFFIX

    def hold_lease(self) -> bool:
        """Take or renew the publisher lease; False while another publisher holds it."""
        ms = int(self.lease_seconds * 1000)
        return bool(self._script(_HOLD_LEASE)(keys=[self._lease_key], args=[self.identity, ms]))

    def release_lease(self) -> None:
        holder = self.redis.get(self._lease_key)
        if holder is not None and holder.decode() == self.identity:
            self.redis.delete(self._lease_key)

    def pending(self, now: dt.datetime | None = None) -> list[OutboxEntry]:
        """The next unpublished rows in ``seq`` order, without held ones (``outbox.pending``)."""
        return outbox.pending(self.store, self.batch, now)

    def next_due(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """When the earliest held row's time comes (None: nothing is held)."""
        return outbox.next_due(self.store, now)

    def _idle_seconds(self) -> float:
        """The idle wait: the poll interval, or less when a held row falls due sooner
        (never below ``_MIN_IDLE``, so a row due in a microsecond cannot spin the loop)."""
        now = dt.datetime.now(dt.UTC)
        due = self.next_due(now)
        if due is None:
            return self.idle_poll
        return max(_MIN_IDLE, min(self.idle_poll, (due - now).total_seconds()))

    def publish_once(self) -> int:
        """Move one batch; returns how many events were published.  Raises LeaseLost."""
        entries = self.pending()
        if not entries:
            return 0
        self.append(entries)
        if self.after_publish is not None:
            self.after_publish(entries)
        outbox.mark_published(self.store, entries)
        log.debug("published", count=len(entries), last_seq=entries[-1].seq)
        return len(entries)

    def append(self, entries: Sequence[OutboxEntry]) -> None:
        """XADD the entries in order, atomically fenced by the lease (see the module docstring)."""
        args: list[Any] = [self.identity, int(self.lease_seconds * 1000), self.maxlen]
        for e in entries:
            args += [e.event_id, e.type, e.subject, e.payload]
        try:
            self._script(_FENCED_XADD)(keys=[self._lease_key, self.stream], args=args)
        except redis.ResponseError as exc:
            if "LEASELOST" in str(exc):
                raise LeaseLost(str(exc)) from exc
            raise

    # -- retention ---------------------------------------------------------------------------
    def trim_stream(self) -> int:
        """Drop stream entries older than ``stream_max_age`` (approximately, whole nodes)."""
        if self.stream_max_age <= 0:
            return 0
        seconds, micros = self.redis.time()  # the clock that stamped the entry ids
        cutoff_ms = int(seconds) * 1000 + int(micros) // 1000 - int(self.stream_max_age * 1000)
        return int(self.redis.xtrim(self.stream, minid=f"{max(cutoff_ms, 0)}-0", approximate=True))

    def purge_outbox(self, now: dt.datetime | None = None, max_batches: int = 20) -> int:
        """Delete published rows older than ``outbox_retention``, ``purge_batch`` at a time."""
        if self.outbox_retention <= 0:
            return 0
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=self.outbox_retention)
        return outbox.purge(self.store, cutoff, batch=self.purge_batch, max_batches=max_batches, stop=self.stop_event)

    def maintain(self) -> None:
        """Trim and purge when due; only the lease holder calls this."""
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + self.retention_interval
        trimmed, purged = self.trim_stream(), self.purge_outbox()
        if trimmed or purged:
            log.info("retention", stream_trimmed=trimmed, outbox_purged=purged)

    # -- the loop ----------------------------------------------------------------------------
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
                    pass
                self.maintain()
                self._sleep_until_woken(pubsub, self._idle_seconds())
            except LeaseLost:
                log.warning("publisher lease lost mid-batch; standing by")
            except (redis.RedisError, OSError, RetryableError) as exc:
                log.warning("publisher waiting for its dependencies", error=str(exc))
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()
                pubsub = None
                self.stop_event.wait(1.0)
        with contextlib.suppress(redis.RedisError, OSError):
            self.release_lease()
        log.info("publisher stopped")

    def _sleep_until_woken(self, pubsub: redis.client.PubSub, seconds: float) -> None:
        """Until a worker says "committed", ``seconds`` pass, or we are stopped."""
        deadline = time.monotonic() + seconds
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
