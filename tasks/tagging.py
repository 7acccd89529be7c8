"""``seedworker.tags.train`` and ``seedworker.tags.retag``: the tag model and stored tags.

Training is idempotent across workers: a Redis lock lets one training run at a time (a
second request while one runs returns at once), and the "pending" flag set by whoever
enqueued it is cleared when a model was stored.  A retag batch reports its progress to the
Redis list the CLI waits on, once per batch (a redelivered batch reports again with the same
batch number; the CLI counts batches, not messages).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery import Task, shared_task

from tasks._common import run_with_retry, task_context
from tasks.base import SeedworkerTask
from worker.errors import NotEnoughTrainingData
from worker.logs import get_logger
from worker.relay.publisher import notify_committed
from worker.runtime import get_runtime
from worker.store.tagging import (
    RETAG_TASK,
    TRAIN_LOCK_KEY,
    TRAIN_PENDING_KEY,
    TRAIN_TASK,
    RetagOutcome,
    TagStore,
)

log = get_logger("seedworker.tasks.tagging")
PROGRESS_TTL_SECONDS = 24 * 3600
TRAIN_LOCK_SECONDS = 1800


def _release(client: Any, key: str, token: str) -> None:
    """Delete ``key`` only while it still holds our token (a lock that expired is someone else's)."""
    client.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        1,
        key,
        token,
    )


@shared_task(name=TRAIN_TASK, base=SeedworkerTask, bind=True)
def train(self: Task) -> str:
    with task_context(self):
        rt = get_runtime()
        token = uuid.uuid4().hex
        if not rt.redis.set(TRAIN_LOCK_KEY, token, nx=True, ex=TRAIN_LOCK_SECONDS):
            return "already training"
        try:
            tags = TagStore(rt.store)
            settings = rt.settings

            def work() -> str:
                try:
                    stored, report = tags.train(
                        min_docs=settings.auto_train_min_docs, threshold=settings.auto_tag_threshold
                    )
                except (
                    NotEnoughTrainingData
                ) as exc:  # not enough labelled data yet: the pending flag expires on its own
                    log.info("auto model not trained", reason=str(exc))
                    return f"not trained: {exc}"
                rt.redis.delete(TRAIN_PENDING_KEY)
                return f"model v{stored.version}: {len(stored.labels)} labels, micro-F1 {report.micro_f1:.2f}"

            return run_with_retry(self, work, lambda exc: f"failed: {type(exc).__name__}: {exc}")
        finally:
            _release(rt.redis, TRAIN_LOCK_KEY, token)


@shared_task(name=RETAG_TASK, base=SeedworkerTask, bind=True)
def retag(
    self: Task,
    run_id: str,
    document_ids: list[str],
    reason: str = "retag",
    tag: str | None = None,
    progress: str | None = None,
    batch: int = 0,
) -> str:
    """Re-run the tag stage over stored documents (one ``nlp.pipe`` over the batch)."""
    with task_context(self, run_id=run_id, batch=batch):
        rt = get_runtime()
        tags = TagStore(rt.store)

        def work() -> RetagOutcome:
            items, missing = tags.load_for_retag(document_ids)
            derived = rt.tagger.derive_many([i.document for i in items], [i.explicit for i in items])
            outcome = tags.apply_retag(items, derived, run_id=run_id, reason=reason, only_tag=tag)
            outcome.missing.extend(missing)
            return outcome

        def give_up(exc: Exception) -> RetagOutcome:
            return RetagOutcome(missing=list(document_ids))

        outcome = run_with_retry(self, work, give_up)
        if outcome.changed:
            notify_committed(rt.redis, rt.settings.event_stream)
        if progress:
            message = {
                "batch": batch,
                "documents": len(document_ids),
                "changed": len(outcome.changed),
                "rewritten": outcome.rewritten,
                "unchanged": outcome.unchanged,
                "missing": len(outcome.missing),
            }
            pipe = rt.redis.pipeline()
            pipe.lpush(progress, json.dumps(message))
            pipe.expire(progress, PROGRESS_TTL_SECONDS)
            pipe.execute()
        log.info("retagged", documents=len(document_ids), changed=len(outcome.changed), missing=len(outcome.missing))
        return f"retag {run_id}#{batch}: {len(outcome.changed)} changed of {len(document_ids)}"
