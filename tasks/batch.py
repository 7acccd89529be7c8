"""``seedworker.ingest_batch``: several small requests in one message.

The watcher sends a burst of small files this way (``SEEDWORKER_WATCH_BATCH``): one
message, one task, one tagging call (NER over every document with one ``nlp.pipe``) and
one reply instead of one of each per file.  Nothing about delivery changes: each request
keeps its own idempotency key, so a redelivered or retried batch finds the outcomes of the
requests it already stored and repeats none of them (docs/delivery.md).
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from pydantic import ValidationError

from tasks._common import finish, internal_failure, reply, run_with_retry, task_context
from worker import process
from worker.models import FileSummary, IngestRequest, IngestResult, Outcome
from worker.runtime import Runtime, get_runtime

INGEST_TASK = "seedworker.ingest"


def _invalid(rt: Runtime, task: Task, index: int, payload: Any, exc: ValidationError) -> Outcome:
    fields = payload if isinstance(payload, dict) else {}
    filename = str(fields.get("filename") or "request")[:255]
    key = fields.get("idempotency_key")
    return rt.store.persist_failure(
        key=key if isinstance(key, str) and key else f"task:{task.request.id}#{index}",
        summary=FileSummary.of(filename, b""),
        source=str(fields.get("source", "api"))[:200],
        reason="invalid_request",
        message="the ingest request is invalid: "
        + "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()),
    )


@shared_task(name="seedworker.ingest_batch", bind=True, acks_late=True)
def ingest_batch(self: Task, requests: list[dict[str, Any]]) -> str:
    with task_context(self, files=len(requests)):
        rt = get_runtime()
        settings = rt.settings
        if settings.pipeline == "chain":
            # One chain per request; a repeat of this hand-over is harmless (same keys).
            for payload in requests:
                name = payload.get("filename") if isinstance(payload, dict) else None
                shown = f"{str(name)[:255]} (from batch {self.request.id})"  # Flower: the name, not the body
                self.app.send_task(INGEST_TASK, kwargs={"request": payload}, argsrepr=shown, kwargsrepr="")
            return f"{len(requests)} requests handed to {INGEST_TASK}"
        valid: list[tuple[IngestRequest, str]] = []
        outcomes: list[Outcome] = []
        reply_to: dict[str, list[Outcome]] = {}
        for index, payload in enumerate(requests):
            try:
                req = IngestRequest.model_validate(payload)
            except ValidationError as exc:
                outcome = _invalid(rt, self, index, payload, exc)
                outcomes.append(outcome)
                target = payload.get("reply_to") if isinstance(payload, dict) else None
                if isinstance(target, str) and target:
                    reply_to.setdefault(target, []).append(outcome)
                continue
            valid.append((req, req.idempotency_key or f"task:{self.request.id}#{index}"))

        def work() -> list[IngestResult]:
            batches = [process.prepare(req, key, max_bytes=settings.max_file_bytes) for req, key in valid]
            batches = process.tag_many(batches, rt.tagger)
            return [process.store(batch, rt.store, max_bytes=settings.max_file_bytes) for batch in batches]

        def give_up(exc: Exception) -> list[IngestResult]:
            return [
                internal_failure(
                    rt, key=key, summary=FileSummary.of(req.filename, req.raw_bytes()), source=req.source, exc=exc
                )
                for req, key in valid
            ]

        for (req, _), result in zip(valid, run_with_retry(self, work, give_up), strict=True):
            outcomes.extend(result.outcomes)
            if req.reply_to:
                reply_to.setdefault(req.reply_to, []).extend(result.outcomes)
        combined = IngestResult(filename=f"{len(requests)} files", outcomes=outcomes)
        for target, mine in reply_to.items():
            reply(rt.redis, target, IngestResult(filename=combined.filename, outcomes=mine))
        return finish(rt, None, combined)  # last: names each file, raises if one failed
