"""A durable consumer of seedworker events: copy this file and change ``handle``.

    python examples/consume_events.py --group search-indexer
    python examples/consume_events.py --group search-indexer --redis-url redis://host:6379/0

Without ``--redis-url`` it uses SEEDWORKER_BROKER_URL (or the embedded Redis of
SEEDWORKER_DATA_DIR).  Start as many copies with the same ``--group`` as you like: each event
goes to one of them.  ``consume`` acknowledges an event only after ``handle`` returned, retries a
failing ``handle`` (3 times by default), then parks the event in ``seedworker:events:dead`` with the
error; events left by a crashed copy are taken over after a minute.

Delivery is at-least-once, so ``handle`` must tolerate repeats: every event has a stable ``id``.
Here the ids already handled are remembered in a SQLite file, in the same transaction as the
handler's own effect (a row per stored document), so a crash between the two cannot split them.
"""

from __future__ import annotations

import argparse
import socket
import sqlite3

from worker.consumer import CloudEvent, consume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", default="example", help="consumer group (one position per group)")
    parser.add_argument("--consumer", default=socket.gethostname(), help="this copy's name inside the group")
    parser.add_argument("--redis-url", help="default: SEEDWORKER_BROKER_URL or the embedded Redis")
    parser.add_argument("--stream", help="default: SEEDWORKER_EVENT_STREAM (seedworker:events)")
    parser.add_argument("--db", default="consumer.db", help="where this example keeps its state")
    parser.add_argument("--count", type=int, help="stop after this many events (for tests)")
    args = parser.parse_args()

    db = sqlite3.connect(args.db)
    db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, title TEXT, filename TEXT)")
    db.commit()

    def handle(event: CloudEvent) -> None:
        with db:  # one transaction: the effect and the "seen" mark commit together
            if db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event.id,)).fetchone():
                return  # a repeat (publisher or consumer crashed mid-way): already handled
            data = event.data
            if event.type == "org.seedworker.document.stored":
                db.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?)",
                    (data["id"], data.get("title"), data.get("filename")),
                )
            elif event.type == "org.seedworker.document.deleted":
                db.execute("DELETE FROM documents WHERE id = ?", (data["id"],))
            # document.duplicate / .failed / .retagged: whatever your system needs
            db.execute("INSERT INTO seen VALUES (?)", (event.id,))
        print(f"{event.type.rsplit('.', 1)[-1]:<10} {event.subject} {event.id}", flush=True)

    stats = consume(
        handle,
        group=args.group,
        consumer=args.consumer,
        redis_url=args.redis_url,
        stream=args.stream,
        max_events=args.count,
    )
    print(f"stopped: {stats}", flush=True)


if __name__ == "__main__":
    main()
