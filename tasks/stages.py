"""One task per stage, for ``SEEDWORKER_PIPELINE=chain``: the tag stage (NER) can then run
on its own queue and machines.  Deduplication is decided inside ``seedworker.store``, in the
same transaction as the write, because only the database can make it atomic (there is no
separate deduplicate task: its answer could be stale by the time the store task ran).

Every stage is a ``SeedworkerTask``: an exception in any of them is retried, then the input is
recorded failed (``internal_error``) with its event and reply, and the chain stops there.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task, chain, shared_task
from celery.canvas import Signature

from tasks._common import finish
from tasks.base import SeedworkerTask
from worker import process
from worker.models import FileSummary, IngestRequest, PipelineBatch
from worker.names import NORMALISE_TASK, STORE_TASK, TAG_TASK
from worker.runtime import get_runtime
from worker.settings import Settings


def chain_for(req: IngestRequest, key: str, settings: Settings) -> Signature:
    """The stage tasks for one request in chain mode (what ``seedworker.ingest`` becomes)."""
    shown = {"argsrepr": str(FileSummary.of(req.filename, req.raw_bytes())), "kwargsrepr": ""}  # Flower: not the body
    return chain(
        normalise.si(req.model_dump(mode="json"), key).set(**shown),
        tag.s().set(queue=settings.effective_tag_queue, **shown),
        store.s().set(**shown),
    )


@shared_task(name=NORMALISE_TASK, base=SeedworkerTask, bind=True)
def normalise(self: Task, request: dict[str, Any], key: str) -> dict[str, Any]:
    req = IngestRequest.model_validate(request)
    structlog.contextvars.bind_contextvars(file=req.filename, key=key)
    batch = process.prepare(req, key, max_bytes=get_runtime().settings.max_file_bytes)
    return batch.model_dump(mode="json")


@shared_task(name=TAG_TASK, base=SeedworkerTask, bind=True)
def tag(self: Task, batch: dict[str, Any]) -> dict[str, Any]:
    pb = PipelineBatch.model_validate(batch)
    structlog.contextvars.bind_contextvars(file=pb.request.filename, key=pb.key)
    return process.tag(pb, get_runtime().tagger).model_dump(mode="json")


@shared_task(name=STORE_TASK, base=SeedworkerTask, bind=True)
def store(self: Task, batch: dict[str, Any]) -> str:
    pb = PipelineBatch.model_validate(batch)
    structlog.contextvars.bind_contextvars(file=pb.request.filename, key=pb.key)
    rt = get_runtime()
    return finish(rt, pb.request.reply_to, process.store(pb, rt.store, max_bytes=rt.settings.max_file_bytes))
