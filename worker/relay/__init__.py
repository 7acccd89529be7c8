"""The relay: moves committed events from the outbox (``worker/store/outbox.py``) to the Redis
Stream (``publisher``), hands each published batch to the webhook dispatcher (``webhooks``,
which sends one delivery task per endpoint), and re-publishes history (``replay``).  The event
contract it moves is ``worker/events/``; reading the stream is ``worker/consumer.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from worker.relay.publisher import OutboxPublisher
    from worker.settings import Settings
    from worker.store.repository import DocumentStore


def publisher_from_settings(
    settings: Settings, store: DocumentStore, client: redis.Redis, broker_url: str
) -> OutboxPublisher:
    """The publisher as configured, handed the webhook dispatcher when endpoints are set."""
    from worker.relay.publisher import OutboxPublisher

    after_publish = None
    if settings.webhooks:
        from worker.relay.webhooks import WebhookDispatcher

        after_publish = WebhookDispatcher.from_settings(settings, store, broker_url).dispatch
    return OutboxPublisher.from_settings(settings, store, client, after_publish=after_publish)
