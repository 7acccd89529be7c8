"""What describes the running system rather than one process, read fresh from Redis and the
database: queue depths, unacknowledged messages and stream length (``broker``), outbox lag
(``worker.store.outbox.lag``) and webhook deliveries per endpoint (``webhook_counts``).  One
place, shared by ``seedworker status`` (worker/status.py) and the metrics collector
(worker/metrics_server.py), so both report the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, inspect, select
from sqlalchemy.pool import NullPool

from worker.events.endpoints import display_name
from worker.queues import QueueDepth, queue_depths
from worker.settings import Settings
from worker.store.engine import make_engine, normalise_url
from worker.store.outbox import OutboxLag, lag
from worker.store.schema import WebhookDelivery

__all__ = ["BrokerProbe", "OutboxLag", "broker", "engine", "lag", "webhook_counts"]

DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class BrokerProbe:
    depths: list[QueueDepth]  # declared queues too: see worker/queues.py
    unacked: int
    stream: str
    stream_length: int


def broker(client: Any, settings: Settings) -> BrokerProbe:
    """Queue depths, unacknowledged messages and the event stream's length."""
    depths = queue_depths(client, settings)
    pipe = client.pipeline()
    pipe.hlen("unacked")
    pipe.exists(settings.event_stream)
    unacked, has_stream = pipe.execute()
    length = int(client.xlen(settings.event_stream)) if has_stream else 0
    return BrokerProbe(depths, int(unacked), settings.event_stream, length)


def engine(settings: Settings, *, connect_timeout: float | None = None) -> Engine:
    """An engine without a pool (a probe takes one short look, and the metrics server's process
    forks: no connection may stay open across a fork), with a bounded connect time if given."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool)
    connect_args = {"connect_timeout": max(1, int(connect_timeout))} if connect_timeout else {}
    return create_engine(normalise_url(url), poolclass=NullPool, connect_args=connect_args)


def webhook_counts(conn: Connection, configured: Iterable[str] = ()) -> dict[str, dict[str, int]] | None:
    """``{endpoint: {"pending": n, "delivered": n, "failed": n}}`` by display name (rows keyed by
    a URL, from before endpoints had names, are shown masked); ``configured`` endpoint names start
    at 0.  None when the deliveries table does not exist (a database not yet migrated)."""
    if not inspect(conn).has_table(WebhookDelivery.__tablename__):
        return None
    counts = {name: dict.fromkeys(DELIVERY_STATES, 0) for name in configured}
    rows = conn.execute(
        select(WebhookDelivery.endpoint, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.endpoint, WebhookDelivery.status
        )
    )
    for endpoint, status, n in rows:
        counts.setdefault(display_name(str(endpoint)), dict.fromkeys(DELIVERY_STATES, 0))[str(status)] += int(n)
    return counts
