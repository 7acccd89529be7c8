"""``seedworker.webhook.deliver``: POST one event to one endpoint (logic in worker/relay/webhooks.py).

The attempt count lives in the ``webhook_deliveries`` row, not in Celery's retry counter,
so a task sent twice (the publisher repeated a batch) still stops after the last attempt.
"""

from __future__ import annotations

from celery import Task, shared_task

from tasks._common import task_context
from worker.errors import RetryableError
from worker.relay import webhooks
from worker.retry import DEFAULT_RETRY
from worker.runtime import get_runtime


@shared_task(name=webhooks.TASK_NAME, bind=True, acks_late=True)
def deliver(self: Task, event_id: str, endpoint: str, payload: str) -> str:
    with task_context(self, event_id=event_id, endpoint=endpoint):
        rt = get_runtime()
        try:
            result = webhooks.deliver(rt.settings, rt.store, event_id=event_id, endpoint_key=endpoint, payload=payload)
        except RetryableError as exc:  # the database is away: not an attempt, just later
            raise self.retry(exc=exc, countdown=DEFAULT_RETRY.delay(self.request.retries), max_retries=None) from exc
        if result.retry_in is not None:
            raise self.retry(countdown=result.retry_in, max_retries=None)
        return f"{result.status} after {result.attempts} attempt(s)"
