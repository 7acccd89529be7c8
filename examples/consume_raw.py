"""Consuming seedworker events with nothing but redis-py: what any language does with its client.

    python examples/consume_raw.py redis://localhost:6379/0 --group billing

Each stream entry has the fields ``id`` (the CloudEvent id), ``type``, ``subject`` and ``event``
(the CloudEvent as JSON).  The loop: take over messages a dead consumer left pending
(XAUTOCLAIM), read new ones (XREADGROUP ``>``), handle, then XACK.  A message delivered too often
(XPENDING says how often) is copied to a dead-letter stream and acknowledged.
"""

from __future__ import annotations

import argparse
import json
import socket

import redis

MAX_DELIVERIES = 4  # first delivery + 3 retries
CLAIM_IDLE_MS = 60_000  # a message pending this long belongs to a consumer that died


def handle(event: dict[str, object]) -> None:
    print(event["type"], event["subject"], event["id"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url")
    parser.add_argument("--stream", default="seedworker:events")
    parser.add_argument("--group", default="raw-example")
    parser.add_argument("--consumer", default=socket.gethostname())
    parser.add_argument("--count", type=int, help="stop after this many events (for tests)")
    args = parser.parse_args()
    r = redis.Redis.from_url(args.redis_url)
    stream, group, me, dead = args.stream, args.group, args.consumer, args.stream + ":dead"

    try:  # XGROUP CREATE seedworker:events raw-example 0 MKSTREAM
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise

    done, cursor = 0, "0-0"
    while args.count is None or done < args.count:
        # XAUTOCLAIM seedworker:events raw-example <me> 60000 <cursor> COUNT 10
        cursor, entries = r.xautoclaim(stream, group, me, CLAIM_IDLE_MS, start_id=cursor, count=10)[:2]
        # XREADGROUP GROUP raw-example <me> COUNT 10 BLOCK 5000 STREAMS seedworker:events >
        fresh = r.xreadgroup(group, me, {stream: ">"}, count=10, block=5000)
        entries = list(entries) + (fresh[0][1] if fresh else [])
        for msg_id, fields in entries:
            if not fields:  # trimmed from the stream while pending
                r.xack(stream, group, msg_id)
                continue
            # XPENDING seedworker:events raw-example <id> <id> 1  -> times delivered
            [info] = r.xpending_range(stream, group, min=msg_id, max=msg_id, count=1) or [{"times_delivered": 1}]
            try:
                if info["times_delivered"] > MAX_DELIVERIES:
                    raise RuntimeError(f"delivered {info['times_delivered']} times")
                handle(json.loads(fields[b"event"]))
            except Exception as exc:  # park it with the error, then acknowledge (atomically)
                if info["times_delivered"] < MAX_DELIVERIES:
                    continue  # stays pending; XAUTOCLAIM brings it back after CLAIM_IDLE_MS
                pipe = r.pipeline(transaction=True)
                pipe.xadd(dead, {**fields, b"error": str(exc).encode(), b"stream_id": msg_id})
                pipe.xack(stream, group, msg_id)  # XACK seedworker:events raw-example <id>
                pipe.execute()
                continue
            r.xack(stream, group, msg_id)
            done += 1


if __name__ == "__main__":
    main()
