"""Re-publishing history from the outbox, for a consumer that joins late or lost its place.

Replayed events are the very rows the publisher sent (same ids, same JSON), appended in
``seq`` order to the main stream or to a stream of their own; a consumer that drops
repeats by id sees each event once.  History reaches back ``OUTBOX_RETENTION``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

import redis

from worker.events.cloudevents import TYPE_PREFIX
from worker.store import outbox
from worker.store.repository import DocumentStore

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` ago, or an ISO date/datetime (UTC if naive)."""
    now = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(value)
    if match:
        return now - dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"not a duration (15m, 2h, 7d) or ISO date/datetime: {value!r}") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def full_types(types: Iterable[str]) -> list[str]:
    return [t if t.startswith(TYPE_PREFIX) else TYPE_PREFIX + t for t in types]


def replay(
    store: DocumentStore,
    client: redis.Redis,
    stream: str,
    *,
    since: dt.datetime,
    types: Iterable[str] = (),
    batch: int = 500,
    maxlen: int = 1_000_000,
) -> int:
    """XADD every outbox event created at or after ``since`` (of ``types``, if given); returns how many."""
    wanted = full_types(types)
    last_seq, total = 0, 0
    while True:
        entries = outbox.replay_batch(store, since=since, after_seq=last_seq, types=wanted, limit=batch)
        if not entries:
            return total
        pipe = client.pipeline(transaction=False)
        for e in entries:
            fields = {"id": e.event_id, "type": e.type, "subject": e.subject, "event": e.payload}
            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
        pipe.execute()
        total += len(entries)
        last_seq = entries[-1].seq
