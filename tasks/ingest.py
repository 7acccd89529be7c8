"""``seedworker.ingest``: a producer's request in, stored documents and events out.

``seedworker.record_failure`` lets a producer that could not even read its input (too
large, unreadable, unsafe path) record the failure and its event without a database.
Retries and giving up (``internal_error``) are the base's (tasks/base.py).
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task, shared_task
from pydantic import ValidationError

from tasks._common import finish
from tasks.base import Carried, SeedworkerTask, record_failures, single_argument
from worker import process
from worker.errors import REASON_CODES, InvalidRequest
from worker.models import FileSummary, IngestRequest, IngestResult, printable, usable_key
from worker.names import FAILURE_TASK, INGEST_TASK
from worker.runtime import get_runtime
from worker.watcher.sending import chain_mode


def invalid_message(exc: ValidationError) -> str:
    return "the ingest request is invalid: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
    )


@shared_task(name=INGEST_TASK, base=SeedworkerTask, bind=True)
def ingest(self: Task, *args: Any, **kwargs: Any) -> str:
    payload = single_argument(args, kwargs, "request")
    try:
        req = IngestRequest.model_validate(payload)
    except ValidationError as exc:
        item = Carried.of(payload, f"task:{self.request.id}")
        structlog.contextvars.bind_contextvars(file=item.filename, key=item.key)
        outcomes = record_failures([item], reason="invalid_request", message=invalid_message(exc)[:2000])
        return outcomes[0].short()
    key = req.idempotency_key or f"task:{self.request.id}"
    structlog.contextvars.bind_contextvars(file=req.filename, key=key)
    rt = get_runtime()
    settings = rt.settings
    if chain_mode(settings):
        from tasks.stages import chain_for

        raise self.replace(chain_for(req, key, settings))
    batch = process.prepare(req, key, max_bytes=settings.max_file_bytes)
    batch = process.tag(batch, rt.tagger)
    return finish(rt, req.reply_to, process.store(batch, rt.store, max_bytes=settings.max_file_bytes))


@shared_task(name=FAILURE_TASK, base=SeedworkerTask, bind=True)
def record_failure(
    self: Task, key: str, summary: dict[str, Any], source: str, reason: str, message: str, reply_to: str | None = None
) -> str:
    # A public task like any other: what it records is checked as a request's fields are.
    try:
        file_summary = FileSummary.model_validate(summary)
    except ValidationError as exc:
        raise InvalidRequest(f"record_failure: invalid summary: {exc.errors()[0]['msg']}") from None
    if reason not in REASON_CODES or usable_key(key) is None or not isinstance(message, str):
        raise InvalidRequest("record_failure needs a valid key, a known reason code and a message")
    structlog.contextvars.bind_contextvars(file=file_summary.filename, key=key)
    rt = get_runtime()
    outcome = rt.store.persist_failure(
        key=key,
        summary=file_summary,
        source=printable(source, 200, "api"),
        reason=reason,
        message=printable(message, 2000, reason),
    )
    return finish(rt, reply_to, IngestResult(filename=file_summary.filename, outcomes=[outcome]))
