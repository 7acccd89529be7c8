"""What every seedworker task shares: logging context, retry-or-fail, replies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import structlog
from celery import Task

from worker.errors import DocumentFailed, InputError
from worker.logs import get_logger
from worker.metrics import record_outcomes
from worker.models import FileSummary, IngestResult, Outcome, Reply, usable_reply_to
from worker.relay.publisher import notify_committed
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
    """After the commit: wake the publisher, answer the producer, log, then tell Flower
    (call it last: it raises ``DocumentFailed`` when a document failed, see flower_outcome)."""
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
    return flower_outcome(result)


def flower_outcome(result: IngestResult) -> str:
    """The task's result as Flower shows and searches it: every file by name with its outcome
    (and, when it failed, its reason); never the document body.  A task with a failed
    document raises ``DocumentFailed`` with that line instead, so Flower counts it as failed;
    everything is committed and answered before this is called."""
    per_file: dict[str, list[Outcome]] = {}
    for outcome in result.outcomes:
        per_file.setdefault(outcome.filename, []).append(outcome)
    parts = [_file_line(name, outcomes) for name, outcomes in per_file.items()]
    line = "; ".join(parts)
    if len(per_file) > 1 or result.filename != next(iter(per_file), result.filename):
        line = f"{result.filename}: {line}"
    if any(o.status == "failed" for o in result.outcomes):
        raise DocumentFailed(line)
    return line


def _file_line(name: str, outcomes: list[Outcome]) -> str:
    if len(outcomes) == 1:
        o = outcomes[0]
        detail = f" ({' '.join((o.message or '').split())[:160]})" if o.status == "failed" and o.message else ""
        return f"{name}: {o.short()}{detail}"
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    first = next((o for o in outcomes if o.status == "failed"), None)
    detail = f" (first failure: {first.reason})" if first is not None else ""
    return f"{name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + detail


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
