"""One task per stage, for ``SEEDWORKER_PIPELINE=chain``: the tag stage (NER) can then run
on its own queue and machines.  Deduplication is decided inside ``seedworker.store``, in the
same transaction as the write, because only the database can make it atomic (there is no
separate deduplicate task: its answer could be stale by the time the store task ran).
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from tasks._common import finish, internal_failure, run_with_retry, task_context
from worker import process
from worker.models import IngestRequest, IngestResult, PipelineBatch
from worker.runtime import get_runtime


@shared_task(name="seedworker.normalise", bind=True, acks_late=True)
def normalise(self: Task, request: dict[str, Any], key: str) -> dict[str, Any]:
    req = IngestRequest.model_validate(request)
    with task_context(self, file=req.filename, key=key):
        batch = process.prepare(req, key, max_bytes=get_runtime().settings.max_file_bytes)
        return batch.model_dump(mode="json")


@shared_task(name="seedworker.tag", bind=True, acks_late=True)
def tag(self: Task, batch: dict[str, Any]) -> dict[str, Any]:
    pb = PipelineBatch.model_validate(batch)
    with task_context(self, file=pb.request.filename, key=pb.key):
        return process.tag(pb, get_runtime().tagger).model_dump(mode="json")


@shared_task(name="seedworker.store", bind=True, acks_late=True)
def store(self: Task, batch: dict[str, Any]) -> str:
    pb = PipelineBatch.model_validate(batch)
    with task_context(self, file=pb.request.filename, key=pb.key):
        rt = get_runtime()

        def work() -> IngestResult:
            return process.store(pb, rt.store, max_bytes=rt.settings.max_file_bytes)

        result = run_with_retry(
            self,
            work,
            lambda exc: internal_failure(rt, key=pb.key, summary=pb.summary, source=pb.request.source, exc=exc),
        )
        return finish(rt, pb.request.reply_to, result)
