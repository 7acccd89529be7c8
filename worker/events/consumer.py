"""Reading the event stream: plain XREAD for tailing, consumer groups for durable consumers.

With a group, a message is acknowledged only after the caller has handled it (the generator
resumes), so a consumer killed mid-handler gets the message again: first its own pending
history (ID ``0``), then new messages (``>``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import redis


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
