"""The consumer API for your programs, ``from worker.consumer import consume`` (see
``examples/consume_events.py`` and docs/events.md), and reading the event stream: plain XREAD
for tailing, consumer groups for durable consumers, and ``consume`` (acks after the handler,
retries, dead letters, XAUTOCLAIM).  It reads the stream and never the database, so it is not
part of the relay.

With a group, a message is acknowledged only after the caller has handled it (the generator
resumes), so a consumer killed mid-handler gets the message again: first its own pending
history (ID ``0``), then new messages (``>``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from pydantic import ConfigDict

from worker.events.cloudevents import CloudEvent
from worker.logs import get_logger
from worker.signals import stop_on_signals

if TYPE_CHECKING:
    from worker.settings import Settings

log = get_logger(__name__)


def _decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    payload = fields.get(b"event")
    if payload is None:
        return {"id": fields.get(b"id", b"").decode(), "malformed": True}
    event: dict[str, Any] = json.loads(payload)
    return event


def ensure_group(client: redis.Redis, stream: str, group: str, start: str) -> None:
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_events(
    client: redis.Redis,
    stream: str,
    *,
    start: str = "$",
    group: str | None = None,
    consumer: str | None = None,
    block_ms: int = 1000,
    count: int = 100,
    stop: threading.Event | None = None,
    follow: bool = True,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(stream_id, cloud_event)`` pairs; ``follow=False`` stops at the end."""
    stop = stop or threading.Event()
    if group:
        consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        ensure_group(client, stream, group, "0" if start == "0" else start)
        yield from _read_group(client, stream, group, consumer, block_ms, count, stop, follow)
        return
    last = start
    if last == "$":  # resolve now, so nothing published while we block is skipped
        info = client.xinfo_stream(stream) if client.exists(stream) else None
        last = info["last-generated-id"].decode() if info else "0"
    while not stop.is_set():
        resp = client.xread({stream: last}, count=count, block=block_ms if follow else None)
        if not resp:
            if not follow:
                return
            continue
        for msg_id, fields in resp[0][1]:
            last = msg_id.decode()
            yield last, _decode(fields)


def _read_group(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    block_ms: int,
    count: int,
    stop: threading.Event,
    follow: bool,
) -> Iterator[tuple[str, dict[str, Any]]]:
    cursor = "0"  # our own pending history first
    while not stop.is_set():
        resp = client.xreadgroup(
            group, consumer, {stream: cursor}, count=count, block=None if cursor == "0" else block_ms
        )
        entries = resp[0][1] if resp else []
        if cursor == "0" and not entries:
            cursor = ">"
            continue
        if not entries:
            if not follow:
                return
            continue
        for msg_id, fields in entries:
            if not fields:  # pending entry trimmed away from the stream
                client.xack(stream, group, msg_id)
                continue
            yield msg_id.decode(), _decode(fields)
            client.xack(stream, group, msg_id)


# -- the consumer API -----------------------------------------------------------------------------
class ReceivedEvent(CloudEvent):
    """A CloudEvent as read from the stream: attributes a newer seedworker adds are kept, not refused."""

    model_config = ConfigDict(extra="allow")


Handler = Callable[[CloudEvent], object]


@dataclass
class ConsumeStats:
    handled: int = 0  # handler returned, message acknowledged
    failed_attempts: int = 0  # handler raised, message left pending for a retry
    dead_lettered: int = 0  # parked in the dead-letter stream and acknowledged
    claimed: int = 0  # taken over from a consumer that stopped answering (XAUTOCLAIM)


def dead_letter_stream_for(stream: str) -> str:
    return stream + ":dead"


def consume(
    handler: Handler,
    *,
    group: str,
    consumer: str | None = None,
    stream: str | None = None,
    redis_url: str | None = None,
    client: redis.Redis | None = None,
    start: str = "0",
    block_ms: int = 1000,
    count: int = 10,
    max_retries: int = 3,
    retry_delay_ms: int = 1000,
    claim_idle_ms: int = 60_000,
    dead_letter_stream: str | None = None,
    stop: threading.Event | None = None,
    max_events: int | None = None,
    handle_signals: bool = True,
    settings: Settings | None = None,
) -> ConsumeStats:
    """Call ``handler`` with every event of the stream, as member ``consumer`` of ``group``.

    * The group is created if missing (at ``start``: ``0`` = everything the stream holds,
      ``$`` = only new events).
    * A message is acknowledged (XACK) only after ``handler`` returned.  If it raises, the
      message stays pending and is retried after ``retry_delay_ms``; after ``max_retries``
      retries (``max_retries + 1`` deliveries) it is parked in ``dead_letter_stream`` (default
      ``<stream>:dead``) with the error, and acknowledged.
    * Messages pending with another consumer for ``claim_idle_ms`` (it crashed or hangs) are
      claimed (XAUTOCLAIM) and handled here; a message delivered more than ``max_retries + 1``
      times (it kills its consumers) is dead-lettered without calling the handler again.
    * Delivery is at-least-once: a handler may see an event again (same ``event.id``) after
      a crash; make it idempotent or drop repeats by id.
    * ``stream`` and the broker (``redis_url`` or ``client``) not given come from ``settings``:
      seedworker's settings, read from the environment and ``seedworker.toml``
      (``load_settings()``) when ``settings`` is not given either.
    * Returns when ``stop`` is set, on SIGTERM/SIGINT (main thread, ``handle_signals``) or
      after ``max_events`` handled events; the current handler call is finished first.
    """
    own_client = client is None
    if stream is None or (client is None and redis_url is None):
        from worker.broker import broker_url_for
        from worker.settings import load_settings

        settings = settings or load_settings()
        stream = stream or settings.event_stream
        if client is None and redis_url is None:
            redis_url = broker_url_for(settings, start=False)
    if client is None:
        from worker.broker import connect

        assert redis_url is not None
        client = connect(redis_url)
    loop = _ConsumerLoop(
        handler=handler,
        client=client,
        stream=stream,
        group=group,
        consumer=consumer or f"{socket.gethostname()}-{os.getpid()}",
        start=start,
        block_ms=block_ms,
        count=count,
        max_retries=max_retries,
        retry_delay_ms=retry_delay_ms,
        claim_idle_ms=claim_idle_ms,
        dead_letter_stream=dead_letter_stream or dead_letter_stream_for(stream),
        stop=stop or threading.Event(),
        max_events=max_events,
    )
    try:
        with stop_on_signals(loop.stop.set, announce=False, enabled=handle_signals):
            loop.run()
    finally:
        if own_client:
            client.close()
    return loop.stats


@dataclass
class _ConsumerLoop:
    handler: Handler
    client: redis.Redis
    stream: str
    group: str
    consumer: str
    start: str
    block_ms: int
    count: int
    max_retries: int
    retry_delay_ms: int
    claim_idle_ms: int
    dead_letter_stream: str
    stop: threading.Event
    max_events: int | None
    stats: ConsumeStats = field(default_factory=ConsumeStats)
    errors: dict[str, str] = field(default_factory=dict)  # stream id -> last handler error
    _claim_cursor: str = "0-0"
    _group_ready: bool = False

    def run(self) -> None:
        log.info("consumer started", stream=self.stream, group=self.group, consumer=self.consumer)
        while not self._done():
            try:
                if not self._group_ready:
                    ensure_group(self.client, self.stream, self.group, self.start)
                    self._group_ready = True
                self._round()
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._group_ready = False  # the stream or group vanished (Redis lost its data)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("consumer waiting for Redis", error=str(exc))
                self.stop.wait(1.0)
        log.info("consumer stopped", **vars(self.stats))

    def _done(self) -> bool:
        return self.stop.is_set() or (self.max_events is not None and self.stats.handled >= self.max_events)

    def _round(self) -> None:
        # 1. messages of consumers that stopped answering (and our own, if long forgotten)
        cursor, claimed = _autoclaim(
            self.client, self.stream, self.group, self.consumer, self.claim_idle_ms, self._claim_cursor, self.count
        )
        self._claim_cursor = cursor
        if claimed:
            self.stats.claimed += len(claimed)
            log.info("claimed idle messages", count=len(claimed))
            self._handle(claimed, fresh=False)
        # 2. our own failures whose retry delay has passed (XCLAIM bumps the delivery count)
        due = self.client.xpending_range(
            self.stream,
            self.group,
            min="-",
            max="+",
            count=self.count,
            consumername=self.consumer,
            idle=self.retry_delay_ms,
        )
        if due and not self._done():
            ids = [d["message_id"] for d in due]
            retried = self.client.xclaim(self.stream, self.group, self.consumer, self.retry_delay_ms, ids)
            self._ack_missing(ids, retried)
            self._handle(retried, fresh=False)
        if self._done():
            return
        # 3. new messages; wake up in time for the next retry
        block = min(self.block_ms, self.retry_delay_ms) if self.errors else self.block_ms
        resp = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block)
        if resp:
            self._handle(resp[0][1], fresh=True)

    def _ack_missing(self, ids: list[Any], entries: list[Any]) -> None:
        """Pending ids whose entry was trimmed from the stream come back empty: forget them."""
        present = {_text(i) for i, fields in entries if fields}
        gone = [i for i in ids if _text(i) not in present]
        if gone:
            self.client.xack(self.stream, self.group, *gone)

    def _handle(self, entries: list[Any], *, fresh: bool) -> None:
        for raw_id, fields in entries:
            if raw_id is None:  # Redis 6.2 XAUTOCLAIM: an entry trimmed away, now pending with us
                self._ack_trimmed()
                continue
            msg_id = _text(raw_id)
            if not fields:  # trimmed away while pending
                self.client.xack(self.stream, self.group, msg_id)
                continue
            deliveries = 1 if fresh else self._deliveries(msg_id)
            payload = fields.get(b"event", b"")
            if deliveries > self.max_retries + 1:
                error = self.errors.get(msg_id) or f"delivered {deliveries} times without an acknowledgement"
                self._dead_letter(msg_id, fields, deliveries, error)
                continue
            try:
                event = ReceivedEvent.model_validate_json(payload)
            except ValueError as exc:
                self._dead_letter(msg_id, fields, deliveries, f"malformed event: {exc}"[:2000])
                continue
            try:
                self.handler(event)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                self.errors[msg_id] = error
                log.warning("handler failed", event_id=event.id, attempt=deliveries, error=error)
                if deliveries >= self.max_retries + 1:
                    self._dead_letter(msg_id, fields, deliveries, error)
                else:
                    self.stats.failed_attempts += 1
                continue
            self.client.xack(self.stream, self.group, msg_id)
            self.errors.pop(msg_id, None)
            self.stats.handled += 1
            if self._done():
                return

    def _ack_trimmed(self) -> None:
        """Acknowledge our pending ids whose entry no longer exists (XAUTOCLAIM gave no id)."""
        pending = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=1000, consumername=self.consumer
        )
        for p in pending:
            if not self.client.xrange(self.stream, min=p["message_id"], max=p["message_id"]):
                self.client.xack(self.stream, self.group, p["message_id"])

    def _deliveries(self, msg_id: str) -> int:
        info = self.client.xpending_range(self.stream, self.group, min=msg_id, max=msg_id, count=1)
        return int(info[0]["times_delivered"]) if info else 1

    def _dead_letter(self, msg_id: str, fields: dict[bytes, bytes], deliveries: int, error: str) -> None:
        """Park the event with its error and acknowledge it, in one MULTI."""
        entry = {
            "id": fields.get(b"id", b""),
            "type": fields.get(b"type", b""),
            "event": fields.get(b"event", b""),
            "stream": self.stream,
            "stream_id": msg_id,
            "group": self.group,
            "consumer": self.consumer,
            "deliveries": str(deliveries),
            "error": error,
            "failed_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream, entry, maxlen=1_000_000, approximate=True)
        pipe.xack(self.stream, self.group, msg_id)
        pipe.execute()
        self.errors.pop(msg_id, None)
        self.stats.dead_lettered += 1
        log.warning("event dead-lettered", stream_id=msg_id, deliveries=deliveries, error=error)


def _autoclaim(
    client: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int, cursor: str, count: int
) -> tuple[str, list[Any]]:
    resp = client.xautoclaim(stream, group, consumer, min_idle_ms, start_id=cursor, count=count)
    return _text(resp[0]), list(resp[1])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
