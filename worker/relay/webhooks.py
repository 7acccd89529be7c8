"""Webhooks: every published event POSTed to each configured endpoint that wants its type.

Enqueue is at-least-once and idempotent.  The publisher calls ``WebhookDispatcher.dispatch``
after a batch reached the stream and before it marks the batch published: first one
``webhook_deliveries`` row per (event, endpoint) is written (insert-if-absent), then one
``seedworker.webhook.deliver`` task is sent per row still pending, with a task id derived
from (event id, endpoint), to the webhook queue (``WEBHOOK_QUEUE``).  That queue has its own
worker (a thread pool, ``seedworker run`` starts it), so an endpoint that answers slowly
holds webhook threads, never the ingestion pool.  A crash anywhere repeats the step with the
same rows and ids; a delivery already recorded as delivered or failed is not sent again.  The
task carries the endpoint's name, never its URL (Flower shows task arguments).

Each POST carries the CloudEvent JSON (``application/cloudevents+json``), signed as the
Standard Webhooks specification says (https://www.standardwebhooks.com/): ``webhook-id`` (the
event id), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature: v1,<base64 of
HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, so receivers verify with the official
libraries.  The key is the base64 after ``whsec_`` in the secret, or a legacy secret's UTF-8
bytes.  The older ``X-Seedworker-Signature: sha256=<hex HMAC over "<timestamp>.<body>">`` is
still sent (deprecated).  Non-2xx answers and network errors are retried with exponential
backoff and full jitter, ``webhook_max_attempts`` POSTs in all; then the delivery is recorded
as failed (``seedworker status`` and ``seedworker_webhook_failures_total`` show the counts, both
through worker/probes.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.errors import BrokerUnavailable
from worker.events.endpoints import WebhookEndpoint, display_name
from worker.logs import get_logger
from worker.retry import RetryPolicy
from worker.store.repository import DocumentStore
from worker.store.schema import WebhookDelivery, utcnow

if TYPE_CHECKING:
    from celery import Celery

    from worker.settings import Settings
    from worker.store.outbox import OutboxEntry

log = get_logger(__name__)

TASK_NAME = "seedworker.webhook.deliver"
CONTENT_TYPE = "application/cloudevents+json"
EVENT_ID_HEADER = "X-Seedworker-Event-Id"
EVENT_TYPE_HEADER = "X-Seedworker-Event-Type"
TIMESTAMP_HEADER = "X-Seedworker-Timestamp"
SIGNATURE_HEADER = "X-Seedworker-Signature"
#: Standard Webhooks headers.
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
_TASK_NAMESPACE = uuid.UUID("0b7e4f52-3c1d-5e8a-9f60-7a2d4c9e1b35")


# -- signatures ------------------------------------------------------------------------------------
def sign_standard(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The legacy ``X-Seedworker-Signature`` (deprecated): ``sha256=<hex HMAC of timestamp.body>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str | bytes, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0) -> bool:
    """What a receiver of the legacy header does: constant-time compare, refuse timestamps too far from now."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def delivery_task_id(event_id: str, endpoint: str) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, f"{event_id}\x1f{endpoint}"))


# -- enqueue (in the publisher) ------------------------------------------------------------------
@dataclass
class WebhookDispatcher:
    store: DocumentStore
    endpoints: Sequence[WebhookEndpoint]
    app: Celery
    queue: str

    @classmethod
    def from_settings(cls, settings: Settings, store: DocumentStore, broker_url: str) -> WebhookDispatcher:
        from worker.app import create_app

        app = create_app(settings, broker_url)
        return cls(store=store, endpoints=list(settings.webhooks), app=app, queue=settings.webhook_queue)

    def dispatch(self, entries: Sequence[OutboxEntry]) -> int:
        """Record and enqueue one delivery per (event, interested endpoint); returns tasks sent."""
        pairs = [(e, ep) for e in entries for ep in self.endpoints if ep.wants(e.type)]
        if not pairs:
            return 0
        with self.store.session() as s:
            for entry, endpoint in pairs:
                _insert_pending(s, entry.event_id, endpoint.key, entry.type)
            done = set(
                s.execute(
                    select(WebhookDelivery.event_id, WebhookDelivery.endpoint).where(
                        WebhookDelivery.event_id.in_({e.event_id for e, _ in pairs}),
                        WebhookDelivery.status != "pending",
                    )
                ).tuples()
            )
        sent = 0
        try:
            for entry, endpoint in pairs:
                if (entry.event_id, endpoint.key) in done:
                    continue
                self.app.send_task(
                    TASK_NAME,
                    kwargs={"event_id": entry.event_id, "endpoint": endpoint.key, "payload": entry.payload},
                    task_id=delivery_task_id(entry.event_id, endpoint.key),
                    queue=self.queue,
                )
                sent += 1
        except Exception as exc:  # kombu's OperationalError and friends: the broker is gone
            raise BrokerUnavailable(f"could not enqueue webhook deliveries: {exc}") from exc
        return sent


def _insert_pending(s: Session, event_id: str, endpoint: str, event_type: str) -> None:
    values = {"event_id": event_id, "endpoint": endpoint, "event_type": event_type, "status": "pending", "attempts": 0}
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        s.execute(pg_insert(WebhookDelivery).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        s.execute(sqlite_insert(WebhookDelivery).values(**values).on_conflict_do_nothing())


# -- delivery (in the task) -----------------------------------------------------------------------
@dataclass(frozen=True)
class DeliveryResult:
    status: Literal["delivered", "retry", "failed", "skipped"]
    attempts: int = 0
    retry_in: float | None = None
    error: str | None = None


def retry_policy(settings: Settings) -> RetryPolicy:
    """Backoff between POSTs: exponential from ``webhook_backoff``, capped at
    ``webhook_backoff_cap``, full jitter (attempt 1 failed: up to ``webhook_backoff`` seconds)."""
    return RetryPolicy(base=settings.webhook_backoff, cap=settings.webhook_backoff_cap, jitter=1.0)


def deliver(
    settings: Settings, store: DocumentStore, *, event_id: str, endpoint_key: str, payload: str
) -> DeliveryResult:
    """One POST attempt; records the outcome and says whether (and when) to try again."""
    event_type = str(json.loads(payload).get("type", ""))
    endpoint = find_endpoint(settings.webhooks, endpoint_key)
    shown = display_name(endpoint_key)
    with store.session() as s:
        _insert_pending(s, event_id, endpoint_key, event_type)
        row = s.get(WebhookDelivery, (event_id, endpoint_key))
        assert row is not None
        if row.status != "pending":
            return DeliveryResult("skipped", row.attempts)
        attempt = row.attempts + 1
    if endpoint is None:
        gone = "endpoint no longer configured"
        _record(store, event_id, endpoint_key, "failed", attempt, gone)
        log.warning("webhook delivery failed for good", endpoint=shown, event_id=event_id, error=gone)
        return DeliveryResult("failed", attempt, error=gone)
    error = post(endpoint, event_id, event_type, payload.encode())
    if error is None:
        _record(store, event_id, endpoint_key, "delivered", attempt, None)
        log.info("webhook delivered", endpoint=shown, event_id=event_id, attempts=attempt)
        return DeliveryResult("delivered", attempt)
    if attempt >= settings.webhook_max_attempts:
        _record(store, event_id, endpoint_key, "failed", attempt, error)
        log.warning("webhook delivery failed for good", endpoint=shown, event_id=event_id, error=error)
        return DeliveryResult("failed", attempt, error=error)
    _record(store, event_id, endpoint_key, "pending", attempt, error)
    delay = retry_policy(settings).delay(attempt - 1)
    log.info("webhook retry", endpoint=shown, event_id=event_id, attempt=attempt, retry_in=round(delay, 2))
    return DeliveryResult("retry", attempt, retry_in=delay, error=error)


def find_endpoint(endpoints: Sequence[WebhookEndpoint], key: str) -> WebhookEndpoint | None:
    """The endpoint a delivery row or task names (by name; rows from before 2026-12 by URL)."""
    return next((ep for ep in endpoints if key in (ep.key, str(ep.url))), None)


def headers_for(endpoint: WebhookEndpoint, event_id: str, event_type: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    key = endpoint.signing_key
    return {
        **{name: value.get_secret_value() for name, value in endpoint.headers.items()},
        "Content-Type": CONTENT_TYPE,
        WEBHOOK_ID_HEADER: event_id,
        WEBHOOK_TIMESTAMP_HEADER: timestamp,
        WEBHOOK_SIGNATURE_HEADER: sign_standard(key, event_id, timestamp, body),
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(key, timestamp, body),
        "User-Agent": "seedworker-webhooks/1",
    }


def post(endpoint: WebhookEndpoint, event_id: str, event_type: str, body: bytes) -> str | None:
    """POST once; None on a 2xx answer, else what went wrong (without the URL)."""
    url = str(endpoint.url)
    try:
        response = httpx.post(
            url, content=body, headers=headers_for(endpoint, event_id, event_type, body), timeout=endpoint.timeout
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}".replace(url, endpoint.key)[:1000]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _record(store: DocumentStore, event_id: str, endpoint: str, status: str, attempts: int, error: str | None) -> None:
    with store.session() as s:
        s.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.event_id == event_id,
                WebhookDelivery.endpoint == endpoint,
                WebhookDelivery.status == "pending",
            )
            .values(status=status, attempts=attempts, last_error=error, updated_at=utcnow())
        )
