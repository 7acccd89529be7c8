"""What every seedworker task shares: logging context, retry-or-fail, replies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import structlog
from celery import Task

from worker.errors import InputError
from worker.events.publisher import notify_committed
from worker.logs import get_logger
from worker.metrics import record_outcomes
from worker.models import FileSummary, IngestResult, Outcome, Reply, usable_reply_to
from worker.retry import DEFAULT_RETRY
from worker.runtime import Runtime

log = get_logger("seedworker.tasks")
T = TypeVar("T")
REPLY_TTL_SECONDS = 7 * 24 * 3600
REPLY_PATIENCE_SECONDS = 10.0  # how long a reply waits for Redis to come back


@contextmanager
def task_context(task: Task, **fields: Any) -> Iterator[None]:
    """Fresh log context per task: task id, file name, key (document id bound later)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task.request.id, task=task.name, **fields)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()


def run_with_retry(task: Task, work: Callable[[], T], on_give_up: Callable[[Exception], T]) -> T:
    """``RetryPolicy.decide`` around ``work`` for tasks whose giving up is not a document's
    failure (training, retagging); document tasks get this from ``SeedworkerTask``."""
    try:
        return work()
    except InputError:
        raise
    except Exception as exc:
        decision = DEFAULT_RETRY.decide(exc, task.request.retries or 0)
        if decision.action == "retry":
            log.warning("retrying", error=f"{type(exc).__name__}: {exc}", retry_in=round(decision.delay, 2))
            raise task.retry(exc=exc, countdown=decision.delay, max_retries=None) from exc
        log.exception("unexpected error, giving up")
        return on_give_up(exc)


def finish(rt: Runtime, reply_to: str | None, result: IngestResult) -> str:
    """After the commit: wake the publisher, answer the producer, log, return Flower's line."""
    notify_committed(rt.redis, rt.settings.event_stream)
    record_outcomes(result.outcomes)
    for outcome in result.outcomes:
        log.info(
            "outcome",
            status=outcome.status,
            document_id=outcome.document_id,
            duplicate_of=outcome.duplicate_of,
            reason=outcome.reason,
            replayed=outcome.replayed,
        )
    if reply_to:
        reply(rt.redis, reply_to, result)
    return result.short()


def reply(
    client: redis.Redis, reply_to: str, result: IngestResult, *, patience: float = REPLY_PATIENCE_SECONDS
) -> bool:
    """Push the outcomes to the producer's reply list; True once Redis took them.

    This runs after the transaction committed, so a Redis outage must not fail the task (its
    work is done, and a retry would need the broker that is down).  Redis is tried again with
    backoff for ``patience`` seconds (a restart); after that the reply is given up, loudly: the
    producer asks again with the same key (the watcher re-sends a claim without a reply after
    ``WATCH_RESEND_SECONDS``; ``submit(..., wait=True)`` times out), and the repeat replays
    the stored outcome and answers (docs/delivery.md).
    """
    if usable_reply_to(reply_to) is None:  # the last guard: never a task queue, never a foreign key
        log.error("reply refused: not a list under the reply prefix", reply_to=repr(reply_to)[:200])
        return False
    payload = Reply(filename=result.filename, outcomes=result.outcomes).model_dump_json()
    deadline = time.monotonic() + patience
    attempt = 0
    while True:
        try:
            pipe = client.pipeline()
            pipe.lpush(reply_to, payload)
            pipe.expire(reply_to, REPLY_TTL_SECONDS)
            pipe.execute()
            return True
        except (redis.RedisError, OSError) as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error(
                    "reply not delivered: Redis unreachable", reply_to=reply_to, attempts=attempt + 1, error=str(exc)
                )
                return False
            time.sleep(min(left, DEFAULT_RETRY.delay(attempt)))
            attempt += 1


def internal_failure(rt: Runtime, *, key: str, summary: FileSummary, source: str, exc: Exception) -> IngestResult:
    outcome: Outcome = rt.store.persist_failure(
        key=key,
        summary=summary,
        source=source,
        reason="internal_error",
        message=f"processing failed: {type(exc).__name__}: {exc}"[:2000],
    )
    return IngestResult(filename=summary.filename, outcomes=[outcome])
