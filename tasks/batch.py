"""``seedworker.ingest_batch``: several small requests in one message.

The watcher sends a burst of small files this way (``SEEDWORKER_WATCH_BATCH``): one
message, one task, one tagging call (NER over every document with one ``nlp.pipe``) and
one reply instead of one of each per file.  Nothing about delivery changes: each request
keeps its own idempotency key, so a redelivered or retried batch finds the outcomes of the
requests it already stored and repeats none of them (docs/delivery.md).

One request cannot sink its neighbours: an invalid one is recorded alone, and when the
batch as a whole gives up after its retries each request is tried alone, so only the one
that fails is recorded ``internal_error``.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task, shared_task
from pydantic import ValidationError

from tasks._common import finish, internal_failure, reply
from tasks.base import Carried, SeedworkerTask, single_argument
from tasks.ingest import invalid_message
from worker import process
from worker.errors import InvalidRequest, RetryableError
from worker.logs import get_logger
from worker.models import MAX_BATCH_REQUESTS, FileSummary, IngestRequest, IngestResult, Outcome
from worker.names import BATCH_TASK, INGEST_TASK
from worker.runtime import Runtime, get_runtime
from worker.watcher.sending import chain_mode

log = get_logger("seedworker.tasks.batch")


def _requests(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    requests = single_argument(args, kwargs, "requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest(f"'requests' must be a list of 1 to {MAX_BATCH_REQUESTS} requests")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(f"the batch holds {len(requests)} requests; at most {MAX_BATCH_REQUESTS}")
    return requests


def _validate(
    rt: Runtime, task: Task, requests: list[Any]
) -> tuple[list[tuple[IngestRequest, str]], list[tuple[Carried, Outcome]]]:
    valid: list[tuple[IngestRequest, str]] = []
    invalid: list[tuple[Carried, Outcome]] = []
    for index, payload in enumerate(requests):
        try:
            req = IngestRequest.model_validate(payload)
        except ValidationError as exc:
            item = Carried.of(payload, f"task:{task.request.id}#{index}")
            outcome = rt.store.persist_failure(
                key=item.key,
                summary=FileSummary.of(item.filename, b""),
                source=item.source,
                reason="invalid_request",
                message=invalid_message(exc)[:2000],
            )
            invalid.append((item, outcome))
            continue
        valid.append((req, req.idempotency_key or f"task:{task.request.id}#{index}"))
    return valid, invalid


def _alone(rt: Runtime, req: IngestRequest, key: str) -> IngestResult:
    """One request on its own, after the batch gave up: its own outcome, ``internal_error`` if it fails."""
    max_bytes = rt.settings.max_file_bytes
    try:
        batch = process.tag(process.prepare(req, key, max_bytes=max_bytes), rt.tagger)
        return process.store(batch, rt.store, max_bytes=max_bytes)
    except RetryableError:
        raise
    except Exception as exc:
        log.exception("request failed on its own", key=key)
        summary = FileSummary.of(req.filename, req.raw_bytes())
        return internal_failure(rt, key=key, summary=summary, source=req.source, exc=exc)


def _run(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], *, alone: bool) -> str:
    requests = _requests(args, kwargs)
    structlog.contextvars.bind_contextvars(files=len(requests))
    rt = get_runtime()
    settings = rt.settings
    if chain_mode(settings):
        # One chain per request; a repeat of this hand-over is harmless (same keys).
        for payload in requests:
            name = payload.get("filename") if isinstance(payload, dict) else None
            shown = f"{str(name)[:255]} (from batch {task.request.id})"  # Flower: the name, not the body
            task.app.send_task(INGEST_TASK, kwargs={"request": payload}, argsrepr=shown, kwargsrepr="")
        return f"{len(requests)} requests handed to {INGEST_TASK}"
    valid, invalid = _validate(rt, task, requests)
    if alone:
        results = [_alone(rt, req, key) for req, key in valid]
    else:
        batches = [process.prepare(req, key, max_bytes=settings.max_file_bytes) for req, key in valid]
        batches = process.tag_many(batches, rt.tagger)
        # one transaction for the batch's outcomes (one each should it fail): DocumentStore.persist_many
        results = process.store_many(batches, rt.store, max_bytes=settings.max_file_bytes)
    outcomes: list[Outcome] = []
    replies: dict[str, list[Outcome]] = {}
    for item, outcome in invalid:
        outcomes.append(outcome)
        if item.reply_to:
            replies.setdefault(item.reply_to, []).append(outcome)
    for (req, _), result in zip(valid, results, strict=True):
        outcomes.extend(result.outcomes)
        if req.reply_to:
            replies.setdefault(req.reply_to, []).extend(result.outcomes)
    combined = IngestResult(filename=f"{len(requests)} files", outcomes=outcomes)
    for target, mine in replies.items():
        reply(rt.redis, target, IngestResult(filename=combined.filename, outcomes=mine))
    return finish(rt, None, combined)  # last: names each file, raises DocumentFailed if one failed


def _give_up(task: Task, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if isinstance(exc, InvalidRequest):  # the message itself: one outcome for it
        return SeedworkerTask.give_up(task, exc, args, kwargs)
    return _run(task, args, kwargs, alone=True)


@shared_task(name=BATCH_TASK, base=SeedworkerTask, bind=True, give_up=_give_up)
def ingest_batch(self: Task, *args: Any, **kwargs: Any) -> str:
    return _run(self, args, kwargs, alone=False)
