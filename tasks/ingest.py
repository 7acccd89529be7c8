"""``seedworker.ingest``: a producer's request in, stored documents and events out.

``seedworker.record_failure`` lets a producer that could not even read its input (too
large, unreadable, unsafe path) record the failure and its event without a database.
"""

from __future__ import annotations

from typing import Any

from celery import Task, chain, shared_task
from pydantic import ValidationError

from tasks._common import finish, internal_failure, run_with_retry, task_context
from worker import process
from worker.models import FileSummary, IngestRequest, IngestResult
from worker.runtime import get_runtime


def _invalid_request(task: Task, payload: Any, exc: ValidationError) -> str:
    rt = get_runtime()
    filename = payload.get("filename") if isinstance(payload, dict) else None
    filename = str(filename)[:255] if filename else "request"
    summary = FileSummary.of(filename, b"")
    outcome = rt.store.persist_failure(
        key=f"task:{task.request.id}",
        summary=summary,
        source=str(payload.get("source", "api"))[:200] if isinstance(payload, dict) else "api",
        reason="invalid_request",
        message="the ingest request is invalid: "
        + "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()),
    )
    reply_to = payload.get("reply_to") if isinstance(payload, dict) else None
    result = IngestResult(filename=filename, outcomes=[outcome])
    return finish(rt, reply_to if isinstance(reply_to, str) else None, result)


@shared_task(name="seedworker.ingest", bind=True, acks_late=True)
def ingest(self: Task, request: dict[str, Any]) -> str:
    try:
        req = IngestRequest.model_validate(request)
    except ValidationError as exc:
        with task_context(self):
            return _invalid_request(self, request, exc)
    key = req.idempotency_key or f"task:{self.request.id}"
    with task_context(self, file=req.filename, key=key):
        rt = get_runtime()
        settings = rt.settings
        if settings.pipeline == "chain":
            from tasks import stages

            shown = {"argsrepr": str(FileSummary.of(req.filename, req.raw_bytes())), "kwargsrepr": ""}  # not the body
            flow = chain(
                stages.normalise.si(req.model_dump(mode="json"), key).set(**shown),
                stages.tag.s().set(queue=settings.effective_tag_queue, **shown),
                stages.store.s().set(**shown),
            )
            raise self.replace(flow)

        def work() -> IngestResult:
            batch = process.prepare(req, key, max_bytes=settings.max_file_bytes)
            batch = process.tag(batch, rt.tagger)
            return process.store(batch, rt.store, max_bytes=settings.max_file_bytes)

        summary = FileSummary.of(req.filename, req.raw_bytes())
        result = run_with_retry(
            self, work, lambda exc: internal_failure(rt, key=key, summary=summary, source=req.source, exc=exc)
        )
        return finish(rt, req.reply_to, result)


@shared_task(name="seedworker.record_failure", bind=True, acks_late=True)
def record_failure(
    self: Task, key: str, summary: dict[str, Any], source: str, reason: str, message: str, reply_to: str | None = None
) -> str:
    file_summary = FileSummary.model_validate(summary)
    with task_context(self, file=file_summary.filename, key=key):
        rt = get_runtime()

        def work() -> IngestResult:
            outcome = rt.store.persist_failure(
                key=key, summary=file_summary, source=source, reason=reason, message=message
            )
            return IngestResult(filename=file_summary.filename, outcomes=[outcome])

        result = run_with_retry(
            self, work, lambda exc: internal_failure(rt, key=key, summary=file_summary, source=source, exc=exc)
        )
        return finish(rt, reply_to, result)
