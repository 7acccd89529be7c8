"""What `seedworker status` reports: queues, workers, outcomes, outbox lag, stream."""

from __future__ import annotations

from typing import Any

import redis

from worker.app import create_app
from worker.broker import connect
from worker.errors import BrokerUnavailable
from worker.services import broker_url_for, ensure_schema
from worker.settings import Settings
from worker.store.engine import make_engine
from worker.store.repository import DocumentStore


def collect_status(settings: Settings, *, ping_timeout: float = 1.0) -> dict[str, Any]:
    report: dict[str, Any] = {}
    ensure_schema(settings)
    store = DocumentStore(make_engine(settings.effective_database_url), event_source=settings.event_source)
    try:
        report["documents"] = store.counts()
        if settings.webhooks:  # per endpoint: pending, delivered, failed (after the last retry)
            from worker.events.webhooks import webhook_delivery_counts

            report["webhooks"] = webhook_delivery_counts(store)
    finally:
        store.engine.dispose()
    try:
        url = broker_url_for(settings, start=False)
        client = connect(url, socket_timeout=5)
        queues = sorted({settings.queue, settings.effective_tag_queue})
        report["queues"] = {q: int(client.llen(q)) for q in queues}
        report["unacked"] = int(client.hlen("unacked"))
        report["stream"] = {
            "name": settings.event_stream,
            "length": int(client.xlen(settings.event_stream)) if client.exists(settings.event_stream) else 0,
            "dead_letters": int(client.xlen(settings.event_stream + ":dead")),
        }
        app = create_app(settings, url)
        replies = app.control.ping(timeout=ping_timeout) or []
        report["workers"] = sorted(name for r in replies for name in r)
        client.close()
    except (BrokerUnavailable, redis.RedisError, OSError) as exc:
        report["broker"] = f"unreachable: {exc}"
    return report
