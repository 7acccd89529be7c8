"""The pipeline for one ingest request, stage by stage.

Each function is one stage of the flow the tasks run (inline: all three in one task;
chain: one task each).  ``prepare`` and ``tag`` are pure; ``store`` decides duplicates and
writes every outcome with its event, in one transaction per request (``store_many``: per
several requests), one per outcome should the shared one fail.
"""

from __future__ import annotations

from worker.errors import InputError, TooLarge
from worker.metrics import stage_timer
from worker.models import (
    FileSummary,
    IngestRequest,
    IngestResult,
    PipelineBatch,
    RecordFailure,
    StageItem,
)
from worker.pipeline.normalise import normalise_records
from worker.pipeline.tag import Tagger
from worker.store.repository import DocumentStore, DocumentWrite, FailureWrite


def _failure(record: int | None, error: InputError) -> RecordFailure:
    return RecordFailure(record=record, reason=error.reason, message=error.message, details=error.details)


@stage_timer("normalise")
def prepare(request: IngestRequest, key: str, *, max_bytes: int) -> PipelineBatch:
    """Decode and normalise: the request becomes documents and typed failures."""
    raw = request.raw_bytes()
    summary = FileSummary.of(request.filename, raw)
    batch = PipelineBatch(request=request, key=key, summary=summary)
    if len(raw) > max_bytes:
        batch.failures.append(
            _failure(
                None,
                TooLarge(f"{len(raw)} bytes is over the limit of {max_bytes} bytes", size=len(raw), limit=max_bytes),
            )
        )
        return batch
    for record, result in normalise_records(raw, filename=request.filename):
        if isinstance(result, InputError):
            batch.failures.append(_failure(record, result))
        else:
            batch.items.append(StageItem(record=record, document=result))
    return batch


@stage_timer("tag")
def tag(batch: PipelineBatch, tagger: Tagger) -> PipelineBatch:
    """Tag every document of the batch in one call, so NER runs over them as a batch."""
    if not batch.items:
        return batch
    producer_tags = batch.request.tags
    results = tagger.tag_many(
        [
            (item.document, batch.request.folder_tags, [*producer_tags, *item.document.producer_tags])
            for item in batch.items
        ]
    )
    for item, tags in zip(batch.items, results, strict=True):
        item.tags = tags
    return batch


@stage_timer("tag")
def tag_many(batches: list[PipelineBatch], tagger: Tagger) -> list[PipelineBatch]:
    """Tag the documents of several requests in one call (``seedworker.ingest_batch``), so
    NER runs over all of them with one ``nlp.pipe``; the same tags as ``tag`` on each."""
    items = [(batch, item) for batch in batches for item in batch.items]
    if not items:
        return batches
    results = tagger.tag_many(
        [
            (item.document, batch.request.folder_tags, [*batch.request.tags, *item.document.producer_tags])
            for batch, item in items
        ]
    )
    for (_, item), tags in zip(items, results, strict=True):
        item.tags = tags
    return batches


def _writes(batch: PipelineBatch, *, max_bytes: int) -> list[DocumentWrite | FailureWrite]:
    """Every outcome the batch's request will have, to write: its documents, then its failures."""
    raw = batch.request.raw_bytes()
    keep_raw = raw if len(raw) <= max_bytes else None
    writes: list[DocumentWrite | FailureWrite] = [DocumentWrite(batch, item, raw) for item in batch.items]
    writes.extend(
        FailureWrite(
            key=batch.item_key(failure.record),
            summary=batch.summary,
            source=batch.request.source,
            reason=failure.reason,
            message=failure.message,
            details={**failure.details, **({"line": failure.record} if failure.record else {})},
            raw=keep_raw,
        )
        for failure in batch.failures
    )
    return writes


@stage_timer("store")
def store(batch: PipelineBatch, documents: DocumentStore, *, max_bytes: int) -> IngestResult:
    """Persist every outcome of the batch; idempotent per item key.  One transaction for all
    of them (one per outcome should that one fail: ``DocumentStore.persist_many``)."""
    outcomes = documents.persist_many(_writes(batch, max_bytes=max_bytes))
    outcomes.sort(key=lambda o: o.key)
    return IngestResult(filename=batch.request.filename, outcomes=outcomes)


@stage_timer("store")
def store_many(batches: list[PipelineBatch], documents: DocumentStore, *, max_bytes: int) -> list[IngestResult]:
    """``store`` for several requests (``seedworker.ingest_batch``): the same outcomes, rows
    and events, written in one transaction (``DocumentStore.persist_many``, which falls back
    to one transaction per outcome when the shared one fails)."""
    writes: list[DocumentWrite | FailureWrite] = []
    for batch in batches:
        writes.extend(_writes(batch, max_bytes=max_bytes))
    outcomes = iter(documents.persist_many(writes))
    results = []
    for batch in batches:
        mine = [next(outcomes) for _ in range(len(batch.items) + len(batch.failures))]
        mine.sort(key=lambda o: o.key)
        results.append(IngestResult(filename=batch.request.filename, outcomes=mine))
    return results
